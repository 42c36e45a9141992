//! The Kafka sink against a real Kafka-protocol broker: tansu, started by each test (see `support/kafka.rs`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ractmq_bridge::{KafkaConfig, KafkaSink, Record};
use ractmq_codec::QoS;
use rskafka::record::RecordAndOffset;
use support::kafka::{client, create_topic, read_partition, Tansu};

fn record(topic: &str, payload: &str, properties: &[(&str, &str)], timestamp_ms: u64) -> Record {
    Record {
        topic: topic.into(),
        payload: payload.to_string().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        user_properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        timestamp_ms,
    }
}

/// What a consumer should find for `r`, with `value` as its value.
fn expected(r: &Record, key: &str, value: &[u8]) -> (Vec<u8>, Vec<u8>, BTreeMap<String, Vec<u8>>, i64) {
    let headers = r
        .user_properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    (key.as_bytes().to_vec(), value.to_vec(), headers, r.timestamp_ms as i64)
}

fn found(r: &RecordAndOffset) -> (Vec<u8>, Vec<u8>, BTreeMap<String, Vec<u8>>, i64) {
    (
        r.record.key.clone().expect("a key"),
        r.record.value.clone().expect("a value"),
        r.record.headers.clone(),
        r.record.timestamp.timestamp_millis(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lands_per_partition_in_order_with_keys_values_and_headers() {
    let tansu = Tansu::start("batch").await;
    let admin = client(&tansu.addr()).await.unwrap();
    create_topic(&admin, "mqtt-sensors.a", 3).await;
    create_topic(&admin, "mqtt-sensors.b", 1).await;

    let mut config = KafkaConfig::new(vec![tansu.addr()], "mqtt-${topic}");
    config.key = Some("${user_property.device}".into());
    let sink = KafkaSink::new(&config).unwrap();

    // Ten records over four devices on sensors/a, two on sensors/b, in one batch.
    let base = 1_700_000_000_000;
    let mut batch = Vec::new();
    for i in 0..12u64 {
        let (topic, device) = if i % 6 == 5 {
            ("sensors/b", "db".to_string())
        } else {
            ("sensors/a", format!("d{}", i % 4))
        };
        let seq = i.to_string();
        batch.push(record(
            topic,
            &format!("{{\"seq\":{i}}}"),
            &[("device", &device), ("seq", &seq)],
            base + i,
        ));
    }
    let started = Instant::now();
    sink.send(&batch).await.expect("the batch is acknowledged");
    eprintln!("send of {} records: {:?}", batch.len(), started.elapsed());

    // Per topic: which partition each key went to, and the records each partition has, in offset order.
    for (kafka_topic, mqtt_topic, partitions) in
        [("mqtt-sensors.a", "sensors/a", 3), ("mqtt-sensors.b", "sensors/b", 1)]
    {
        let mut partition_of_key: HashMap<Vec<u8>, i32> = HashMap::new();
        let mut total = 0;
        let mut used = 0;
        for partition in 0..partitions {
            let records = read_partition(&admin, kafka_topic, partition).await;
            total += records.len();
            if records.is_empty() {
                continue;
            }
            used += 1;
            let keys: Vec<Vec<u8>> = records.iter().map(|r| r.record.key.clone().unwrap()).collect();
            for key in &keys {
                let first = *partition_of_key.entry(key.clone()).or_insert(partition);
                assert_eq!(first, partition, "one key, one partition");
            }
            // This partition holds exactly the batch's records with its keys, in batch order.
            let want: Vec<_> = batch
                .iter()
                .filter(|r| &*r.topic == mqtt_topic)
                .filter(|r| keys.iter().any(|k| k == r.user_properties[0].1.as_bytes()))
                .map(|r| expected(r, &r.user_properties[0].1, &r.payload))
                .collect();
            let got: Vec<_> = records.iter().map(found).collect();
            assert_eq!(got, want, "{kafka_topic}[{partition}]");
            let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
            assert_eq!(
                offsets,
                (0..records.len() as i64).collect::<Vec<_>>(),
                "{kafka_topic}[{partition}]"
            );
        }
        let want_total = batch.iter().filter(|r| &*r.topic == mqtt_topic).count();
        assert_eq!(total, want_total, "{kafka_topic}: every record once");
        if partitions > 1 {
            assert!(used > 1, "{kafka_topic}: four keys all went to one partition");
        }
    }

    // A value template, gzip, and the default key (the MQTT topic): a second sink on the same cluster.
    let mut config = KafkaConfig::new(vec![tansu.addr()], "mqtt-${topic}");
    config.value = Some(r#"{"from":"${topic}","seq":${payload.seq}}"#.into());
    config.compression = ractmq_bridge::kafka::Compression::Gzip;
    let sink = KafkaSink::new(&config).unwrap();
    let more = [
        record("sensors/b", r#"{"seq":100}"#, &[], base + 100),
        record("sensors/b", r#"{"seq":101}"#, &[("k", "v")], base + 101),
    ];
    sink.send(&more).await.expect("the gzip batch is acknowledged");
    let records = read_partition(&admin, "mqtt-sensors.b", 0).await;
    let got: Vec<_> = records[2..].iter().map(found).collect();
    let want = vec![
        expected(&more[0], "sensors/b", br#"{"from":"sensors/b","seq":100}"#),
        expected(&more[1], "sensors/b", br#"{"from":"sensors/b","seq":101}"#),
    ];
    assert_eq!(got, want);
    assert_eq!(records.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_broker_is_a_retryable_failure_and_a_restarted_one_takes_the_next_send() {
    let mut tansu = Tansu::start("restart").await;
    create_topic(&client(&tansu.addr()).await.unwrap(), "mqtt-plant", 2).await;
    let mut config = KafkaConfig::new(vec![tansu.addr()], "mqtt-plant");
    config.timeout_ms = 3_000;
    config.retries = 2;
    config.retry_backoff_ms = 50;
    let sink = KafkaSink::new(&config).unwrap();
    sink.send(&[record("plant/1", "before", &[], 1)])
        .await
        .expect("sent while up");

    tansu.stop();
    let started = Instant::now();
    let err = sink
        .send(&[record("plant/1", "while down", &[], 2)])
        .await
        .expect_err("nothing takes it while the broker is down");
    assert!(err.retryable, "a stopped broker is retryable: {err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the timeout"
    );
    eprintln!("failure while down, after {:?}: {}", started.elapsed(), err.reason);

    // Same port, empty storage: the topic is made again, and the sink finds its way back by itself.
    tansu.restart().await;
    let admin = client(&tansu.addr()).await.unwrap();
    create_topic(&admin, "mqtt-plant", 2).await;
    let after = record("plant/1", "after", &[("n", "3")], 3);
    sink.send(std::slice::from_ref(&after))
        .await
        .expect("sent after the restart");
    let mut got = Vec::new();
    for partition in 0..2 {
        got.extend(read_partition(&admin, "mqtt-plant", partition).await.iter().map(found));
    }
    assert_eq!(got, vec![expected(&after, "plant/1", b"after")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_cluster_does_not_have_is_fatal() {
    let tansu = Tansu::start("missing").await;
    let sink = KafkaSink::new(&KafkaConfig::new(vec![tansu.addr()], "nowhere-${topic}")).unwrap();
    let err = sink
        .send(&[record("x/y", "lost", &[], 1)])
        .await
        .expect_err("no such topic");
    assert!(!err.retryable, "{err:?}");
    assert!(err.reason.contains("\"nowhere-x.y\" does not exist"), "{err:?}");
    eprintln!("{}", err.reason);
}
