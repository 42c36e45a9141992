//! Every CONNACK return code (3.1.1) and the 5.0 reason codes the broker refuses a CONNECT with.

use crate::common;

use common::*;
use ractmq::{BrokerConfig, Protocol, QoS};

fn with_users() -> BrokerConfig {
    let mut config = test_config();
    config.security.allow_anonymous = Some(false);
    config.users.insert("alice".into(), "secret".into());
    config
}

/// Send `connect`, return the CONNACK's return/reason code (byte 3) after checking it is a CONNACK.
async fn connack_code(addr: std::net::SocketAddr, connect: &[u8]) -> (u8, u8) {
    let mut raw = Raw::connect(addr).await;
    raw.send(connect).await;
    let head = raw.read_exact(2).await;
    assert_eq!(head[0], 0x20, "a CONNACK");
    let body = raw.read_exact(head[1] as usize).await;
    (body[0], body[1])
}

#[tokio::test]
async fn v311_return_codes() {
    let broker = start_with(with_users()).await;
    let addr = broker.mqtt_addr();
    let ok = connect_packet(Protocol::V3_1_1, |c| {
        c.username = Some("alice".into());
        c.password = Some("secret".into());
    });
    assert_eq!(connack_code(addr, &ok).await, (0, 0), "accepted");
    let mut bad_level = connect_v311("x");
    bad_level[8] = 6;
    assert_eq!(
        connack_code(addr, &bad_level).await,
        (0, 1),
        "unacceptable protocol version"
    );
    let empty_persistent = connect_packet(Protocol::V3_1_1, |c| {
        c.client_id.clear();
        c.clean_start = false;
        c.username = Some("alice".into());
        c.password = Some("secret".into());
    });
    assert_eq!(
        connack_code(addr, &empty_persistent).await,
        (0, 2),
        "identifier rejected"
    );
    let wrong = connect_packet(Protocol::V3_1_1, |c| {
        c.username = Some("alice".into());
        c.password = Some("wrong".into());
    });
    assert_eq!(connack_code(addr, &wrong).await, (0, 4), "bad user name or password");
    let anonymous = connect_packet(Protocol::V3_1_1, |_| {});
    assert_eq!(connack_code(addr, &anonymous).await, (0, 5), "not authorized");
    broker.shutdown().await;
}

#[tokio::test]
async fn server_unavailable_when_the_connection_limit_is_reached() {
    let mut config = test_config();
    config.max_connections = 1;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let _first = Client::connect(addr, "first").await;
    assert_eq!(connack_code(addr, &connect_v311("second")).await, (0, 3));
    assert_eq!(
        connack_code(addr, &connect_v5("third")).await.1,
        0x88,
        "5.0: Server unavailable"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn mqtt_3_1_is_accepted_and_needs_a_client_id() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    assert_eq!(
        connack_code(addr, &connect_packet(Protocol::V3_1, |_| {})).await,
        (0, 0)
    );
    let empty = connect_packet(Protocol::V3_1, |c| c.client_id.clear());
    assert_eq!(connack_code(addr, &empty).await, (0, 2));
    broker.shutdown().await;
}

#[tokio::test]
async fn v5_reason_codes() {
    let mut config = with_users();
    config.limits.max_qos = QoS::AtLeastOnce;
    config.limits.retain_available = false;
    config.limits.max_client_id_len = 8;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let alice = |c: &mut ractmq::parts::codec::Connect| {
        c.username = Some("alice".into());
        c.password = Some("secret".into());
    };
    let code = |tweak: fn(&mut ractmq::parts::codec::Connect)| {
        connect_packet(Protocol::V5, |c| {
            alice(c);
            tweak(c)
        })
    };
    assert_eq!(connack_code(addr, &code(|_| {})).await.1, 0x00);
    assert_eq!(
        connack_code(addr, &code(|c| c.client_id = "much-too-long".into()))
            .await
            .1,
        0x85
    );
    assert_eq!(
        connack_code(addr, &code(|c| c.password = Some("nope".into()))).await.1,
        0x86
    );
    assert_eq!(connack_code(addr, &connect_packet(Protocol::V5, |_| {})).await.1, 0x87);
    assert_eq!(
        connack_code(
            addr,
            &code(|c| c.properties.authentication_method = Some("SCRAM-SHA-1".into()))
        )
        .await
        .1,
        0x8C
    );
    let will = |qos: ractmq::QoS, retain: bool| ractmq::parts::codec::Will {
        topic: "w".into(),
        qos,
        retain,
        ..Default::default()
    };
    let will_qos2 = connect_packet(Protocol::V5, |c| {
        alice(c);
        c.will = Some(will(QoS::ExactlyOnce, false));
    });
    assert_eq!(connack_code(addr, &will_qos2).await.1, 0x9B);
    let will_retain = connect_packet(Protocol::V5, |c| {
        alice(c);
        c.will = Some(will(QoS::AtMostOnce, true));
    });
    assert_eq!(connack_code(addr, &will_retain).await.1, 0x9A);
    broker.shutdown().await;
}
