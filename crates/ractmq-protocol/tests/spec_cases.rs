//! The spec's rules as a table of cases, each test named by the normative statement it checks (MQTT 5.0
//! numbering; a section number where the rule is non-normative text). No network and no clock: time is an
//! `Instant` moved by hand, as the broker's actors move it with real time.
//!
//! | area | statements |
//! |---|---|
//! | will delay | 3.1.2-8, 3.1.2-10, 3.1.3-9, §3.1.3.2.2 |
//! | session expiry and clean start | 3.1.2-4, 3.1.2-5, 3.1.2-6, 3.1.2-23, 3.14.2-2 |
//! | takeover | 3.1.4-3, §3.1.3.2.2 |
//! | keepalive | 3.1.2-22 |
//! | retain handling | 3.3.1-9, 3.3.1-10, 3.3.1-11, 3.3.1-12, 3.3.1-13 |
//! | message expiry | 3.3.2-5, 3.3.2-6 |
//! | topic aliases | 3.3.2-8, 3.3.2-9, 3.3.2-12 |
//! | flow control | 3.3.4-7, 3.3.4-9 |
//! | QoS 2 | 4.3.3-4, 4.3.3-9, 4.3.3-10, 4.3.3-11, 4.4.0-1 |

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{delivery, publish, start, v5_packets, Harness};
use ractmq_codec::{
    reason, Ack, Connect, Disconnect, Packet, Protocol, PublishProperties, QoS, RetainHandling, Subscribe,
    SubscriptionRequest, Will,
};
use ractmq_protocol::channel::DeliverOutcome;
use ractmq_protocol::connect::check_connect;
use ractmq_protocol::{Channel, Effects, Lapse, Limits, Message, RouteChange, Session};

const SEC: Duration = Duration::from_secs(1);

/// A session disconnected at `t0` that held a will with `delay` seconds and expires after `expiry` seconds.
fn offline(delay: u32, expiry: u32, t0: Instant) -> (Session, Lapse) {
    let mut session = Session::new("c1".into());
    session.expiry_interval = expiry;
    session.will = Some(will(delay));
    let lapse = session.disconnected(true, t0);
    (session, lapse)
}

fn will(delay: u32) -> Will {
    Will {
        topic: "will/c1".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        delay_interval: Some(delay),
        properties: PublishProperties::default(),
    }
}

fn will_topic(lapse: &Lapse) -> Option<&str> {
    lapse.will.as_ref().map(|m| &*m.topic)
}

// -- will delay -----------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_2_8_the_will_waits_out_its_delay() {
    let t0 = Instant::now();
    let (mut s, lapse) = offline(10, 100, t0);
    assert_eq!(lapse, Lapse::default(), "nothing at disconnect");
    assert_eq!(s.poll_timeout(), Some(t0 + 10 * SEC));
    assert_eq!(s.handle_timeout(t0 + 9 * SEC), Lapse::default(), "not before the delay");
    let due = s.handle_timeout(t0 + 10 * SEC);
    assert_eq!(will_topic(&due), Some("will/c1"));
    assert!(!due.ended, "the session outlives the will");
    assert_eq!(s.poll_timeout(), Some(t0 + 100 * SEC), "next: the session's expiry");
    assert_eq!(will_topic(&s.handle_timeout(t0 + 100 * SEC)), None, "published once");
}

#[test]
fn mqtt_3_1_2_8_the_will_goes_when_the_session_ends_first() {
    let t0 = Instant::now();
    let (mut s, _) = offline(100, 10, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + 10 * SEC));
    let end = s.handle_timeout(t0 + 10 * SEC);
    assert_eq!((will_topic(&end), end.ended), (Some("will/c1"), true));
}

#[test]
fn mqtt_3_1_2_8_a_will_without_delay_goes_at_disconnect() {
    let (_, lapse) = offline(0, 100, Instant::now());
    assert_eq!(will_topic(&lapse), Some("will/c1"));
    assert!(!lapse.ended);
}

#[test]
fn mqtt_3_1_2_10_a_normal_disconnect_deletes_the_will() {
    let t0 = Instant::now();
    let mut s = Session::new("c1".into());
    s.expiry_interval = 100;
    s.will = Some(will(10));
    assert_eq!(s.disconnected(false, t0), Lapse::default());
    assert!(s.will.is_none());
    assert_eq!(s.poll_timeout(), Some(t0 + 100 * SEC), "only the expiry is left");
    assert_eq!(will_topic(&s.handle_timeout(t0 + 100 * SEC)), None);
}

#[test]
fn mqtt_3_1_3_9_a_resumed_session_cancels_its_delayed_will() {
    let t0 = Instant::now();
    let (mut s, _) = offline(10, 100, t0);
    let attached = s.attach(true, t0 + 5 * SEC);
    assert!(attached.session_present);
    assert_eq!(attached.will, None, "cancelled, not published");
    assert_eq!(s.poll_timeout(), None, "no deadline while connected");
}

#[test]
fn s3_1_3_2_2_a_clean_start_ends_the_session_and_publishes_its_delayed_will() {
    let t0 = Instant::now();
    let (mut s, _) = offline(10, 100, t0);
    let attached = s.attach(false, t0 + 5 * SEC);
    assert!(!attached.session_present);
    assert_eq!(attached.will.map(|m| m.topic), Some("will/c1".into()));
}

// -- session expiry and clean start ----------------------------------------------------------------------

#[test]
fn mqtt_3_1_2_23_a_session_is_kept_until_its_expiry() {
    let t0 = Instant::now();
    let (mut s, _) = offline(0, 60, t0);
    assert_eq!(s.handle_timeout(t0 + 59 * SEC), Lapse::default());
    assert!(s.handle_timeout(t0 + 60 * SEC).ended);
}

#[test]
fn s3_1_2_11_2_expiry_0_ends_the_session_with_its_connection() {
    let (s, lapse) = offline(10, 0, Instant::now());
    assert!(lapse.ended);
    assert_eq!(
        will_topic(&lapse),
        Some("will/c1"),
        "the session ends, so its will cannot wait"
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn s3_1_2_11_2_a_session_without_expiry_never_expires() {
    let (s, lapse) = offline(0, u32::MAX, Instant::now());
    assert!(!lapse.ended);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn mqtt_3_1_2_4_clean_start_discards_the_session() {
    let mut s = Session::new("c1".into());
    s.expiry_interval = 100;
    s.subscriptions.insert("a/+".into(), Default::default());
    let attached = s.attach(false, Instant::now());
    assert!(!attached.session_present);
    assert_eq!(
        attached.dropped,
        vec!["a/+".to_string()],
        "the broker removes these from its index"
    );
    assert!(s.subscriptions.is_empty());
}

#[test]
fn mqtt_3_1_2_5_an_existing_session_is_resumed() {
    let mut s = Session::new("c1".into());
    s.expiry_interval = 100;
    s.subscriptions.insert("a/+".into(), Default::default());
    let attached = s.attach(true, Instant::now());
    assert!(attached.session_present && attached.dropped.is_empty());
    assert_eq!(s.subscriptions.len(), 1);
}

#[test]
fn mqtt_3_1_2_6_a_session_with_expiry_0_is_never_resumed() {
    let mut s = Session::new("c1".into());
    s.subscriptions.insert("a/+".into(), Default::default());
    assert!(!s.attach(true, Instant::now()).session_present);
}

#[test]
fn mqtt_3_14_2_2_session_expiry_cannot_be_raised_from_0_at_disconnect() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let fx = h.input(Packet::Disconnect(Disconnect {
        session_expiry_interval: Some(60),
        ..Disconnect::default()
    }));
    assert_eq!(fx.close.map(|c| c.reason), Some(reason::PROTOCOL_ERROR));
}

#[test]
fn a_restarted_actor_keeps_an_offline_sessions_deadlines() {
    let t0 = Instant::now();
    let (mut s, _) = offline(10, 100, t0);
    assert_eq!(s.recovered(t0 + 50 * SEC), Lapse::default());
    assert_eq!(s.poll_timeout(), Some(t0 + 10 * SEC), "overdue: due at once");
    let mut online = Session::new("c2".into());
    online.will = Some(will(0));
    assert_eq!(
        will_topic(&online.recovered(t0)),
        Some("will/c1"),
        "a lost connection's will goes"
    );
}

// -- takeover ------------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_4_3_the_old_connection_is_closed_with_0x8e() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let mut fx = Effects::default();
    h.channel
        .close_with(reason::SESSION_TAKEN_OVER, true, "session taken over".into(), &mut fx);
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::Disconnect(d) => assert_eq!(d.reason_code as u8, reason::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn s3_1_3_2_2_a_takeover_publishes_the_old_will_unless_resumed_with_a_delay() {
    let now = Instant::now();
    for (delay, resume, published) in [(0, true, true), (0, false, true), (10, false, true), (10, true, false)] {
        let mut s = Session::new("c1".into());
        s.expiry_interval = 100;
        s.will = Some(will(delay));
        let attached = s.attach(resume, now);
        assert_eq!(
            attached.will.is_some(),
            published,
            "will delay {delay}, resume {resume}"
        );
        assert!(s.will.is_none(), "the old connection's will is gone either way");
    }
}

// -- keepalive -------------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_1_2_22_one_and_a_half_keepalives_of_silence_close_with_0x8d() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |c| c.keep_alive = 10);
    assert_eq!(h.channel.poll_timeout(), Some(h.now + 15 * SEC));
    let mut fx = Effects::default();
    h.channel.handle_timeout(h.now + 15 * SEC, &mut fx);
    assert!(fx.close.is_none(), "exactly 1.5 keepalives is still in time");
    h.channel.handle_timeout(h.now + 16 * SEC, &mut fx);
    assert_eq!(fx.close.map(|c| c.reason), Some(reason::KEEP_ALIVE_TIMEOUT));
}

// -- retain handling -------------------------------------------------------------------------------------------

fn subscribe(h: &mut Harness, filter: &str, handling: RetainHandling) -> bool {
    let fx = h.input(Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: vec![SubscriptionRequest {
            filter: filter.into(),
            qos: QoS::AtLeastOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: handling,
        }],
        ..Subscribe::default()
    }));
    match fx.routes.as_slice() {
        [RouteChange::Subscribe { send_retained, .. }] => *send_retained,
        other => panic!("expected one subscription, got {other:?}"),
    }
}

#[test]
fn mqtt_3_3_1_9_retain_handling_0_sends_retained_messages_at_every_subscribe() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert!(subscribe(&mut h, "r/#", RetainHandling::SendAtSubscribe));
    assert!(
        subscribe(&mut h, "r/#", RetainHandling::SendAtSubscribe),
        "again on a repeat"
    );
}

#[test]
fn mqtt_3_3_1_10_retain_handling_1_sends_them_only_for_a_new_subscription() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert!(subscribe(&mut h, "r/#", RetainHandling::SendIfNew));
    assert!(
        !subscribe(&mut h, "r/#", RetainHandling::SendIfNew),
        "not for one that existed"
    );
}

#[test]
fn mqtt_3_3_1_11_retain_handling_2_never_sends_them() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert!(!subscribe(&mut h, "r/#", RetainHandling::DoNotSend));
}

#[test]
fn s4_8_2_a_shared_subscription_gets_no_retained_messages() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert!(!subscribe(&mut h, "$share/g/r/#", RetainHandling::SendAtSubscribe));
}

#[test]
fn mqtt_3_3_1_12_and_13_retained_messages_at_subscribe_carry_retain_1() {
    let message = Arc::new(Message::new("r/1", "x", QoS::ExactlyOnce, true));
    let options = ractmq_protocol::SubOptions {
        qos: QoS::AtLeastOnce,
        subscription_id: Some(7),
        ..Default::default()
    };
    let d = ractmq_protocol::Delivery::retained(message, &options);
    assert_eq!((d.retain, d.qos, d.subscription_ids), (true, QoS::AtLeastOnce, vec![7]));
}

// -- message expiry -----------------------------------------------------------------------------------------

#[test]
fn mqtt_3_3_2_5_an_expired_message_is_not_sent_and_mqtt_3_3_2_6_the_rest_carry_what_is_left() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    let mut expiring = delivery(QoS::AtLeastOnce);
    let mut message = (*expiring.message).clone();
    message.properties.message_expiry_interval = Some(10);
    message.received_at = h.now - 4 * SEC;
    expiring.message = Arc::new(message.clone());
    let (outcome, fx) = h.deliver(expiring.clone());
    assert_eq!(outcome, DeliverOutcome::Sent);
    match &v5_packets(fx.out)[0] {
        mqttbytes::v5::Packet::Publish(p) => {
            assert_eq!(p.properties.as_ref().and_then(|p| p.message_expiry_interval), Some(6))
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    message.received_at = h.now - 10 * SEC;
    expiring.message = Arc::new(message);
    assert_eq!(h.deliver(expiring).0, DeliverOutcome::Expired);
}

// -- topic aliases ------------------------------------------------------------------------------------------

fn aliased(topic: &str, alias: u16) -> Packet {
    let mut packet = publish(topic, QoS::AtMostOnce, 0);
    if let Packet::Publish(p) = &mut packet {
        p.properties.topic_alias = Some(alias);
    }
    packet
}

#[test]
fn mqtt_3_3_2_8_topic_alias_0_is_refused_with_0x94() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert_eq!(
        h.input(aliased("a", 0)).close.map(|c| c.reason),
        Some(reason::TOPIC_ALIAS_INVALID)
    );
}

#[test]
fn mqtt_3_3_2_9_an_alias_above_the_servers_maximum_is_refused_with_0x94() {
    let limits = Limits {
        topic_alias_maximum: 4,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V5, limits, |_| {});
    assert_eq!(
        h.input(aliased("a", 5)).close.map(|c| c.reason),
        Some(reason::TOPIC_ALIAS_INVALID)
    );
}

#[test]
fn mqtt_3_3_2_12_an_alias_set_up_stands_for_its_topic() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert_eq!(&*h.input(aliased("long/topic", 1)).publishes[0].topic, "long/topic");
    assert_eq!(&*h.input(aliased("", 1)).publishes[0].topic, "long/topic");
    let unknown = h.input(aliased("", 2));
    assert_eq!(
        unknown.close.map(|c| c.reason),
        Some(reason::PROTOCOL_ERROR),
        "an alias never set up"
    );
}

// -- flow control -------------------------------------------------------------------------------------------

#[test]
fn mqtt_3_3_4_9_no_more_unacknowledged_deliveries_than_the_clients_receive_maximum() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.receive_maximum = Some(2)
    });
    assert_eq!(h.channel.window_room(&h.session), 2);
    h.deliver(delivery(QoS::AtLeastOnce));
    h.deliver(delivery(QoS::ExactlyOnce));
    assert_eq!(
        h.channel.window_room(&h.session),
        0,
        "the broker holds the rest in the queue"
    );
    let pkid = h.session.inflight[1].pkid;
    let fx = h.input(Packet::PubRec(Ack::with_reason(pkid, reason::UNSPECIFIED_ERROR)));
    assert!(fx.window_opened, "a PUBREC of 0x80 or above ends the exchange");
    assert_eq!(h.channel.window_room(&h.session), 1);
}

#[test]
fn mqtt_3_3_4_7_more_qos2_in_flight_than_the_servers_receive_maximum_is_refused_with_0x93() {
    let limits = Limits {
        receive_maximum: 1,
        ..Limits::default()
    };
    let (mut h, _) = start(Protocol::V5, limits, |_| {});
    assert!(h.input(publish("t", QoS::ExactlyOnce, 1)).close.is_none());
    let over = h.input(publish("t", QoS::ExactlyOnce, 2));
    assert_eq!(over.close.map(|c| c.reason), Some(reason::RECEIVE_MAXIMUM_EXCEEDED));
}

// -- QoS 2 -------------------------------------------------------------------------------------------------------

#[test]
fn mqtt_4_3_3_9_a_repeated_qos2_publish_before_pubrel_is_acknowledged_not_routed() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    assert_eq!(h.input(publish("q", QoS::ExactlyOnce, 9)).publishes.len(), 1);
    let again = h.input(publish("q", QoS::ExactlyOnce, 9));
    assert!(again.publishes.is_empty());
    assert!(matches!(v5_packets(again.out)[0], mqttbytes::v5::Packet::PubRec(_)));
}

#[test]
fn mqtt_4_3_3_10_pubrel_is_answered_with_pubcomp_and_mqtt_4_3_3_11_the_id_is_then_new() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    h.input(publish("q", QoS::ExactlyOnce, 9));
    let rel = h.input(Packet::PubRel(Ack::new(9)));
    assert!(matches!(v5_packets(rel.out)[0], mqttbytes::v5::Packet::PubComp(_)));
    assert_eq!(h.input(publish("q", QoS::ExactlyOnce, 9)).publishes.len(), 1);
}

#[test]
fn mqtt_4_3_3_4_pubrec_is_answered_with_pubrel_and_the_message_waits_for_pubcomp() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    h.deliver(delivery(QoS::ExactlyOnce));
    let pkid = h.session.inflight[0].pkid;
    let rec = h.input(Packet::PubRec(Ack::new(pkid)));
    assert!(matches!(v5_packets(rec.out)[0], mqttbytes::v5::Packet::PubRel(_)));
    assert!(!rec.window_opened, "still in flight until PUBCOMP");
    assert!(h.input(Packet::PubComp(Ack::new(pkid))).window_opened);
    assert!(h.session.inflight.is_empty());
}

#[test]
fn mqtt_4_4_0_1_a_resumed_session_resends_publish_with_dup_and_pubrel() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |_| {});
    h.deliver(delivery(QoS::ExactlyOnce));
    h.deliver(delivery(QoS::ExactlyOnce));
    let received = h.session.inflight[1].pkid;
    h.input(Packet::PubRec(Ack::new(received)));
    let connect = Connect {
        protocol: Some(Protocol::V5),
        client_id: "c1".into(),
        ..Connect::default()
    };
    let accepted = check_connect(&connect, &Limits::default(), || unreachable!()).unwrap();
    h.session.expiry_interval = 100;
    let attached = h.session.attach(true, h.now);
    let mut fx = Effects::default();
    let limits = Arc::new(Limits::default());
    Channel::start(
        &connect,
        &accepted,
        &mut h.session,
        attached.session_present,
        limits,
        h.now,
        &mut fx,
    );
    let packets = v5_packets(fx.out);
    assert!(matches!(&packets[1], mqttbytes::v5::Packet::Publish(p) if p.dup));
    assert!(matches!(&packets[2], mqttbytes::v5::Packet::PubRel(r) if r.pkid == received));
}
