//! The rule engine's SQL over real sockets: for each feature, a rule that republishes its output, a message
//! published by a real client, and the republished result read by a real subscriber. Every output is
//! counted: each case expects exactly the messages listed, and a marker published after the inputs proves
//! nothing else came.

use ractmq::{Rules, RulesConfig};
use rumqttc::QoS;
use serde_json::{json, Value};

use crate::common::{start_broker, Client};

/// One rule `name` with `sql`, republishing its output as JSON to `out/{name}`.
fn rule(name: &str, sql: &str) -> Value {
    json!({ "name": name, "sql": sql, "actions": [{ "republish": { "topic": format!("out/{name}") } }] })
}

/// A node with `rules`, a subscriber to `out/#` and a publisher.
async fn node(rules: Vec<Value>) -> (ractmq::Broker, Rules, Client, Client) {
    let broker = start_broker().await;
    let config: RulesConfig = serde_json::from_value(Value::Array(rules)).expect("rules read");
    let rules = Rules::start(broker.view(), broker.rules_tree().clone(), &config)
        .await
        .expect("rules start");
    let mut reader = Client::connect(broker.mqtt_addr(), "reader").await;
    reader.subscribe("out/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(broker.mqtt_addr(), "dev-7").await;
    (broker, rules, reader, publisher)
}

/// Publish `inputs` (topic, payload) at QoS 1, then a marker; the outputs that came before the marker, as
/// (topic, JSON payload).
async fn run(reader: &mut Client, publisher: &mut Client, inputs: &[(&str, &str)]) -> Vec<(String, Value)> {
    for (topic, payload) in inputs {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes())
            .await;
    }
    publisher.publish("out/marker", QoS::AtLeastOnce, false, "m").await;
    reader
        .publishes_until("out/marker")
        .await
        .into_iter()
        .map(|p| {
            let v = serde_json::from_slice(&p.payload)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {:?}", p.topic, p.payload));
            (p.topic, v)
        })
        .collect()
}

fn out(name: &str, v: Value) -> (String, Value) {
    (format!("out/{name}"), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_where_and_expressions_give_the_rows_a_subscriber_reads() {
    let (_broker, rules, mut reader, mut publisher) = node(vec![
        rule("alias", r#"SELECT payload.a.b AS x, payload.list[2] AS second, topic FROM "in/alias""#),
        rule("nested", r#"SELECT payload.a.b FROM "in/nested""#),
        rule("cmp", r#"SELECT payload.t AS t FROM "in/cmp" WHERE payload.t > 30 AND payload.t <= 40"#),
        rule("or-not", r#"SELECT payload.k AS k FROM "in/ornot" WHERE NOT (payload.k = 'a') OR payload.force = true"#),
        rule("in", r#"SELECT payload.c AS c FROM "in/in" WHERE payload.c IN ('red', 'green')"#),
        rule("like", r#"SELECT topic FROM "in/like/#" WHERE topic LIKE 'in/like/dev_%'"#),
        rule("null", r#"SELECT payload.v AS v FROM "in/null" WHERE payload.missing IS NULL AND payload.v IS NOT NULL"#),
        rule("math", r#"SELECT payload.a * 2 + 1 AS y, payload.a / 4 AS q, payload.a % 3 AS r, -payload.a AS neg FROM "in/math""#),
        rule(
            "case",
            r#"SELECT CASE WHEN payload.t > 30 THEN 'hot' WHEN payload.t < 10 THEN 'cold' ELSE 'ok' END AS feel,
                      CASE payload.unit WHEN 'C' THEN 'celsius' ELSE 'other' END AS unit
               FROM "in/case""#,
        ),
        rule("cols", r#"SELECT clientid, qos, retain, topic, payload FROM "in/cols""#),
    ])
    .await;
    let got = run(
        &mut reader,
        &mut publisher,
        &[
            ("in/alias", r#"{"a":{"b":3},"list":[10,20,30]}"#),
            ("in/nested", r#"{"a":{"b":"deep"}}"#),
            ("in/cmp", r#"{"t":35}"#),
            ("in/cmp", r#"{"t":45}"#),
            ("in/cmp", r#"{"t":30}"#),
            ("in/ornot", r#"{"k":"b"}"#),
            ("in/ornot", r#"{"k":"a"}"#),
            ("in/ornot", r#"{"k":"a","force":true}"#),
            ("in/in", r#"{"c":"green"}"#),
            ("in/in", r#"{"c":"blue"}"#),
            ("in/like/dev1", "{}"),
            ("in/like/device", "{}"),
            ("in/like/sensor", "{}"),
            ("in/null", r#"{"v":1}"#),
            ("in/null", r#"{"v":null}"#),
            ("in/math", r#"{"a":10}"#),
            ("in/case", r#"{"t":35,"unit":"C"}"#),
            ("in/case", r#"{"t":5,"unit":"F"}"#),
            ("in/case", r#"{"t":20}"#),
            ("in/cols", "raw text"),
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            out("alias", json!({"x": 3, "second": 20, "topic": "in/alias"})),
            out("nested", json!({"payload": {"a": {"b": "deep"}}})),
            out("cmp", json!({"t": 35})),
            out("or-not", json!({"k": "b"})),
            out("or-not", json!({"k": "a"})),
            out("in", json!({"c": "green"})),
            out("like", json!({"topic": "in/like/dev1"})),
            out("like", json!({"topic": "in/like/device"})),
            out("null", json!({"v": 1})),
            out("math", json!({"y": 21, "q": 2.5, "r": 1, "neg": -10})),
            out("case", json!({"feel": "hot", "unit": "celsius"})),
            out("case", json!({"feel": "cold", "unit": "other"})),
            out("case", json!({"feel": "ok", "unit": "other"})),
            out(
                "cols",
                json!({"clientid": "dev-7", "qos": 1, "retain": false, "topic": "in/cols", "payload": "raw text"})
            ),
        ]
    );
    let cmp = rules.get("cmp").unwrap();
    assert_eq!((cmp.stats.matched, cmp.stats.passed, cmp.stats.no_result), (3, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_of_every_group_work_over_the_wire() {
    let (_broker, _rules, mut reader, mut publisher) = node(vec![
        rule(
            "strings",
            r#"SELECT upper(payload.s) AS up, lower('AbC') AS low, concat(payload.s, '-', clientid) AS joined,
                      substr(payload.s, 1, 3) AS sub, strlen(payload.s) AS len, trim('  x ') AS trimmed,
                      replace(payload.s, 'l', 'L') AS rep, split('a,b,c', ',') AS parts
               FROM "in/strings""#,
        ),
        rule(
            "math",
            r#"SELECT abs(payload.n) AS abs, round(2.6) AS round, floor(2.6) AS floor, ceil(2.1) AS ceil,
                      sqrt(16) AS sqrt, power(2, 10) AS pow, fmod(7, 3) AS fmod
               FROM "in/math""#,
        ),
        rule(
            "codec",
            r#"SELECT json_encode(payload.obj) AS encoded, json_decode(payload.text).k AS decoded,
                      base64_encode('hello') AS b64, base64_decode('aGVsbG8=') AS plain,
                      md5('abc') AS md5, sha256('abc') AS sha256
               FROM "in/codec""#,
        ),
        rule(
            "topic",
            r#"SELECT nth(2, split(topic, '/')) AS second, topic_level(topic, 3) AS third FROM "in/topic/+""#,
        ),
        rule(
            "time",
            r#"SELECT is_int(now_timestamp()) AS ts_is_int, unix_ts_to_rfc3339(0, 'second') AS epoch,
                      rfc3339_to_unix_ts('1970-01-01T00:01:00Z', 'second') AS minute
               FROM "in/time""#,
        ),
        rule(
            "types",
            r#"SELECT int('42') AS i, float('1.5') AS f, str(7) AS s, is_num(payload.n) AS num, is_str(payload.n) AS strp
               FROM "in/types""#,
        ),
    ])
    .await;
    let got = run(
        &mut reader,
        &mut publisher,
        &[
            ("in/strings", r#"{"s":"hello"}"#),
            ("in/math", r#"{"n":-3}"#),
            ("in/codec", r#"{"obj":{"a":1},"text":"{\"k\":\"v\"}"}"#),
            ("in/topic/room9", "{}"),
            ("in/time", "{}"),
            ("in/types", r#"{"n":5}"#),
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            out(
                "strings",
                json!({"up": "HELLO", "low": "abc", "joined": "hello-dev-7", "sub": "ell", "len": 5,
                       "trimmed": "x", "rep": "heLLo", "parts": ["a", "b", "c"]})
            ),
            out(
                "math",
                json!({"abs": 3, "round": 3, "floor": 2, "ceil": 3, "sqrt": 4.0, "pow": 1024.0, "fmod": 1})
            ),
            out(
                "codec",
                json!({"encoded": "{\"a\":1}", "decoded": "v", "b64": "aGVsbG8=", "plain": "hello",
                       "md5": "900150983cd24fb0d6963f7d28e17f72",
                       "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})
            ),
            out("topic", json!({"second": "topic", "third": "room9"})),
            out(
                "time",
                json!({"ts_is_int": true, "epoch": "1970-01-01T00:00:00Z", "minute": 60})
            ),
            out(
                "types",
                json!({"i": 42, "f": 1.5, "s": "7", "num": true, "strp": false})
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_do_incase_gives_one_message_per_element_that_passes() {
    let (_broker, rules, mut reader, mut publisher) = node(vec![rule(
        "each",
        r#"FOREACH payload.sensors AS s DO s.id AS id, s.t * 10 AS deci INCASE s.t > 30 FROM "in/each""#,
    )])
    .await;
    let got = run(
        &mut reader,
        &mut publisher,
        &[
            (
                "in/each",
                r#"{"sensors":[{"id":"a","t":31},{"id":"b","t":20},{"id":"c","t":40}]}"#,
            ),
            ("in/each", r#"{"sensors":[]}"#),
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            out("each", json!({"id": "a", "deci": 310})),
            out("each", json!({"id": "c", "deci": 400}))
        ]
    );
    let each = rules.get("each").unwrap();
    assert_eq!((each.stats.matched, each.stats.passed, each.stats.no_result), (2, 1, 1));
    assert_eq!(each.stats.actions[0].success, 2);
}

/// A payload that is not JSON gives no result for a rule that reads `payload.x`, is counted, and costs
/// nothing else: the next message is evaluated as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_json_gives_no_result_and_is_counted() {
    let (_broker, rules, mut reader, mut publisher) = node(vec![rule(
        "hot",
        r#"SELECT payload.temp AS t FROM "in/hot" WHERE payload.temp > 30"#,
    )])
    .await;
    let binary = String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x7b]).into_owned();
    let got = run(
        &mut reader,
        &mut publisher,
        &[
            ("in/hot", "not json {"),
            ("in/hot", &binary),
            ("in/hot", r#"{"temp":"#),
            ("in/hot", r#"{"temp":31}"#),
        ],
    )
    .await;
    assert_eq!(got, vec![out("hot", json!({"t": 31}))]);
    let hot = rules.get("hot").unwrap();
    assert_eq!(
        (
            hot.stats.matched,
            hot.stats.passed,
            hot.stats.no_result,
            hot.stats.failed
        ),
        (4, 1, 3, 0)
    );
}

/// Templates fill the topic, payload and user properties of a republish; the republished QoS and retain flag
/// are the action's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_fills_its_templates_and_keeps_its_qos_and_retain() {
    let (broker, _rules, _reader, publisher) = node(vec![json!({
        "name": "tpl",
        "sql": r#"SELECT payload.temp AS t, clientid, topic FROM "sensors/#""#,
        "actions": [{ "republish": {
            "topic": "alerts/${clientid}/${t}",
            "payload": "{\"t\": ${t}, \"from\": \"${topic}\"}",
            "qos": 2,
            "retain": true,
            "user_properties": { "source": "${clientid}" }
        } }]
    })])
    .await;
    let mut alerts = broker.subscribe("alerts/#", 8).await.unwrap();
    publisher
        .publish("sensors/x", QoS::AtLeastOnce, false, r#"{"temp": 33}"#)
        .await;
    let got = tokio::time::timeout(crate::common::DEADLINE, alerts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*got.topic, "alerts/dev-7/33");
    assert_eq!(&got.payload[..], br#"{"t": 33, "from": "sensors/x"}"#);
    assert_eq!(got.qos, ractmq::QoS::ExactlyOnce);
    assert!(got.retain);
    assert_eq!(
        got.properties.user_properties,
        vec![("source".to_string(), "dev-7".to_string())]
    );
    // Retained: a subscriber that comes later gets it too.
    let mut late = Client::connect(broker.mqtt_addr(), "late").await;
    late.subscribe("alerts/#", QoS::AtLeastOnce).await;
    let p = late.expect_publish().await;
    assert_eq!((p.topic.as_str(), p.retain), ("alerts/dev-7/33", true));
}

/// MQTT 5 properties of the published message are columns: user properties (`pub_props.'User-Property'` and
/// the `user_properties` shorthand) and the others by their names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_properties_and_user_properties_are_columns() {
    use ractmq::parts::codec::{Packet, PublishProperties, QoS as CodecQoS};
    let (broker, _rules, mut reader, _publisher) = node(vec![rule(
        "props",
        r#"SELECT user_properties.site AS site, pub_props.'Content-Type' AS ct,
                  pub_props.'Message-Expiry-Interval' AS expiry FROM "in/props""#,
    )])
    .await;
    let mut raw = crate::common::Raw::connect(broker.mqtt_addr()).await;
    raw.send(&crate::common::connect_v5("v5-pub")).await;
    raw.read_frame().await; // CONNACK
    let publish = ractmq::parts::codec::Publish {
        dup: false,
        qos: CodecQoS::AtMostOnce,
        retain: false,
        topic: "in/props".into(),
        pkid: 0,
        payload: bytes::Bytes::from_static(b"{}"),
        properties: PublishProperties {
            user_properties: vec![("site".into(), "plant-7".into())],
            content_type: Some("application/json".into()),
            message_expiry_interval: Some(60),
            ..PublishProperties::default()
        },
    };
    raw.send_packet(Packet::Publish(publish), ractmq::Protocol::V5).await;
    let p = reader.expect_publish().await;
    assert_eq!(p.topic, "out/props");
    assert_eq!(
        serde_json::from_slice::<Value>(&p.payload).unwrap(),
        json!({"site": "plant-7", "ct": "application/json", "expiry": 60})
    );
}
