//! The journal a persistent session writes as its messages move, and which packets wait for it: driven with no
//! store and no network, as the broker's store reads it.

mod common;

use common::*;
use ractmq_codec::{Ack, Packet, Protocol, QoS};
use ractmq_protocol::{Journal, Limits};

fn stored(qos: QoS, number: u64) -> ractmq_protocol::Delivery {
    let mut d = delivery(qos);
    d.stored = Some(number);
    d
}

#[test]
fn a_stored_qos2_copy_goes_out_only_after_its_packet_id_is_stored_and_leaves_the_store_at_pubcomp() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let (_, fx) = h.deliver(stored(QoS::ExactlyOnce, 7));
    let pkid = h.session.inflight[0].pkid;
    assert_eq!(
        fx.journal,
        vec![Journal::Sent {
            stored: 7,
            pkid,
            exactly_once: true
        }]
    );
    assert!(
        fx.output_waits_for_journal(),
        "the PUBLISH waits until its packet id is stored"
    );

    let fx = h.input(Packet::PubRec(Ack::new(pkid)));
    assert_eq!(fx.journal, vec![Journal::Received { stored: 7 }]);
    assert!(
        fx.output_waits_for_journal(),
        "PUBREL waits until the receipt is stored"
    );
    let fx = h.input(Packet::PubRec(Ack::new(pkid)));
    assert!(fx.journal.is_empty(), "a PUBREC sent again changes nothing stored");

    let fx = h.input(Packet::PubComp(Ack::new(pkid)));
    assert_eq!(fx.journal, vec![Journal::Done { stored: 7 }]);
    assert!(!fx.output_waits_for_journal());
}

#[test]
fn a_stored_qos1_copy_is_journalled_without_holding_its_publish() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let (_, fx) = h.deliver(stored(QoS::AtLeastOnce, 3));
    let pkid = h.session.inflight[0].pkid;
    assert_eq!(
        fx.journal,
        vec![Journal::Sent {
            stored: 3,
            pkid,
            exactly_once: false
        }]
    );
    assert!(
        !fx.output_waits_for_journal(),
        "a lost QoS 1 record costs a duplicate at most"
    );
    let fx = h.input(Packet::PubAck(Ack::new(pkid)));
    assert_eq!(fx.journal, vec![Journal::Done { stored: 3 }]);
}

#[test]
fn a_stored_qos0_copy_is_done_once_sent_and_expired_or_oversized_copies_are_done_too() {
    let (mut h, _) = start(Protocol::V5, Limits::default(), |c| {
        c.properties.maximum_packet_size = Some(30);
    });
    let (_, fx) = h.deliver(stored(QoS::AtMostOnce, 1));
    assert_eq!(fx.journal, vec![Journal::Done { stored: 1 }]);

    let mut big = stored(QoS::AtLeastOnce, 2);
    big.message = std::sync::Arc::new(ractmq_protocol::Message::new(
        "t",
        vec![0u8; 100],
        QoS::AtLeastOnce,
        false,
    ));
    let (_, fx) = h.deliver(big);
    assert_eq!(fx.journal, vec![Journal::Done { stored: 2 }]);

    let mut old = ractmq_protocol::Message::new("t", "x", QoS::AtLeastOnce, false);
    old.properties.message_expiry_interval = Some(1);
    old.received_at = h.now - std::time::Duration::from_secs(5);
    let mut expired = stored(QoS::AtLeastOnce, 3);
    expired.message = std::sync::Arc::new(old);
    let (_, fx) = h.deliver(expired);
    assert_eq!(fx.journal, vec![Journal::Done { stored: 3 }]);
}

#[test]
fn a_persistent_session_stores_its_qos2_receipts_before_pubrec_and_pubcomp() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    h.session.persistent = true;
    let fx = h.input(publish("in/t", QoS::ExactlyOnce, 9));
    assert_eq!(fx.journal, vec![Journal::AwaitingRelease { pkid: 9 }]);
    assert!(
        fx.output_waits_for_journal(),
        "PUBREC waits until the receipt is stored"
    );
    let fx = h.input(publish("in/t", QoS::ExactlyOnce, 9));
    assert!(
        fx.journal.is_empty() && fx.publishes.is_empty(),
        "a resent PUBLISH is not routed again"
    );
    let fx = h.input(Packet::PubRel(Ack::new(9)));
    assert_eq!(fx.journal, vec![Journal::Released { pkid: 9 }]);
    assert!(
        fx.output_waits_for_journal(),
        "PUBCOMP waits until the release is stored"
    );
}

#[test]
fn a_session_the_store_does_not_keep_journals_nothing() {
    let (mut h, _) = start(Protocol::V3_1_1, Limits::default(), |_| {});
    let fx = h.input(publish("in/t", QoS::ExactlyOnce, 9));
    assert!(fx.journal.is_empty());
    let (_, fx) = h.deliver(delivery(QoS::ExactlyOnce));
    assert!(fx.journal.is_empty() && !fx.output_waits_for_journal());
}
