//! Micro-benchmarks of the hot path: decode/encode of a PUBLISH, topic matching against 100k subscriptions,
//! routing one publish in-process to a subscriber's mailbox, and what a matching rule adds to routing a publish
//! (its evaluation and its republish, routed).
//!
//! Run with `cargo bench --bench hot_path`. The whole-broker comparison with Mosquitto and rumqttd lives in the
//! benchmark harness (see the README's Performance section once it exists).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use ractmq::parts::codec::{encode_publish, Decoder, Packet, Protocol, PublishOut, QoS};
use ractmq::parts::protocol::trie::SubscriptionTrie;

fn codec(c: &mut Criterion) {
    let payload = [7u8; 64];
    let out = PublishOut {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "devices/1234/telemetry",
        pkid: 42,
        payload: &payload,
        properties: None,
        topic_alias: None,
        subscription_identifiers: &[],
        message_expiry_interval: None,
    };
    let mut buf = BytesMut::with_capacity(1 << 20);
    c.bench_function("encode_publish_64B_v311", |b| {
        b.iter(|| {
            buf.clear();
            encode_publish(black_box(&out), Protocol::V3_1_1, &mut buf).unwrap();
        })
    });

    // A CONNECT first so the decoder knows the level, then a stream of PUBLISH frames.
    let mut connect = BytesMut::new();
    let c311 = ractmq::parts::codec::Connect {
        protocol: Some(Protocol::V3_1_1),
        client_id: "bench".into(),
        clean_start: true,
        ..Default::default()
    };
    ractmq::parts::codec::encode_client(&Packet::Connect(Box::new(c311)), Protocol::V3_1_1, &mut connect).unwrap();
    let mut frame = BytesMut::new();
    encode_publish(&out, Protocol::V3_1_1, &mut frame).unwrap();
    let frames: BytesMut = std::iter::repeat_n(&frame[..], 1000).flatten().copied().collect();
    c.bench_function("decode_publish_64B_v311_x1000", |b| {
        b.iter(|| {
            let mut d = Decoder::new(1 << 20);
            let mut c = connect.clone();
            d.decode(&mut c).unwrap().unwrap();
            let mut input = frames.clone();
            while let Some(p) = d.decode(&mut input).unwrap() {
                black_box(p);
            }
        })
    });
}

fn matching(c: &mut Criterion) {
    let mut exact: SubscriptionTrie<u32, ()> = SubscriptionTrie::new();
    let mut wild: SubscriptionTrie<u32, ()> = SubscriptionTrie::new();
    for i in 0..100_000u32 {
        exact.insert(&format!("devices/{i}/telemetry"), i, ());
        wild.insert(&format!("devices/{i}/+"), i, ());
    }
    wild.insert("devices/#", 1_000_000, ());
    c.bench_function("match_exact_among_100k", |b| {
        b.iter(|| {
            let mut n = 0;
            exact.for_each_match(black_box("devices/54321/telemetry"), |_, _| n += 1);
            assert_eq!(n, 1);
        })
    });
    c.bench_function("match_wildcard_among_100k", |b| {
        b.iter(|| {
            let mut n = 0;
            wild.for_each_match(black_box("devices/54321/telemetry"), |_, _| n += 1);
            assert_eq!(n, 2);
        })
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A broker on a free port, no `$SYS`.
async fn broker() -> ractmq::Broker {
    ractmq::Broker::start(ractmq::BrokerConfig {
        mqtt_listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A broker running `rules` (a JSON array of `[[rules]]` tables), or none at all.
async fn broker_with_rules(rules: Option<serde_json::Value>) -> (ractmq::Broker, Option<ractmq::Rules>) {
    let broker = broker().await;
    let Some(rules) = rules else {
        return (broker, None);
    };
    let config: ractmq::RulesConfig = serde_json::from_value(rules).unwrap();
    let rules = ractmq::Rules::start(broker.view(), broker.rules_tree().clone(), &config)
        .await
        .unwrap();
    (broker, Some(rules))
}

fn route(c: &mut Criterion) {
    let rt = runtime();
    let broker = rt.block_on(broker());
    let mut sub = rt.block_on(broker.subscribe("bench/+", 1 << 16)).unwrap();
    let payload = bytes::Bytes::from_static(&[1u8; 64]);
    c.bench_function("route_one_publish_to_one_subscriber", |b| {
        b.iter(|| {
            let n = rt
                .block_on(broker.publish("bench/x", payload.clone(), ractmq::QoS::AtMostOnce, false))
                .unwrap();
            assert_eq!(n, 1);
            black_box(rt.block_on(sub.recv()));
        })
    });
    rt.block_on(broker.shutdown());
}

/// Routing a publish on a node without rules, with one rule that does not match it, with 1,000 that do not,
/// and with the rule issue's example matching it: its JSON filter passes and its republish is routed. The
/// differences are what rules cost per message.
fn rules(c: &mut Criterion) {
    let rt = runtime();
    let hot = serde_json::json!([{
        "name": "hot",
        "sql": "SELECT payload.temp AS t, clientid FROM \"sensors/#\" WHERE payload.temp > 30",
        "actions": [{ "republish": { "topic": "alerts/${clientid}", "payload": "{\"t\": ${t}}", "qos": 1 } }]
    }]);
    let sites: Vec<_> = (0..1000)
        .map(|i| {
            serde_json::json!({
                "name": format!("site-{i}"),
                "sql": format!("SELECT payload.v AS v FROM \"site/{i}/+/telemetry\" WHERE payload.v > 10"),
                "actions": [{ "republish": { "topic": format!("alerts/{i}") } }]
            })
        })
        .collect();
    let payload = bytes::Bytes::from_static(br#"{"temp":35.5,"hum":41,"unit":"C","site":"plant-7","ok":true}"#);
    let message = |topic: &str| {
        let mut m = ractmq::Message::new(topic, payload.clone(), ractmq::QoS::AtLeastOnce, false);
        m.publisher = Some("dev1".into());
        m
    };
    let _guard = rt.enter();
    let cases = [
        ("route_publish_without_rules", None, "elsewhere/x"),
        ("route_publish_no_rule_matches", Some(hot.clone()), "elsewhere/x"),
        (
            "route_publish_none_of_1000_rules_matches",
            Some(serde_json::Value::Array(sites)),
            "elsewhere/x",
        ),
        ("route_publish_rule_matches_and_republishes", Some(hot), "sensors/x"),
    ];
    for (name, rules, topic) in cases {
        let (broker, _rules) = rt.block_on(broker_with_rules(rules));
        let view = broker.view();
        c.bench_function(name, |b| {
            b.iter(|| black_box(view.route_now(message(topic), &mut ractmq::parts::broker::Congestion::default())))
        });
        rt.block_on(broker.shutdown());
    }
}

criterion_group!(benches, codec, matching, route, rules);
criterion_main!(benches);
