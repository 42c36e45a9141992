//! A QoS 0 message fanned out to many subscribers is encoded once per protocol family and the frame appended
//! as it is for every subscriber who would get the same bytes; a subscriber with anything of its own in the
//! frame (a topic alias, subscription identifiers, a RETAIN flag other than as published, a Message Expiry
//! Interval counted down) gets a frame of its own. Outgoing bytes are read back with mqttbytes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{delivery, start, v4_packets, v5_packets, Harness};
use ractmq_codec::{Protocol, QoS};
use ractmq_protocol::channel::DeliverOutcome;
use ractmq_protocol::{Delivery, Journal, Limits, Message};

/// A subscriber connected with `protocol` and nothing asked for at CONNECT.
fn subscriber(protocol: Protocol) -> Harness {
    start(protocol, Limits::default(), |_| {}).0
}

/// A message with 5.0 properties that every subscriber receives alike.
fn message(topic: &str) -> Arc<Message> {
    let mut m = Message::new(topic, Bytes::from(vec![7u8; 64]), QoS::AtLeastOnce, false);
    m.properties.content_type = Some("application/octet-stream".into());
    m.properties.user_properties = vec![("k".into(), "v".into())];
    m.properties.payload_format_indicator = Some(0);
    Arc::new(m)
}

/// `message` as a QoS 0 delivery with the RETAIN flag as published.
fn qos0(message: &Arc<Message>) -> Delivery {
    Delivery {
        message: message.clone(),
        retain: message.retain,
        ..delivery(QoS::AtMostOnce)
    }
}

/// Deliver and return the bytes written, which must be one packet sent.
fn sent(h: &mut Harness, d: Delivery) -> BytesMut {
    let (outcome, fx) = h.deliver(d);
    assert_eq!(outcome, DeliverOutcome::Sent);
    fx.out
}

/// The bytes a subscriber at `protocol` gets for `d` when nothing is shared: a copy of the message, held
/// nowhere else, delivered to a new subscriber.
fn encoded_alone(protocol: Protocol, d: &Delivery) -> BytesMut {
    let alone = Delivery {
        message: Arc::new((*d.message).clone()),
        ..d.clone()
    };
    let out = sent(&mut subscriber(protocol), alone);
    assert!(!out.is_empty());
    out
}

fn v5_publish(bytes: BytesMut) -> mqttbytes::v5::Publish {
    match v5_packets(bytes).remove(0) {
        mqttbytes::v5::Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_qos0_frame_is_encoded_once_per_family_and_the_same_as_each_subscriber_would_encode() {
    let m = message("fan/out");
    let expected_v3 = encoded_alone(Protocol::V3_1_1, &qos0(&m));
    let expected_v5 = encoded_alone(Protocol::V5, &qos0(&m));
    assert_ne!(expected_v3, expected_v5);

    let first = sent(&mut subscriber(Protocol::V3_1_1), qos0(&m));
    assert_eq!(first, expected_v3);
    let shared = m
        .shared_frame(Protocol::V3_1_1)
        .expect("kept for the other subscribers")
        .clone();
    assert_eq!(shared, expected_v3);
    assert_eq!(m.shared_frame(Protocol::V5), None, "5.0 is encoded apart");
    for protocol in [Protocol::V3_1_1, Protocol::V3_1, Protocol::V3_1_1] {
        assert_eq!(sent(&mut subscriber(protocol), qos0(&m)), expected_v3);
    }
    assert_eq!(
        m.shared_frame(Protocol::V3_1).map(|f| f.as_ptr()),
        Some(shared.as_ptr()),
        "3.1 and 3.1.1 share one frame, encoded once"
    );

    for _ in 0..3 {
        assert_eq!(sent(&mut subscriber(Protocol::V5), qos0(&m)), expected_v5);
    }
    assert_eq!(m.shared_frame(Protocol::V5).unwrap(), &expected_v5);

    match v4_packets(expected_v3).remove(0) {
        mqttbytes::v4::Packet::Publish(p) => {
            assert_eq!(
                (p.topic.as_str(), p.qos, p.retain),
                ("fan/out", mqttbytes::QoS::AtMostOnce, false)
            );
            assert_eq!(&p.payload[..], &[7u8; 64][..]);
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    let p = v5_publish(expected_v5);
    assert_eq!(
        (p.topic.as_str(), p.qos, p.retain),
        ("fan/out", mqttbytes::QoS::AtMostOnce, false)
    );
    let props = p.properties.expect("the message's properties");
    assert_eq!(props.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(props.user_properties, vec![("k".to_string(), "v".to_string())]);
    assert_eq!(props.payload_format_indicator, Some(0));
    assert_eq!((props.topic_alias, props.message_expiry_interval), (None, None));
    assert!(props.subscription_identifiers.is_empty());
}

#[test]
fn no_frame_is_kept_for_a_message_no_other_delivery_holds_nor_for_qos1_and_a_copy_starts_without() {
    let m = message("one/sub");
    let d = qos0(&m);
    let out = sent(&mut subscriber(Protocol::V3_1_1), d.clone());
    assert!(m.shared_frame(Protocol::V3_1_1).is_some());
    assert_eq!(
        (*m).clone().shared_frame(Protocol::V3_1_1),
        None,
        "a copy may be changed: its frames are encoded anew"
    );

    let alone = Arc::new((*m).clone());
    let d = Delivery {
        message: alone.clone(),
        ..d
    };
    drop(alone);
    assert_eq!(sent(&mut subscriber(Protocol::V3_1_1), d), out);

    let m = message("qos/1");
    let q1 = Delivery {
        message: m.clone(),
        ..delivery(QoS::AtLeastOnce)
    };
    let mut h = subscriber(Protocol::V3_1_1);
    sent(&mut h, q1.clone());
    sent(&mut h, q1);
    assert_eq!(m.shared_frame(Protocol::V3_1_1), None, "packet ids differ");
}

#[test]
fn topic_aliases_get_frames_of_their_own_and_a_client_out_of_aliases_takes_the_shared_one() {
    let m = message("alias/t");
    let shared = sent(&mut subscriber(Protocol::V5), qos0(&m));
    assert!(m.shared_frame(Protocol::V5).is_some());

    let (mut aliased, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.topic_alias_maximum = Some(1);
    });
    let first = v5_publish(sent(&mut aliased, qos0(&m)));
    assert_eq!(first.topic, "alias/t");
    assert_eq!(first.properties.as_ref().unwrap().topic_alias, Some(1), "set up");
    let second = v5_publish(sent(&mut aliased, qos0(&m)));
    assert_eq!(second.topic, "");
    assert_eq!(second.properties.as_ref().unwrap().topic_alias, Some(1), "used");
    assert_eq!(
        m.shared_frame(Protocol::V5).unwrap(),
        &shared,
        "the shared frame is unchanged"
    );

    // Its one alias is taken by another topic: this one goes in full, as to everybody else.
    let (mut full, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.topic_alias_maximum = Some(1);
    });
    let other = message("other/t");
    sent(&mut full, qos0(&other));
    assert_eq!(sent(&mut full, qos0(&m)), shared);

    // The first delivery was aliased: nothing was kept from it.
    let m = message("alias/first");
    let (mut aliased, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.topic_alias_maximum = Some(1);
    });
    sent(&mut aliased, qos0(&m));
    assert_eq!(m.shared_frame(Protocol::V5), None);
    assert_eq!(
        sent(&mut subscriber(Protocol::V5), qos0(&m)),
        encoded_alone(Protocol::V5, &qos0(&m))
    );
}

#[test]
fn subscription_identifiers_get_frames_of_their_own() {
    let m = message("ids/t");
    let with_ids = Delivery {
        subscription_ids: vec![5, 300],
        ..qos0(&m)
    };
    let expected = encoded_alone(Protocol::V5, &with_ids);
    assert_eq!(sent(&mut subscriber(Protocol::V5), with_ids.clone()), expected);
    assert_eq!(m.shared_frame(Protocol::V5), None, "identifiers are the subscriber's");

    let shared = sent(&mut subscriber(Protocol::V5), qos0(&m));
    assert_ne!(shared, expected);
    let out = sent(&mut subscriber(Protocol::V5), with_ids);
    assert_eq!(out, expected, "not the shared frame");
    let props = v5_publish(out).properties.unwrap();
    assert_eq!(props.subscription_identifiers, vec![5, 300]);
    assert_eq!(m.shared_frame(Protocol::V5).unwrap(), &shared);
}

#[test]
fn a_retain_flag_other_than_as_published_gets_a_frame_of_its_own() {
    let mut m = Message::new("r/t", "kept", QoS::AtMostOnce, true);
    m.properties.user_properties = vec![("a".into(), "b".into())];
    let m = Arc::new(m);
    let cleared = Delivery {
        retain: false,
        ..qos0(&m)
    };
    let expected_cleared = encoded_alone(Protocol::V3_1_1, &cleared);
    let out = sent(&mut subscriber(Protocol::V3_1_1), cleared.clone());
    assert_eq!(out, expected_cleared);
    assert_eq!(
        m.shared_frame(Protocol::V3_1_1),
        None,
        "not as published: nothing kept from it"
    );

    let as_published = sent(&mut subscriber(Protocol::V3_1_1), qos0(&m));
    assert_eq!(as_published, encoded_alone(Protocol::V3_1_1, &qos0(&m)));
    match v4_packets(as_published.clone()).remove(0) {
        mqttbytes::v4::Packet::Publish(p) => assert!(p.retain),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    let out = sent(&mut subscriber(Protocol::V3_1_1), cleared);
    assert_eq!(
        out, expected_cleared,
        "the shared frame has RETAIN set: not for this one"
    );
    match v4_packets(out).remove(0) {
        mqttbytes::v4::Packet::Publish(p) => assert!(!p.retain),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    assert_eq!(m.shared_frame(Protocol::V3_1_1).unwrap(), &as_published);
}

#[test]
fn a_message_with_an_expiry_interval_gets_its_remaining_time_in_every_frame() {
    let mut m = Message::new("e/t", "x", QoS::AtMostOnce, false);
    m.properties.message_expiry_interval = Some(10);
    let mut h = subscriber(Protocol::V5);
    m.received_at = h.now - Duration::from_secs(4);
    let m = Arc::new(m);
    let p = v5_publish(sent(&mut h, qos0(&m)));
    assert_eq!(p.properties.unwrap().message_expiry_interval, Some(6));
    assert_eq!(
        m.shared_frame(Protocol::V5),
        None,
        "the remaining interval is the send's own"
    );

    let mut later = subscriber(Protocol::V5);
    later.now = h.now + Duration::from_secs(3);
    let p = v5_publish(sent(&mut later, qos0(&m)));
    assert_eq!(p.properties.unwrap().message_expiry_interval, Some(3));
    let out = sent(&mut subscriber(Protocol::V3_1_1), qos0(&m));
    assert_eq!(out, encoded_alone(Protocol::V3_1_1, &qos0(&m)));
}

#[test]
fn the_maximum_packet_size_holds_for_the_shared_frame_and_a_stored_copy_is_done_either_way() {
    let m = message("size/t");
    let shared = sent(&mut subscriber(Protocol::V5), qos0(&m));
    assert!(shared.len() > 40 && m.shared_frame(Protocol::V5).is_some());

    let (mut small, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.maximum_packet_size = Some(40);
    });
    let stored = Delivery {
        stored: Some(9),
        ..qos0(&m)
    };
    let (outcome, fx) = small.deliver(stored.clone());
    assert_eq!(outcome, DeliverOutcome::TooLarge);
    assert!(fx.out.is_empty());
    assert_eq!(fx.journal, vec![Journal::Done { stored: 9 }]);

    let (mut exact, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.maximum_packet_size = Some(shared.len() as u32);
    });
    let (outcome, fx) = exact.deliver(stored);
    assert_eq!(outcome, DeliverOutcome::Sent);
    assert_eq!(fx.out, shared, "the shared frame, exactly at the client's maximum");
    assert_eq!(fx.journal, vec![Journal::Done { stored: 9 }], "sent at QoS 0: done");
}
