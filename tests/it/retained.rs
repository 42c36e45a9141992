//! Retained messages: set, replace, clear, and delivery on subscribe with the retain flag.

use crate::common;

use common::*;
use rumqttc::QoS;

#[tokio::test]
async fn retained_messages_are_set_replaced_cleared_and_delivered_on_subscribe() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let publisher = Client::connect(addr, "pub").await;
    publisher.publish("r/a", QoS::AtLeastOnce, true, "1").await;
    publisher.publish("r/a", QoS::AtLeastOnce, true, "2").await;
    publisher.publish("r/b", QoS::AtLeastOnce, true, "b").await;
    publisher.publish("r/c", QoS::AtLeastOnce, true, "c").await;
    publisher.publish("r/c", QoS::AtLeastOnce, true, "").await; // clears r/c
    eventually("retained store holds r/a and r/b", || {
        let view = broker.view();
        view.retained_count() == 2 && view.retained_message("r/a").is_some_and(|m| &m.payload[..] == b"2")
    })
    .await;

    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("r/#", QoS::AtLeastOnce).await;
    let mut got = [sub.expect_publish().await, sub.expect_publish().await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(got[0].topic, "r/a");
    assert_eq!(got[0].payload.as_ref(), b"2");
    assert!(got[0].retain, "delivered on subscribe with the retain flag");
    assert_eq!(got[1].topic, "r/b");

    // A live publish to an existing subscriber carries retain = false.
    publisher.publish("r/a", QoS::AtLeastOnce, true, "3").await;
    let live = sub.expect_publish().await;
    assert_eq!((live.payload.as_ref(), live.retain), (&b"3"[..], false));
    broker.shutdown().await;
}

#[tokio::test]
async fn the_retained_store_is_bounded_and_refusals_are_counted() {
    let mut config = test_config();
    config.limits.max_retained = 2;
    let broker = start_with(config).await;
    for t in ["r/1", "r/2", "r/3"] {
        broker.publish(t, t, ractmq::QoS::AtMostOnce, true).await.unwrap();
    }
    assert_eq!(broker.view().retained_count(), 2);
    assert_eq!(
        ractmq::parts::broker::Metrics::get(&broker.metrics().dropped_retained_full),
        1
    );
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    // The marker subscription first: waiting for a SUBACK skips whatever arrives before it.
    sub.subscribe("marker", QoS::AtMostOnce).await;
    sub.subscribe("r/#", QoS::AtMostOnce).await;
    broker
        .publish("marker", "", ractmq::QoS::AtMostOnce, false)
        .await
        .unwrap();
    let mut got: Vec<String> = sub
        .publishes_until("marker")
        .await
        .into_iter()
        .map(|p| p.topic)
        .collect();
    got.sort();
    assert_eq!(got, vec!["r/1", "r/2"]);
    broker.shutdown().await;
}
