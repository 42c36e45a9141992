//! Authorization in the protocol core: what a refused PUBLISH, SUBSCRIBE and will look like on the wire for
//! 5.0 and 3.1.1 clients, and `$SYS` refused whatever the rules say. No network, no clock.

mod common;

use std::sync::Arc;

use common::{publish, start, v4_packets, v5_packets, Harness};
use ractmq_codec::{reason, Packet, Protocol, QoS, Subscribe, SubscriptionRequest, Will};
use ractmq_protocol::{Action, Authorizer, Effects, Limits, Verdict};

/// Allows everything except topics starting with `secret`, which it answers with `denial`.
struct NoSecrets(Verdict);

impl Authorizer for NoSecrets {
    fn authorize(&self, _action: Action, topic: &str, _qos: QoS, _retain: bool) -> Verdict {
        if topic.starts_with("secret") {
            self.0
        } else {
            Verdict::Allow
        }
    }
}

fn client(protocol: Protocol, denial: Verdict, will: Option<&str>) -> (Harness, Effects) {
    let (mut h, _) = start(protocol, Limits::default(), |c| {
        c.will = will.map(|topic| Will {
            topic: topic.into(),
            qos: QoS::AtLeastOnce,
            ..Will::default()
        });
    });
    let mut fx = Effects::default();
    h.channel
        .set_authorizer(&mut h.session, Arc::new(NoSecrets(denial)), &mut fx);
    (h, fx)
}

fn subscribe(filters: &[&str]) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: filters
            .iter()
            .map(|f| SubscriptionRequest {
                filter: (*f).into(),
                qos: QoS::AtLeastOnce,
                ..Default::default()
            })
            .collect(),
        ..Subscribe::default()
    })
}

#[test]
fn a_refused_qos1_publish_gets_puback_0x87_on_5_0_and_is_not_routed() {
    let (mut h, _) = client(Protocol::V5, Verdict::Deny, None);
    let fx = h.input(publish("secret/a", QoS::AtLeastOnce, 7));
    assert!(fx.publishes.is_empty(), "not routed");
    assert_eq!(fx.denied, 1);
    match &v5_packets(fx.out)[..] {
        [mqttbytes::v5::Packet::PubAck(ack)] => {
            assert_eq!((ack.pkid, ack.reason as u8), (7, reason::NOT_AUTHORIZED))
        }
        other => panic!("expected one PUBACK, got {other:?}"),
    }
    assert!(fx.close.is_none(), "the connection stays");
}

#[test]
fn a_refused_qos2_publish_gets_pubrec_0x87_which_ends_the_exchange() {
    let (mut h, _) = client(Protocol::V5, Verdict::Deny, None);
    let fx = h.input(publish("secret/a", QoS::ExactlyOnce, 8));
    assert!(fx.publishes.is_empty());
    match &v5_packets(fx.out)[..] {
        [mqttbytes::v5::Packet::PubRec(rec)] => {
            assert_eq!((rec.pkid, rec.reason as u8), (8, reason::NOT_AUTHORIZED))
        }
        other => panic!("expected one PUBREC, got {other:?}"),
    }
    assert!(h.session.awaiting_rel.is_empty(), "nothing awaits release");
}

#[test]
fn a_refused_publish_from_a_3_1_1_client_is_dropped_and_acknowledged() {
    let (mut h, _) = client(Protocol::V3_1_1, Verdict::Deny, None);
    let fx = h.input(publish("secret/a", QoS::AtLeastOnce, 9));
    assert!(fx.publishes.is_empty(), "dropped");
    assert!(matches!(&v4_packets(fx.out)[..], [mqttbytes::v4::Packet::PubAck(a)] if a.pkid == 9));
    let fx = h.input(publish("secret/a", QoS::ExactlyOnce, 10));
    assert!(fx.publishes.is_empty());
    assert!(matches!(&v4_packets(fx.out)[..], [mqttbytes::v4::Packet::PubRec(a)] if a.pkid == 10));
}

#[test]
fn an_allowed_publish_is_routed() {
    let (mut h, _) = client(Protocol::V5, Verdict::Deny, None);
    let fx = h.input(publish("open/a", QoS::AtLeastOnce, 1));
    assert_eq!(fx.publishes.len(), 1);
    assert_eq!(fx.denied, 0);
}

#[test]
fn a_refused_filter_gets_0x87_on_5_0_and_0x80_on_3_1_1_beside_granted_ones() {
    for (protocol, refused) in [(Protocol::V5, reason::NOT_AUTHORIZED), (Protocol::V3_1_1, 0x80)] {
        let (mut h, _) = client(protocol, Verdict::Deny, None);
        let fx = h.input(subscribe(&["open/#", "secret/#", "$share/g/secret/x"]));
        assert_eq!(fx.routes.len(), 1, "only the allowed filter is subscribed");
        assert_eq!(
            fx.denied, 2,
            "the shared filter is checked without its $share/g/ prefix"
        );
        let codes: Vec<u8> = match protocol {
            Protocol::V5 => match &v5_packets(fx.out)[..] {
                [mqttbytes::v5::Packet::SubAck(ack)] => ack.return_codes.iter().map(v5_code).collect(),
                other => panic!("{other:?}"),
            },
            _ => match &v4_packets(fx.out)[..] {
                [mqttbytes::v4::Packet::SubAck(ack)] => ack.return_codes.iter().map(v4_code).collect(),
                other => panic!("{other:?}"),
            },
        };
        assert_eq!(codes, [1, refused, refused], "{protocol:?}");
        assert_eq!(h.session.subscriptions.len(), 1);
    }
}

#[test]
fn deny_and_disconnect_closes_with_0x87_and_sends_no_ack() {
    let (mut h, _) = client(Protocol::V5, Verdict::DenyAndDisconnect, None);
    let fx = h.input(publish("secret/a", QoS::AtLeastOnce, 3));
    assert!(fx.publishes.is_empty());
    assert_eq!(fx.close.as_ref().map(|c| c.reason), Some(reason::NOT_AUTHORIZED));
    let (mut h, _) = client(Protocol::V5, Verdict::DenyAndDisconnect, None);
    let fx = h.input(subscribe(&["secret/#"]));
    assert!(fx.routes.is_empty());
    assert_eq!(fx.close.as_ref().map(|c| c.reason), Some(reason::NOT_AUTHORIZED));
}

#[test]
fn sys_topics_are_never_writable_even_with_everything_allowed() {
    let (mut h, _) = client(Protocol::V5, Verdict::Allow, None);
    let fx = h.input(publish("$SYS/broker/version", QoS::AtLeastOnce, 4));
    assert!(
        fx.publishes.is_empty(),
        "a spoofed $SYS message is not routed or retained"
    );
    assert!(
        matches!(&v5_packets(fx.out)[..], [mqttbytes::v5::Packet::PubAck(a)] if a.reason as u8 == reason::NOT_AUTHORIZED)
    );
    // Reading $SYS stays allowed.
    let fx = h.input(subscribe(&["$SYS/#"]));
    assert_eq!(fx.routes.len(), 1);
    // Without any authorizer too.
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let fx = h.input(publish("$SYS/x", QoS::AtMostOnce, 0));
    assert!(fx.publishes.is_empty());
}

#[test]
fn a_will_the_client_may_not_publish_is_dropped_at_connect() {
    let (h, fx) = client(Protocol::V5, Verdict::Deny, Some("secret/gone"));
    assert!(h.session.will.is_none(), "a denied will is never published");
    assert_eq!(fx.denied, 1);
    let (h, fx) = client(Protocol::V5, Verdict::Deny, Some("open/gone"));
    assert!(h.session.will.is_some());
    assert_eq!(fx.denied, 0);
    let (h, _) = start(Protocol::V5, Limits::default(), |c| {
        c.will = Some(Will {
            topic: "$SYS/spoof".into(),
            ..Will::default()
        })
    });
    assert!(
        h.session.will.is_none(),
        "a will to $SYS is dropped without any authorizer"
    );
}

fn v5_code(c: &mqttbytes::v5::SubscribeReasonCode) -> u8 {
    *c as u8
}

fn v4_code(c: &mqttbytes::v4::SubscribeReasonCode) -> u8 {
    use mqttbytes::v4::SubscribeReasonCode as R;
    match c {
        R::Success(q) => *q as u8,
        R::Failure => 0x80,
    }
}

/// Allows everything and writes down what it was asked.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(Action, String, QoS, bool)>>);

impl Authorizer for Recorder {
    fn authorize(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> Verdict {
        self.0.lock().unwrap().push((action, topic.into(), qos, retain));
        Verdict::Allow
    }
}

#[test]
fn the_questions_listed_before_a_batch_are_the_ones_the_channel_asks() {
    let limits = Limits {
        max_qos: QoS::AtLeastOnce,
        topic_alias_maximum: 10,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V5, limits, |_| {});
    let recorder = Arc::new(Recorder::default());
    h.channel
        .set_authorizer(&mut h.session, recorder.clone(), &mut Effects::default());
    let aliased = |topic: &str, alias: u16, pkid: u16| {
        let Packet::Publish(mut p) = publish(topic, QoS::AtLeastOnce, pkid) else {
            unreachable!()
        };
        p.properties.topic_alias = Some(alias);
        Packet::Publish(p)
    };
    // Set alias 1 in an earlier batch.
    h.input(aliased("earlier/topic", 1, 1));
    recorder.0.lock().unwrap().clear();
    let mut retained = publish("kept", QoS::AtMostOnce, 0);
    if let Packet::Publish(p) = &mut retained {
        p.retain = true;
    }
    let mut sub = subscribe(&["a/+", "$share/g/jobs/#", "bad/#/x", "$share/broken"]);
    if let Packet::Subscribe(s) = &mut sub {
        s.filters[0].qos = QoS::ExactlyOnce; // granted at most QoS 1
    }
    let batch = vec![
        publish("plain", QoS::AtLeastOnce, 2),
        aliased("", 1, 3),        // the earlier batch's alias
        aliased("now/set", 2, 4), // sets alias 2 ...
        aliased("", 2, 5),        // ... used in the same batch
        publish("$SYS/x", QoS::AtMostOnce, 0),
        retained,
        sub,
    ];
    let mut listed = Vec::new();
    h.channel.authz_questions(&batch, |q| {
        listed.push((q.action, q.topic.to_string(), q.qos, q.retain))
    });
    for packet in batch {
        h.input(packet);
    }
    let asked = recorder.0.lock().unwrap().clone();
    assert_eq!(listed, asked);
    let p = |t: &str, qos, retain| (Action::Publish, t.to_string(), qos, retain);
    assert_eq!(
        listed,
        [
            p("plain", QoS::AtLeastOnce, false),
            p("earlier/topic", QoS::AtLeastOnce, false),
            p("now/set", QoS::AtLeastOnce, false),
            p("now/set", QoS::AtLeastOnce, false),
            p("kept", QoS::AtMostOnce, true),
            (Action::Subscribe, "a/+".into(), QoS::AtLeastOnce, false),
            (Action::Subscribe, "jobs/#".into(), QoS::AtLeastOnce, false),
        ]
    );
}
