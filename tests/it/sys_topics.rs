//! `$SYS/broker/...` topics are published periodically and retained.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rumqttc::QoS;

#[tokio::test]
async fn sys_topics_report_the_broker_state() {
    let mut config = test_config();
    config.sys_interval = Duration::from_millis(200);
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "ops").await;
    sub.subscribe("$SYS/broker/#", QoS::AtMostOnce).await;
    let mut seen: HashMap<String, String> = HashMap::new();
    let wanted = [
        "uptime",
        "version",
        "clients/connected",
        "messages/received",
        "messages/sent",
        "messages/dropped",
        "bytes/received",
        "bytes/sent",
        "subscriptions/count",
        "retained messages/count",
    ];
    // The first values may be the retained ones from before this client connected: read until a round
    // published after the subscription shows it.
    let count =
        |seen: &HashMap<String, String>, key: &str| -> u64 { seen.get(key).and_then(|v| v.parse().ok()).unwrap_or(0) };
    while !wanted.iter().all(|w| seen.contains_key(&format!("$SYS/broker/{w}")))
        || count(&seen, "$SYS/broker/clients/connected") < 1
        || count(&seen, "$SYS/broker/subscriptions/count") < 1
    {
        let p = sub.expect_publish().await;
        seen.insert(p.topic.clone(), String::from_utf8(p.payload.to_vec()).unwrap());
    }
    assert!(seen["$SYS/broker/version"].starts_with("ractmq "));
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"));
    assert_eq!(
        count(&seen, "$SYS/broker/clients/connected"),
        1,
        "the subscriber itself"
    );
    assert_eq!(
        count(&seen, "$SYS/broker/subscriptions/count"),
        1,
        "its one subscription"
    );

    // `#` does not match `$SYS` topics.
    let mut all = Client::connect(addr, "all").await;
    all.subscribe("#", QoS::AtMostOnce).await;
    all.subscribe("marker", QoS::AtMostOnce).await;
    // Wait for at least one more $SYS round on the first subscriber, then send the marker.
    sub.expect_publish().await;
    broker
        .publish("marker", "", ractmq::QoS::AtMostOnce, false)
        .await
        .unwrap();
    assert!(all.publishes_until("marker").await.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn sys_brokers_names_the_single_node() {
    let mut config = test_config();
    config.sys_interval = Duration::from_millis(200);
    config.node_name = "solo".into();
    let broker = start_with(config).await;
    let mut sub = Client::connect(broker.mqtt_addr(), "ops").await;
    sub.subscribe("$SYS/brokers", QoS::AtMostOnce).await;
    let p = sub.expect_publish().await;
    assert_eq!(p.topic, "$SYS/brokers");
    assert_eq!(String::from_utf8(p.payload.to_vec()).unwrap(), "solo");
    broker.shutdown().await;
}
