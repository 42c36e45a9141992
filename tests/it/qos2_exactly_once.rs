//! QoS 2 on receive: a PUBLISH re-sent before PUBREL is acknowledged again but delivered once.

use crate::common;

use common::*;
use rumqttc::QoS;

#[tokio::test]
async fn a_resent_qos2_publish_is_not_delivered_twice() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("x/#", QoS::ExactlyOnce).await;

    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311("pub")).await;
    raw.read_exact(4).await;
    raw.send(&publish_v311("x/once", 2, 5, false, b"one")).await;
    assert_eq!(raw.read_exact(4).await, vec![0x50, 0x02, 0x00, 0x05], "PUBREC");
    raw.send(&publish_v311("x/once", 2, 5, true, b"one")).await; // DUP re-send before PUBREL
    assert_eq!(raw.read_exact(4).await, vec![0x50, 0x02, 0x00, 0x05], "PUBREC again");
    raw.send(&[0x62, 0x02, 0x00, 0x05]).await; // PUBREL
    assert_eq!(raw.read_exact(4).await, vec![0x70, 0x02, 0x00, 0x05], "PUBCOMP");
    raw.send(&publish_v311("x/marker", 0, 0, false, b"")).await;

    let got = sub.publishes_until("x/marker").await;
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].payload.as_ref(), b"one");
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
    broker.shutdown().await;
}
