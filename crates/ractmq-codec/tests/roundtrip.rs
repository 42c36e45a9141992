//! Client packets encoded by this crate (and by mqttbytes) decode back to what was sent, at every level.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use ractmq_codec::{
    encode_client, Ack, Auth, Connect, ConnectProperties, Decoder, Disconnect, Packet, Protocol, Publish,
    PublishProperties, QoS, RetainHandling, Subscribe, SubscriptionRequest, Unsubscribe, Will,
};

fn user(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn full_connect(protocol: Protocol) -> Connect {
    let v5 = protocol.is_v5();
    Connect {
        protocol: Some(protocol),
        clean_start: false,
        keep_alive: 0xFFFF,
        client_id: "client-ü".into(),
        will: Some(Will {
            topic: "status/client".into(),
            payload: Bytes::from_static(b"\x00offline\xFF"),
            qos: QoS::ExactlyOnce,
            retain: true,
            delay_interval: v5.then_some(5),
            properties: if v5 {
                PublishProperties {
                    payload_format_indicator: Some(0),
                    message_expiry_interval: Some(3600),
                    response_topic: Some("r/t".into()),
                    correlation_data: Some(Bytes::from_static(b"\x01\x02")),
                    user_properties: user(&[("w", "1"), ("w", "2")]),
                    content_type: Some("bin".into()),
                    ..PublishProperties::default()
                }
            } else {
                PublishProperties::default()
            },
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"\xDE\xAD\xBE\xEF")),
        properties: if v5 {
            ConnectProperties {
                session_expiry_interval: Some(0xFFFF_FFFF),
                receive_maximum: Some(100),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(0),
                request_response_information: Some(1),
                request_problem_information: Some(0),
                user_properties: user(&[("b", "x"), ("a", "y")]),
                authentication_method: Some("PLAIN".into()),
                authentication_data: Some(Bytes::from_static(b"\x00")),
            }
        } else {
            ConnectProperties::default()
        },
    }
}

fn after_connect(protocol: Protocol) -> Vec<Packet> {
    let v5 = protocol.is_v5();
    let mut packets = vec![
        Packet::Publish(Publish {
            topic: "a".into(),
            payload: Bytes::new(),
            ..Publish::default()
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "a/b/c".into(),
            pkid: 1,
            payload: Bytes::from(vec![0xAB; 300]),
            properties: if v5 {
                PublishProperties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(10),
                    topic_alias: Some(4),
                    response_topic: Some("resp".into()),
                    correlation_data: Some(Bytes::from_static(b"c")),
                    user_properties: user(&[("k", "v")]),
                    content_type: Some("t".into()),
                    ..PublishProperties::default()
                }
            } else {
                PublishProperties::default()
            },
        }),
        Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: "x".into(),
            pkid: 0xFFFF,
            payload: "2".into(),
            ..Publish::default()
        }),
        Packet::PubAck(Ack::new(1)),
        Packet::PubRec(Ack::new(2)),
        Packet::PubRel(Ack::new(3)),
        Packet::PubComp(Ack::new(4)),
        Packet::Subscribe(Subscribe {
            pkid: 10,
            filters: vec![
                SubscriptionRequest {
                    filter: "a/+".into(),
                    qos: QoS::AtMostOnce,
                    ..Default::default()
                },
                SubscriptionRequest {
                    filter: "b/#".into(),
                    qos: QoS::ExactlyOnce,
                    no_local: v5,
                    retain_as_published: v5,
                    retain_handling: if v5 {
                        RetainHandling::SendIfNew
                    } else {
                        RetainHandling::SendAtSubscribe
                    },
                },
            ],
            subscription_identifier: v5.then_some(268_435_455),
            user_properties: if v5 { user(&[("s", "1")]) } else { vec![] },
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 11,
            filters: vec!["a/+".into(), "b/#".into()],
            user_properties: if v5 { user(&[("u", "1")]) } else { vec![] },
        }),
        Packet::PingReq,
    ];
    if v5 {
        packets.extend([
            Packet::PubAck(Ack::with_reason(5, 0x10)),
            Packet::PubRec(Ack {
                pkid: 6,
                reason: 0x80,
                reason_string: Some("no".into()),
                user_properties: user(&[("a", "b")]),
            }),
            Packet::PubRel(Ack::with_reason(7, 0x92)),
            Packet::PubComp(Ack {
                pkid: 8,
                reason: 0,
                reason_string: Some("".into()),
                user_properties: vec![],
            }),
            Packet::Auth(Auth::default()),
            Packet::Auth(Auth {
                reason: 0x19,
                method: Some("SCRAM".into()),
                data: Some(Bytes::from_static(b"\x00\x01")),
                reason_string: Some("again".into()),
                user_properties: user(&[("x", "y")]),
            }),
            Packet::Disconnect(Disconnect {
                reason: 0x04,
                session_expiry_interval: Some(0),
                reason_string: Some("bye".into()),
                server_reference: None,
                user_properties: user(&[("d", "1")]),
            }),
        ]);
    } else {
        packets.push(Packet::Disconnect(Disconnect::default()));
    }
    packets
}

#[test]
fn client_packets_round_trip_at_every_level() {
    for protocol in ALL {
        let mut d = Decoder::new(MAX);
        let mut packets = vec![Packet::Connect(Box::new(full_connect(protocol)))];
        packets.extend(after_connect(protocol));
        for packet in packets {
            let mut buf = BytesMut::new();
            encode_client(&packet, protocol, &mut buf).unwrap();
            let got = decode_with(&mut d, &buf);
            assert_eq!(got.as_ref(), Ok(&packet), "{protocol:?} {}", packet.kind());
        }
    }
}

#[test]
fn minimal_connect_round_trips_at_every_level() {
    for protocol in ALL {
        let c = Connect {
            protocol: Some(protocol),
            client_id: String::new(),
            ..Connect::default()
        };
        let mut buf = BytesMut::new();
        encode_client(&Packet::Connect(Box::new(c.clone())), protocol, &mut buf).unwrap();
        assert_eq!(
            decode_with(&mut Decoder::new(MAX), &buf),
            Ok(Packet::Connect(Box::new(c)))
        );
    }
}

#[test]
fn connect_encoding_follows_the_protocol_argument() {
    // The level written is the one asked for, whatever the struct says.
    let c = connect_packet(Protocol::V5);
    let mut buf = BytesMut::new();
    encode_client(&Packet::Connect(Box::new(c)), Protocol::V3_1, &mut buf).unwrap();
    assert_eq!(&buf[2..11], &[0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3]);
}

#[test]
fn mqttbytes_v4_client_packets_decode() {
    use mqttbytes::v4;
    let mut buf = BytesMut::new();
    let mut connect = v4::Connect::new("mb4");
    connect.keep_alive = 15;
    connect.last_will = Some(v4::LastWill::new("lw", "gone", mqttbytes::QoS::AtLeastOnce, false));
    connect.set_login("u", "p");
    connect.write(&mut buf).unwrap();
    let mut publish = v4::Publish::new("t/1", mqttbytes::QoS::AtLeastOnce, "hello");
    publish.pkid = 42;
    publish.write(&mut buf).unwrap();
    // mqttbytes leaves the packet identifier at 0, which the decoder (rightly) refuses.
    let mut subscribe = v4::Subscribe::new("t/#", mqttbytes::QoS::ExactlyOnce);
    subscribe.pkid = 3;
    subscribe.write(&mut buf).unwrap();
    v4::PingReq.write(&mut buf).unwrap();

    let mut d = Decoder::new(MAX);
    match d.decode(&mut buf) {
        Ok(Some(Packet::Connect(c))) => {
            assert_eq!(c.protocol, Some(Protocol::V3_1_1));
            assert_eq!((c.client_id.as_str(), c.keep_alive), ("mb4", 15));
            let w = c.will.expect("will");
            assert_eq!(
                (w.topic.as_str(), &w.payload[..], w.qos),
                ("lw", &b"gone"[..], QoS::AtLeastOnce)
            );
            assert_eq!(c.username.as_deref(), Some("u"));
            assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
        }
        other => panic!("{other:?}"),
    }
    match d.decode(&mut buf) {
        Ok(Some(Packet::Publish(p))) => {
            assert_eq!((&*p.topic, p.pkid, &p.payload[..]), ("t/1", 42, &b"hello"[..]));
        }
        other => panic!("{other:?}"),
    }
    match d.decode(&mut buf) {
        Ok(Some(Packet::Subscribe(s))) => {
            assert_eq!(s.filters[0].filter, "t/#");
            assert_eq!(s.filters[0].qos, QoS::ExactlyOnce);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert_eq!(d.decode(&mut buf), Ok(None));
}

#[test]
fn mqttbytes_v5_client_packets_decode() {
    use mqttbytes::v5;
    let mut buf = BytesMut::new();
    let mut connect = v5::Connect::new("mb5");
    connect.properties = Some(v5::ConnectProperties {
        session_expiry_interval: Some(60),
        receive_maximum: Some(5),
        max_packet_size: None,
        topic_alias_max: Some(3),
        request_response_info: None,
        request_problem_info: None,
        user_properties: vec![("a".into(), "b".into())],
        authentication_method: None,
        authentication_data: None,
    });
    connect.write(&mut buf).unwrap();
    let mut publish = v5::Publish::new("t/5", mqttbytes::QoS::AtLeastOnce, "five");
    publish.pkid = 7;
    publish.properties = Some(v5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: None,
        topic_alias: Some(2),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![("u".into(), "v".into())],
        subscription_identifiers: vec![],
        content_type: None,
    });
    publish.write(&mut buf).unwrap();

    let mut d = Decoder::new(MAX);
    match d.decode(&mut buf) {
        Ok(Some(Packet::Connect(c))) => {
            assert_eq!(c.protocol, Some(Protocol::V5));
            assert_eq!(c.client_id, "mb5");
            assert_eq!(c.properties.session_expiry_interval, Some(60));
            assert_eq!(c.properties.receive_maximum, Some(5));
            assert_eq!(c.properties.topic_alias_maximum, Some(3));
            assert_eq!(c.properties.user_properties, user(&[("a", "b")]));
        }
        other => panic!("{other:?}"),
    }
    match d.decode(&mut buf) {
        Ok(Some(Packet::Publish(p))) => {
            assert_eq!((&*p.topic, p.pkid, &p.payload[..]), ("t/5", 7, &b"five"[..]));
            assert_eq!(p.properties.topic_alias, Some(2));
            assert_eq!(p.properties.payload_format_indicator, Some(1));
            assert_eq!(p.properties.user_properties, user(&[("u", "v")]));
        }
        other => panic!("{other:?}"),
    }
    assert!(buf.is_empty());
}
