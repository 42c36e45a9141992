//! Differential test of the mqttbytes-backed decode path: thousands of random valid PUBLISH, ack,
//! SUBSCRIBE and UNSUBSCRIBE packets are written by a small writer in this file (not the crate's encoder),
//! sent as one stream, and must decode to exactly the packets they were written from, with every PUBLISH
//! payload still a slice of the received buffer. For 3.1.1 the hand-written frames are also compared with
//! mqttbytes' own writers.

mod common;

use bytes::BytesMut;
use common::*;
use ractmq_codec::{
    Ack, Packet, Protocol, Publish, PublishProperties, QoS, RetainHandling, Subscribe, SubscriptionRequest, Unsubscribe,
};

// ---- random packets ----

fn random_publish(rng: &mut Rng, v5: bool) -> Publish {
    let qos = rng.qos();
    let mut properties = PublishProperties::default();
    if v5 {
        properties = PublishProperties {
            payload_format_indicator: rng.maybe(|r| r.below(2) as u8),
            message_expiry_interval: rng.maybe(|r| r.next() as u32),
            topic_alias: rng.maybe(|r| 1 + r.below(0xFFFF) as u16),
            response_topic: rng.maybe(Rng::topic),
            correlation_data: rng.maybe(|r| r.bytes(20)),
            user_properties: rng.user_properties(),
            subscription_identifiers: Vec::new(),
            content_type: rng.maybe(|r| r.text(8, &[])),
        };
    }
    // 5.0 may send an empty name when an alias stands in for it.
    let topic = if properties.topic_alias.is_some() && rng.chance(30) {
        String::new()
    } else {
        rng.topic()
    };
    let max_payload = if rng.chance(10) { 400 } else { 40 };
    Publish {
        dup: qos != QoS::AtMostOnce && rng.chance(30),
        qos,
        retain: rng.chance(30),
        topic: topic.into(),
        pkid: if qos == QoS::AtMostOnce { 0 } else { rng.pkid() },
        payload: rng.bytes(max_payload),
        properties,
    }
}

fn random_ack(rng: &mut Rng, v5: bool, reasons: &[u8]) -> Ack {
    let mut a = Ack::new(rng.pkid());
    if v5 {
        a.reason = if rng.chance(50) { 0 } else { rng.pick(reasons) };
        a.reason_string = rng.maybe(|r| r.text(10, &[]));
        a.user_properties = rng.user_properties();
    }
    a
}

fn random_subscribe(rng: &mut Rng, v5: bool) -> Subscribe {
    let filters = (0..1 + rng.below(4))
        .map(|_| SubscriptionRequest {
            // Filters are not judged by the decoder, so wildcards go anywhere.
            filter: rng.text(10, &["+", "#"]),
            qos: rng.qos(),
            no_local: v5 && rng.chance(50),
            retain_as_published: v5 && rng.chance(50),
            retain_handling: if v5 {
                rng.pick(&[
                    RetainHandling::SendAtSubscribe,
                    RetainHandling::SendIfNew,
                    RetainHandling::DoNotSend,
                ])
            } else {
                RetainHandling::SendAtSubscribe
            },
        })
        .collect();
    Subscribe {
        pkid: rng.pkid(),
        filters,
        subscription_identifier: if v5 {
            rng.maybe(|r| 1 + r.below(268_435_455) as u32)
        } else {
            None
        },
        user_properties: if v5 { rng.user_properties() } else { Vec::new() },
    }
}

fn random_unsubscribe(rng: &mut Rng, v5: bool) -> Unsubscribe {
    Unsubscribe {
        pkid: rng.pkid(),
        filters: (0..1 + rng.below(4)).map(|_| rng.text(10, &["+", "#"])).collect(),
        user_properties: if v5 { rng.user_properties() } else { Vec::new() },
    }
}

const PUBACK_REASONS: [u8; 9] = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_REASONS: [u8; 2] = [0x00, 0x92];

fn random_packet(rng: &mut Rng, v5: bool) -> Packet {
    match rng.below(8) {
        0..=2 => Packet::Publish(random_publish(rng, v5)),
        3 => Packet::PubAck(random_ack(rng, v5, &PUBACK_REASONS)),
        4 => Packet::PubRec(random_ack(rng, v5, &PUBACK_REASONS)),
        5 => match rng.below(2) {
            0 => Packet::PubRel(random_ack(rng, v5, &PUBREL_REASONS)),
            _ => Packet::PubComp(random_ack(rng, v5, &PUBREL_REASONS)),
        },
        6 => Packet::Subscribe(random_subscribe(rng, v5)),
        _ => Packet::Unsubscribe(random_unsubscribe(rng, v5)),
    }
}

// ---- an independent writer, straight from the specification ----

fn varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let byte = (v % 128) as u8;
        v /= 128;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn props(list: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, list.len());
    out.extend(list);
    out
}

fn user_props(out: &mut Vec<u8>, user: &[(String, String)]) {
    for (k, v) in user {
        out.push(0x26);
        out.extend(s(k));
        out.extend(s(v));
    }
}

fn publish_frame(p: &Publish, v5: bool) -> Vec<u8> {
    let byte1 = 0x30 | u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain);
    let mut body = s(&*p.topic);
    if p.qos != QoS::AtMostOnce {
        body.extend(p.pkid.to_be_bytes());
    }
    if v5 {
        let q = &p.properties;
        let mut l = Vec::new();
        if let Some(v) = q.payload_format_indicator {
            l.extend([0x01, v]);
        }
        if let Some(v) = q.message_expiry_interval {
            l.push(0x02);
            l.extend(v.to_be_bytes());
        }
        if let Some(v) = &q.content_type {
            l.push(0x03);
            l.extend(s(v));
        }
        if let Some(v) = &q.response_topic {
            l.push(0x08);
            l.extend(s(v));
        }
        if let Some(v) = &q.correlation_data {
            l.push(0x09);
            l.extend(s(v));
        }
        if let Some(v) = q.topic_alias {
            l.push(0x23);
            l.extend(v.to_be_bytes());
        }
        user_props(&mut l, &q.user_properties);
        body.extend(props(l));
    }
    body.extend_from_slice(&p.payload);
    frame(byte1, &body)
}

/// 5.0 allows three forms for a success without properties; `form` picks one.
fn ack_frame(byte1: u8, a: &Ack, v5: bool, form: usize) -> Vec<u8> {
    let mut body = a.pkid.to_be_bytes().to_vec();
    if v5 {
        let mut l = Vec::new();
        if let Some(v) = &a.reason_string {
            l.push(0x1F);
            l.extend(s(v));
        }
        user_props(&mut l, &a.user_properties);
        if !l.is_empty() || form == 2 {
            body.push(a.reason);
            body.extend(props(l));
        } else if a.reason != 0 || form == 1 {
            body.push(a.reason);
        }
    }
    frame(byte1, &body)
}

fn subscribe_frame(sub: &Subscribe, v5: bool) -> Vec<u8> {
    let mut body = sub.pkid.to_be_bytes().to_vec();
    if v5 {
        let mut l = Vec::new();
        if let Some(id) = sub.subscription_identifier {
            l.push(0x0B);
            varint(&mut l, id as usize);
        }
        user_props(&mut l, &sub.user_properties);
        body.extend(props(l));
    }
    for f in &sub.filters {
        body.extend(s(&f.filter));
        body.push(
            f.qos as u8
                | u8::from(f.no_local) << 2
                | u8::from(f.retain_as_published) << 3
                | (f.retain_handling as u8) << 4,
        );
    }
    frame(0x82, &body)
}

fn unsubscribe_frame(u: &Unsubscribe, v5: bool) -> Vec<u8> {
    let mut body = u.pkid.to_be_bytes().to_vec();
    if v5 {
        let mut l = Vec::new();
        user_props(&mut l, &u.user_properties);
        body.extend(props(l));
    }
    for f in &u.filters {
        body.extend(s(f));
    }
    frame(0xA2, &body)
}

fn write(p: &Packet, v5: bool, form: usize) -> Vec<u8> {
    match p {
        Packet::Publish(p) => publish_frame(p, v5),
        Packet::PubAck(a) => ack_frame(0x40, a, v5, form),
        Packet::PubRec(a) => ack_frame(0x50, a, v5, form),
        Packet::PubRel(a) => ack_frame(0x62, a, v5, form),
        Packet::PubComp(a) => ack_frame(0x70, a, v5, form),
        Packet::Subscribe(sub) => subscribe_frame(sub, v5),
        Packet::Unsubscribe(u) => unsubscribe_frame(u, v5),
        other => unreachable!("{other:?}"),
    }
}

/// mqttbytes' own 3.1.1 writers for the same packet, where it has one that writes client packets.
fn mqttbytes_v4(p: &Packet) -> Vec<u8> {
    use mqttbytes::v4;
    let q = |q: QoS| mqttbytes::qos(q as u8).unwrap();
    let mut buf = BytesMut::new();
    match p {
        Packet::Publish(p) => {
            let mut m = v4::Publish::from_bytes(&*p.topic, q(p.qos), p.payload.clone());
            (m.dup, m.retain, m.pkid) = (p.dup, p.retain, p.pkid);
            m.write(&mut buf).unwrap();
        }
        Packet::PubAck(a) => drop(v4::PubAck::new(a.pkid).write(&mut buf).unwrap()),
        Packet::PubRec(a) => drop(v4::PubRec::new(a.pkid).write(&mut buf).unwrap()),
        Packet::PubRel(a) => drop(v4::PubRel::new(a.pkid).write(&mut buf).unwrap()),
        Packet::PubComp(a) => drop(v4::PubComp::new(a.pkid).write(&mut buf).unwrap()),
        Packet::Subscribe(sub) => {
            let mut m = v4::Subscribe::new_many(
                sub.filters
                    .iter()
                    .map(|f| v4::SubscribeFilter::new(f.filter.clone(), q(f.qos))),
            );
            m.pkid = sub.pkid;
            m.write(&mut buf).unwrap();
        }
        Packet::Unsubscribe(u) => {
            let m = v4::Unsubscribe {
                pkid: u.pkid,
                topics: u.filters.clone(),
            };
            m.write(&mut buf).unwrap();
        }
        other => unreachable!("{other:?}"),
    }
    buf.to_vec()
}

#[test]
fn random_valid_frames_decode_to_what_was_written() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut kinds = std::collections::BTreeMap::new();
    for protocol in ALL {
        let v5 = protocol.is_v5();
        let packets: Vec<Packet> = (0..1500).map(|_| random_packet(&mut rng, v5)).collect();
        let mut stream = Vec::new();
        for p in &packets {
            let f = write(p, v5, rng.below(3));
            if protocol == Protocol::V3_1_1 {
                assert_eq!(f, mqttbytes_v4(p), "writers disagree on {p:?}");
            }
            stream.extend(f);
        }

        let mut d = decoder(protocol);
        let mut buf = BytesMut::from(&stream[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        for expected in &packets {
            let got = d.decode(&mut buf);
            assert_eq!(got.as_ref(), Ok(&Some(expected.clone())), "{protocol:?}");
            if let Ok(Some(Packet::Publish(p))) = &got {
                if !p.payload.is_empty() {
                    assert!(range.contains(&(p.payload.as_ptr() as usize)), "payload was copied");
                }
            }
            *kinds.entry((format!("{protocol:?}"), expected.kind())).or_insert(0) += 1;
        }
        assert!(buf.is_empty());
        assert_eq!(d.decode(&mut buf), Ok(None));
    }
    // Every kind at every level was exercised, not just a lucky few.
    assert_eq!(kinds.len(), 3 * 7, "{kinds:?}");
    assert!(kinds.values().all(|&n| n >= 50), "{kinds:?}");
}
