//! Stopping a node the way an operator does, with SIGTERM: it stops accepting, tells MQTT 5 clients why
//! (DISCONNECT 0x8B Server shutting down) after what was queued for them, closes 3.1.1 clients, and exits 0.

use crate::common;

use std::time::Duration;

use common::process::Process;
use common::{connect_v5, Client, Raw};
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_mqtt5_clients_flushes_and_exits_zero() {
    let mut node = Process::start(&[]);
    let mut v5 = Raw::connect(node.mqtt).await;
    v5.send(&connect_v5("v5-client")).await;
    assert_eq!(v5.read_frame().await[0], 0x20, "CONNACK");
    // SUBSCRIBE to "down/#" at QoS 0 (5.0: no properties).
    let filter = b"down/#";
    let mut subscribe = vec![0x82, (2 + 1 + 2 + filter.len() + 1) as u8, 0, 1, 0];
    subscribe.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    subscribe.extend_from_slice(filter);
    subscribe.push(0);
    v5.send(&subscribe).await;
    assert_eq!(v5.read_frame().await[0], 0x90, "SUBACK");
    let mut v311 = Client::connect(node.mqtt, "v311-client").await;
    let publisher = Client::connect(node.mqtt, "publisher").await;
    publisher
        .publish("down/last", QoS::AtLeastOnce, false, "last words")
        .await;

    // The message published before the signal arrives first, then the DISCONNECT.
    let publish = v5.read_frame().await;
    assert_eq!(publish[0] & 0xf0, 0x30, "PUBLISH first: {publish:02x?}");
    node.signal(libc::SIGTERM);
    let disconnect = v5.read_frame().await;
    assert_eq!(common::v5_disconnect(&disconnect).0, 0x8B, "Server shutting down");
    v311.expect_disconnect().await;
    assert_eq!(node.wait(Duration::from_secs(30)), Some(0), "exit code 0");
    assert!(node.logged("MQTT listener closed: the node is shutting down"));
}
