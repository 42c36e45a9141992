//! The per-connection state machine driven without a network: packets and a fake clock in, bytes and effects
//! out. Outgoing bytes are read back with mqttbytes, an independent implementation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{delivery, publish, start, v4_packets, v5_packets};
use ractmq_codec::{
    reason, Ack, Connect, ConnectProperties, Disconnect, Packet, Protocol, Publish, QoS, Subscribe,
    SubscriptionRequest, Will,
};
use ractmq_protocol::channel::DeliverOutcome;
use ractmq_protocol::connect::check_connect;
use ractmq_protocol::{Channel, Delivery, Effects, Limits, Message, RouteChange};

#[test]
fn connack_v311_and_v5_assigned_identifier() {
    let (_, fx) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    assert_eq!(&fx.out[..], &[0x20, 0x02, 0x00, 0x00]);
    let (_, fx) = start(Protocol::V5, Limits::default(), |c| c.client_id.clear());
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::ConnAck(ack) => {
            let props = ack.properties.as_ref().unwrap();
            assert_eq!(props.assigned_client_identifier.as_deref(), Some("assigned"));
            assert_eq!(props.shared_subscription_available, None, "available, the default");
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let off = Limits {
        shared_subscriptions: false,
        ..Limits::default()
    };
    let (_, fx) = start(Protocol::V5, off, |_| {});
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::ConnAck(ack) => {
            assert_eq!(ack.properties.as_ref().unwrap().shared_subscription_available, Some(0));
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn qos1_publish_is_routed_and_acknowledged() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let fx = h.input(publish("a/b", QoS::AtLeastOnce, 7));
    assert_eq!(fx.publishes.len(), 1);
    assert_eq!(&*fx.publishes[0].topic, "a/b");
    assert_eq!(fx.publishes[0].publisher.as_deref(), Some("c1"));
    assert_eq!(
        v4_packets(fx.out),
        vec![mqttbytes::v4::Packet::PubAck(mqttbytes::v4::PubAck::new(7))]
    );
}

#[test]
fn qos2_publish_is_routed_exactly_once() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let first = h.input(publish("q2", QoS::ExactlyOnce, 9));
    assert_eq!(first.publishes.len(), 1);
    let mut again = publish("q2", QoS::ExactlyOnce, 9);
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    let resent = h.input(again);
    assert!(
        resent.publishes.is_empty(),
        "a re-sent PUBLISH before PUBREL is not routed twice"
    );
    assert_eq!(
        v4_packets(resent.out),
        vec![mqttbytes::v4::Packet::PubRec(mqttbytes::v4::PubRec::new(9))]
    );
    let rel = h.input(Packet::PubRel(Ack::new(9)));
    assert_eq!(
        v4_packets(rel.out),
        vec![mqttbytes::v4::Packet::PubComp(mqttbytes::v4::PubComp::new(9))]
    );
    assert_eq!(
        h.input(publish("q2", QoS::ExactlyOnce, 9)).publishes.len(),
        1,
        "after PUBCOMP the id is free"
    );
}

#[test]
fn outgoing_qos1_waits_for_puback_and_the_window_is_bounded() {
    let limits = Limits {
        max_inflight: 2,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V3_1_1, limits, |_| {});
    assert_eq!(h.channel.window_room(&h.session), 2);
    let (outcome, fx) = h.deliver(delivery(QoS::AtLeastOnce));
    assert_eq!(outcome, DeliverOutcome::Sent);
    let pkid = match &v4_packets(fx.out)[0] {
        mqttbytes::v4::Packet::Publish(p) => {
            assert_eq!(
                (p.qos, p.dup, p.topic.as_str()),
                (mqttbytes::QoS::AtLeastOnce, false, "out/t")
            );
            p.pkid
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    h.deliver(delivery(QoS::AtLeastOnce));
    assert_eq!(h.channel.window_room(&h.session), 0);
    let fx = h.input(Packet::PubAck(Ack::new(pkid)));
    assert!(fx.window_opened);
    assert_eq!(h.channel.window_room(&h.session), 1);
}

#[test]
fn v5_receive_maximum_of_the_client_caps_the_window() {
    let (h, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties = ConnectProperties {
            receive_maximum: Some(3),
            ..ConnectProperties::default()
        }
    });
    assert_eq!(h.channel.window_room(&h.session), 3);
}

#[test]
fn resume_resends_inflight_with_dup_and_pubrel_for_received_ones() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    h.deliver(delivery(QoS::AtLeastOnce));
    h.deliver(delivery(QoS::ExactlyOnce));
    let second = h.session.inflight[1].pkid;
    h.input(Packet::PubRec(Ack::new(second)));
    // The connection drops; a new one resumes the session.
    let connect = Connect {
        protocol: Some(Protocol::V3_1_1),
        client_id: "c1".into(),
        ..Connect::default()
    };
    let accepted = check_connect(&connect, &Limits::default(), || unreachable!()).unwrap();
    let mut fx = Effects::default();
    Channel::start(
        &connect,
        &accepted,
        &mut h.session,
        true,
        Arc::new(Limits::default()),
        h.now,
        &mut fx,
    );
    let packets = v4_packets(fx.out);
    assert_eq!(
        packets[0],
        mqttbytes::v4::Packet::ConnAck(mqttbytes::v4::ConnAck::new(
            mqttbytes::v4::ConnectReturnCode::Success,
            true
        ))
    );
    match &packets[1] {
        mqttbytes::v4::Packet::Publish(p) => assert!(p.dup && p.pkid == h.session.inflight[0].pkid),
        other => panic!("expected a DUP PUBLISH, got {other:?}"),
    }
    assert_eq!(
        packets[2],
        mqttbytes::v4::Packet::PubRel(mqttbytes::v4::PubRel::new(second))
    );
}

#[test]
fn keepalive_closes_after_one_and_a_half_intervals_with_the_will() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |c| c.keep_alive = 10);
    let mut fx = Effects::default();
    h.channel.handle_timeout(h.now + Duration::from_secs(14), &mut fx);
    assert!(fx.close.is_none(), "14 s < 15 s");
    h.channel.handle_timeout(h.now + Duration::from_secs(16), &mut fx);
    let close = fx.close.expect("closed after 15 s");
    assert_eq!(close.reason, reason::KEEP_ALIVE_TIMEOUT);
    assert!(close.publish_will);
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::Disconnect(d) => {
            assert_eq!(d.reason_code as u8, 0x8d, "5.0 clients are told why");
            assert_eq!(
                d.properties.as_ref().unwrap().reason_string.as_deref(),
                Some("keepalive timeout")
            );
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn keepalive_zero_never_times_out() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |c| c.keep_alive = 0);
    let mut fx = Effects::default();
    h.channel.handle_timeout(h.now + Duration::from_secs(86_400), &mut fx);
    assert!(fx.close.is_none());
}

#[test]
fn subscribe_validates_each_filter() {
    let sub = |filters: &[&str]| {
        Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: filters
                .iter()
                .map(|f| SubscriptionRequest {
                    filter: f.to_string(),
                    qos: QoS::ExactlyOnce,
                    ..SubscriptionRequest::default()
                })
                .collect(),
            ..Subscribe::default()
        })
    };
    let no_shared = Limits {
        shared_subscriptions: false,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let fx = h.input(sub(&["ok/+", "bad/#/x", "$share//t"]));
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::SubAck(ack) => {
            let codes: Vec<u8> = ack.return_codes.iter().map(|c| *c as u8).collect();
            assert_eq!(codes, vec![0x02, 0x8F, 0x8F]);
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    assert_eq!(fx.routes.len(), 1);
    assert!(matches!(&fx.routes[0], RouteChange::Subscribe { filter, send_retained: true, .. } if filter == "ok/+"));
    // Shared subscriptions switched off: a 3.1.1 client gets 0x80 for that filter, a 5.0 client (told so in
    // CONNACK) a DISCONNECT 0x9E.
    let (mut h, _) = start(Protocol::V3_1_1, no_shared.clone(), |_| {});
    let fx = h.input(sub(&["$share/g/t"]));
    assert_eq!(&fx.out[..], &[0x90, 0x03, 0x00, 0x01, 0x80]);
    let (mut h, _) = start(Protocol::V5, no_shared, |_| {});
    let fx = h.input(sub(&["$share/g/t"]));
    assert_eq!(fx.close.map(|c| c.reason), Some(0x9E));
    // Served by default: the route carries the filter as the client sent it.
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let fx = h.input(sub(&["$share/g/t"]));
    assert!(matches!(&fx.routes[0], RouteChange::Subscribe { filter, .. } if filter == "$share/g/t"));
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let fx = h.input(sub(&["bad/#/x"]));
    assert_eq!(
        &fx.out[..],
        &[0x90, 0x03, 0x00, 0x01, 0x80],
        "3.1.1 failure code is 0x80"
    );
}

#[test]
fn disconnect_with_will_publishes_it_and_a_normal_one_drops_it() {
    let will = |c: &mut Connect| {
        c.will = Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"bye"),
            ..Will::default()
        })
    };
    let (mut h, _) = start(Protocol::V5, Limits::default(), will);
    let fx = h.input(Packet::Disconnect(Disconnect::with_reason(
        reason::DISCONNECT_WITH_WILL,
    )));
    assert!(fx.close.unwrap().publish_will);
    assert!(h.session.will.is_some());
    let (mut h, _) = start(Protocol::V5, Limits::default(), will);
    let fx = h.input(Packet::Disconnect(Disconnect::default()));
    assert!(!fx.close.unwrap().publish_will);
    assert!(h.session.will.is_none());
}

#[test]
fn session_expiry_cannot_be_raised_from_zero_at_disconnect() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let fx = h.input(Packet::Disconnect(Disconnect {
        session_expiry_interval: Some(60),
        ..Disconnect::default()
    }));
    assert_eq!(fx.close.unwrap().reason, reason::PROTOCOL_ERROR);
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::Disconnect(d) => {
            assert_eq!(d.reason_code as u8, 0x82);
            let why = d
                .properties
                .as_ref()
                .and_then(|p| p.reason_string.clone())
                .unwrap_or_default();
            assert!(why.contains("session expiry"), "{why}");
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn inbound_topic_aliases_are_set_used_and_checked() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let aliased = |topic: &str, alias: u16| {
        let mut p = Publish {
            topic: topic.into(),
            ..Publish::default()
        };
        p.properties.topic_alias = Some(alias);
        Packet::Publish(p)
    };
    assert_eq!(&*h.input(aliased("long/topic", 1)).publishes[0].topic, "long/topic");
    let fx = h.input(aliased("", 1));
    assert_eq!(&*fx.publishes[0].topic, "long/topic");
    assert_eq!(
        fx.publishes[0].properties.topic_alias, None,
        "the alias is not forwarded"
    );
    let fx = h.input(aliased("", 2));
    assert_eq!(fx.close.unwrap().reason, reason::PROTOCOL_ERROR, "unknown alias");
    let fx = h.input(aliased("x", 1000));
    assert_eq!(fx.close.unwrap().reason, reason::TOPIC_ALIAS_INVALID);
}

#[test]
fn expired_messages_are_not_delivered_and_the_rest_carry_the_remaining_interval() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let mut m = Message::new("e", "x", QoS::AtMostOnce, false);
    m.properties.message_expiry_interval = Some(10);
    m.received_at = h.now - Duration::from_secs(4);
    let d = Delivery {
        message: Arc::new(m.clone()),
        qos: QoS::AtMostOnce,
        retain: false,
        subscription_ids: vec![],
        shared: None,
        stored: None,
    };
    let (outcome, fx) = h.deliver(d.clone());
    assert_eq!(outcome, DeliverOutcome::Sent);
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::Publish(p) => {
            assert_eq!(p.properties.as_ref().unwrap().message_expiry_interval, Some(6));
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    m.received_at = h.now - Duration::from_secs(11);
    let (outcome, fx) = h.deliver(Delivery {
        message: Arc::new(m),
        ..d
    });
    assert_eq!(outcome, DeliverOutcome::Expired);
    assert!(fx.out.is_empty());
}

#[test]
fn messages_over_the_client_maximum_packet_size_are_dropped_for_it() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.maximum_packet_size = Some(20);
    });
    let mut d = delivery(QoS::AtLeastOnce);
    d.message = Arc::new(Message::new("out/t", vec![0u8; 100], QoS::AtLeastOnce, false));
    let (outcome, fx) = h.deliver(d);
    assert_eq!(outcome, DeliverOutcome::TooLarge);
    assert!(fx.out.is_empty());
    assert!(
        h.session.inflight.is_empty(),
        "nothing left waiting for an ack that cannot come"
    );
}

#[test]
fn more_qos2_in_flight_than_receive_maximum_is_refused() {
    let limits = Limits {
        receive_maximum: 2,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V5, limits, |_| {});
    h.input(publish("a", QoS::ExactlyOnce, 1));
    h.input(publish("a", QoS::ExactlyOnce, 2));
    let fx = h.input(publish("a", QoS::ExactlyOnce, 3));
    assert_eq!(fx.close.unwrap().reason, reason::RECEIVE_MAXIMUM_EXCEEDED);
    assert_eq!(h.protocol, Protocol::V5);
}

#[test]
fn subscriptions_beyond_the_per_client_maximum_are_refused_with_quota_exceeded() {
    let limits = Limits {
        max_subscriptions: 2,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V5, limits, |_| {});
    let sub = |pkid: u16, filter: &str| {
        Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![SubscriptionRequest {
                filter: filter.into(),
                ..SubscriptionRequest::default()
            }],
            ..Subscribe::default()
        })
    };
    let codes = |fx: Effects| match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::SubAck(ack) => ack.return_codes.iter().map(|c| *c as u8).collect::<Vec<u8>>(),
        other => panic!("expected SUBACK, got {other:?}"),
    };
    assert_eq!(codes(h.input(sub(1, "a"))), vec![0x00]);
    assert_eq!(codes(h.input(sub(2, "b"))), vec![0x00]);
    assert_eq!(
        codes(h.input(sub(3, "c"))),
        vec![0x97],
        "a third subscription is over quota"
    );
    assert_eq!(
        codes(h.input(sub(4, "a"))),
        vec![0x00],
        "replacing an existing one is not"
    );
    assert_eq!(h.session.subscriptions.len(), 2);
}

#[test]
fn the_broker_assigns_topic_aliases_up_to_the_clients_maximum() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.topic_alias_maximum = Some(2);
    });
    let to = |topic: &str| Delivery {
        message: Arc::new(Message::new(topic, "p", QoS::AtMostOnce, false)),
        ..delivery(QoS::AtMostOnce)
    };
    let mut sent = Vec::new();
    for topic in ["a/1", "a/1", "a/2", "a/3", "a/2"] {
        let (outcome, fx) = h.deliver(to(topic));
        assert_eq!(outcome, DeliverOutcome::Sent);
        match v5_packets(fx.out).remove(0) {
            mqttbytes::v5::Packet::Publish(p) => {
                let alias = p.properties.and_then(|props| props.topic_alias);
                sent.push((p.topic.clone(), alias));
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    let expected = [
        ("a/1", Some(1)), // alias set up
        ("", Some(1)),    // and used
        ("a/2", Some(2)),
        ("a/3", None), // the client allows two
        ("", Some(2)),
    ];
    let expected: Vec<(String, Option<u16>)> = expected.iter().map(|(t, a)| (t.to_string(), *a)).collect();
    assert_eq!(sent, expected);

    // A client that allows none, or a broker configured to assign none, gets full topics.
    for (client_max, ours) in [(None, 64), (Some(5), 0)] {
        let limits = Limits {
            outbound_topic_aliases: ours,
            ..Limits::default()
        };
        let (mut h, _) = start(Protocol::V5, limits, |c| c.properties.topic_alias_maximum = client_max);
        let (_, fx) = h.deliver(to("a/1"));
        match v5_packets(fx.out).remove(0) {
            mqttbytes::v5::Packet::Publish(p) => {
                assert_eq!(p.topic, "a/1");
                assert_eq!(p.properties.and_then(|props| props.topic_alias), None);
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}
