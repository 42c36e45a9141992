//! The protocol core driven without a network, shared by the test files: a channel on a session, a fake clock,
//! and outgoing bytes read back with mqttbytes, an independent implementation.
#![allow(dead_code)] // each test file uses part of it

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ractmq_codec::{Connect, Packet, Protocol, Publish, QoS};
use ractmq_protocol::channel::DeliverOutcome;
use ractmq_protocol::connect::check_connect;
use ractmq_protocol::{Channel, Delivery, Effects, Limits, Message, Session};

pub struct Harness {
    pub channel: Channel,
    pub session: Session,
    pub now: Instant,
    pub protocol: Protocol,
}

pub fn start(protocol: Protocol, limits: Limits, tweak: impl FnOnce(&mut Connect)) -> (Harness, Effects) {
    let mut connect = Connect {
        protocol: Some(protocol),
        clean_start: true,
        keep_alive: 10,
        client_id: "c1".into(),
        ..Connect::default()
    };
    tweak(&mut connect);
    let accepted = check_connect(&connect, &limits, || "assigned".into()).unwrap();
    let mut session = Session::new(accepted.client_id.clone());
    let now = Instant::now();
    let mut fx = Effects::default();
    let channel = Channel::start(&connect, &accepted, &mut session, false, Arc::new(limits), now, &mut fx);
    (
        Harness {
            channel,
            session,
            now,
            protocol,
        },
        fx,
    )
}

impl Harness {
    pub fn input(&mut self, packet: Packet) -> Effects {
        let mut fx = Effects::default();
        self.channel.handle_in(&mut self.session, packet, self.now, &mut fx);
        fx
    }

    pub fn deliver(&mut self, d: Delivery) -> (DeliverOutcome, Effects) {
        let mut fx = Effects::default();
        let outcome = self.channel.deliver(&mut self.session, d, self.now, &mut fx);
        (outcome, fx)
    }
}

pub fn v4_packets(mut bytes: BytesMut) -> Vec<mqttbytes::v4::Packet> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(mqttbytes::v4::read(&mut bytes, 1 << 20).expect("valid 3.1.1 frame"));
    }
    out
}

pub fn v5_packets(mut bytes: BytesMut) -> Vec<mqttbytes::v5::Packet> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(mqttbytes::v5::read(&mut bytes, 1 << 20).expect("valid 5.0 frame"));
    }
    out
}

pub fn publish(topic: &str, qos: QoS, pkid: u16) -> Packet {
    Packet::Publish(Publish {
        qos,
        topic: topic.into(),
        pkid,
        payload: Bytes::from_static(b"payload"),
        ..Publish::default()
    })
}

pub fn delivery(qos: QoS) -> Delivery {
    Delivery {
        message: Arc::new(Message::new("out/t", "hello", qos, false)),
        qos,
        retain: false,
        subscription_ids: vec![],
        shared: None,
        stored: None,
    }
}
