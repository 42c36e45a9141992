//! `dead_letter_dropped`: what a subscriber's full queue drops is published on `$dlq/$queue/{client}/{topic}`.

use rumqttc::QoS;

use crate::common::{leave_offline_session, start_with, test_config, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_full_queue_drops_is_dead_lettered_when_asked() {
    let mut config = test_config();
    config.dead_letter_dropped = true;
    config.limits.max_offline_queue_len = 5;
    let broker = start_with(config).await;
    leave_offline_session(&broker, "sleeper", "t/#").await;
    let mut letters = Client::connect(broker.mqtt_addr(), "dlq-reader").await;
    letters.subscribe("$dlq/$queue/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "pub").await;
    for n in 0..10u8 {
        publisher.publish("t/1", QoS::AtLeastOnce, false, vec![n]).await;
    }
    for _ in 0..10 {
        publisher
            .expect("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
    // The offline queue keeps the newest five (drop-oldest): the five oldest are the letters, in order.
    let mut got = Vec::new();
    for _ in 0..5 {
        let p = letters.expect_publish().await;
        assert_eq!(p.topic, "$dlq/$queue/sleeper/t/1");
        got.push(p.payload[0]);
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    // And nothing more: a marker published after them comes next.
    broker
        .publish("$dlq/$queue/marker", "m", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(letters.expect_publish().await.topic, "$dlq/$queue/marker");
    assert_eq!(broker.view().client("sleeper").unwrap().dropped, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_dead_lettered_by_default() {
    let mut config = test_config();
    config.limits.max_offline_queue_len = 1;
    let broker = start_with(config).await;
    leave_offline_session(&broker, "sleeper", "t/#").await;
    let mut letters = Client::connect(broker.mqtt_addr(), "dlq-reader").await;
    letters.subscribe("$dlq/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "pub").await;
    for n in 0..3u8 {
        publisher.publish("t/1", QoS::AtLeastOnce, false, vec![n]).await;
    }
    for _ in 0..3 {
        publisher
            .expect("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
    assert_eq!(broker.view().client("sleeper").unwrap().dropped, 2, "two were dropped");
    broker
        .publish("$dlq/marker", "m", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(
        letters.expect_publish().await.topic,
        "$dlq/marker",
        "no letter came before the marker"
    );
}
