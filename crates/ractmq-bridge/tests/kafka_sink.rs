//! The Kafka sink against a real Kafka-protocol broker: tansu, a Kafka-compatible broker written in Rust,
//! started by each test on a free loopback port with in-memory storage, and read back with rskafka's own
//! consumer calls. `scripts/install-tools.sh` installs tansu; these tests fail, saying so, when it is missing.
//!
//! The binary is `$TANSU_BIN`, else `$RACTMQ_TOOLS/bin/tansu`, else
//! `${XDG_CACHE_HOME:-$HOME/.cache}/ractmq-tools/bin/tansu`.

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ractmq_bridge::{KafkaConfig, KafkaSink, Record};
use ractmq_codec::QoS;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;
use rskafka::BackoffConfig;

/// How long tansu may take to start answering.
const START_DEADLINE: Duration = Duration::from_secs(30);

fn tansu_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let tools = std::env::var_os("RACTMQ_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .expect("neither XDG_CACHE_HOME nor HOME is set: set RACTMQ_TOOLS or TANSU_BIN");
        cache.join("ractmq-tools")
    });
    tools.join("bin").join("tansu")
}

/// A tansu broker this test started; killed when dropped.
struct Tansu {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Tansu {
    /// Starts tansu on a free port and waits until it answers Kafka requests.
    async fn start(name: &str) -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("ractmq-kafka-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for tansu's log");
        let mut tansu = Tansu { child: None, port, dir };
        tansu.restart().await;
        tansu
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("tansu.log")
    }

    /// Starts it (again) on its port, with empty storage, and waits until it answers.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "tansu is already running");
        let bin = tansu_bin();
        assert!(
            bin.is_file(),
            "tansu, the Kafka-compatible broker these tests produce to, is not at {}: install it with \
             scripts/install-tools.sh (it runs cargo install --locked --root \"$RACTMQ_TOOLS\" tansu \
             --version 0.6.0 --features dynostore), or point TANSU_BIN at a tansu binary",
            bin.display()
        );
        let url = format!("tcp://{}", self.addr());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("tansu's log file");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--cluster-id", "ractmq-test"])
            // Its settings come from these flags only: not from the environment, nor from a .env file (it reads
            // one in its working directory).
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "warn")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        self.wait_answering().await;
    }

    /// Polls until tansu accepts connections and answers a metadata request, failing at the deadline or when
    /// it exits.
    async fn wait_answering(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tansu exited ({status}) while starting; its log: {}", self.log_text());
            }
            if TcpStream::connect(self.addr()).is_ok()
                && tokio::time::timeout(Duration::from_secs(2), client(&self.addr()))
                    .await
                    .is_ok_and(|c| c.is_ok())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not answer on {} within {START_DEADLINE:?}; its log: {}",
                self.addr(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A test client whose own retries give up after a few seconds.
async fn client(addr: &str) -> Result<Client, rskafka::client::error::Error> {
    ClientBuilder::new(vec![addr.to_string()])
        .backoff_config(BackoffConfig {
            deadline: Some(Duration::from_secs(5)),
            ..BackoffConfig::default()
        })
        .build()
        .await
}

async fn create_topic(client: &Client, topic: &str, partitions: i32) {
    client
        .controller_client()
        .unwrap()
        .create_topic(topic, partitions, 1, 5_000)
        .await
        .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
}

/// Every record of a partition, in offset order.
async fn read_partition(client: &Client, topic: &str, partition: i32) -> Vec<RecordAndOffset> {
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let start = pc.get_offset(OffsetAt::Earliest).await.unwrap();
    let end = pc.get_offset(OffsetAt::Latest).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out: Vec<RecordAndOffset> = Vec::new();
    let mut offset = start;
    while offset < end {
        assert!(
            Instant::now() < deadline,
            "{topic}[{partition}]: offsets {offset}..{end} not fetched"
        );
        // A short max wait: tansu held each fetch about half of it even with records there (250 ms of 500).
        let (records, _high_watermark) = pc.fetch_records(offset, 1..1_000_000, 50).await.unwrap();
        if let Some(last) = records.last() {
            offset = last.offset + 1;
        }
        out.extend(records);
    }
    out
}

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
