//! The Kafka sink: it produces a bridge's records to a Kafka cluster (or any server that speaks the Kafka
//! protocol), so MQTT devices can feed the stream processors, warehouses and services that read Kafka without
//! a second gateway in between.
//!
//! # Where a record goes
//!
//! - **Topic**: the `topic` template, rendered. Kafka topic names may hold only ASCII letters, digits, `.`, `_`
//!   and `-` (at most 249 of them), while MQTT topics hold `/` and nearly anything else. So in the values that
//!   placeholders put into the name every `/` becomes `.` and every other character Kafka refuses becomes `_`:
//!   with `mqtt-${topic}`, `sensors/1/temp` goes to `mqtt-sensors.1.temp` and `$SYS/x` to `mqtt-_SYS.x`. The
//!   text written in the template itself is not changed: it must already be a valid name (checked when the
//!   sink is made). A name that comes out empty or too long refuses the batch (fatal).
//! - **Key**: the `key` template (default `${topic}`, the MQTT topic as published), as UTF-8.
//! - **Partition**: Kafka's own default partitioner for keyed records, murmur2 of the key's bytes (positive)
//!   modulo the topic's partition count, so a key lands where a Java producer would put it, and records with
//!   one key stay in order. The partition counts are read from the cluster once and kept; any failure that may
//!   pass drops them with the connection, and the next `send` reads them again.
//! - **Value**: the `value` template, rendered as UTF-8, or the payload's bytes as they are when there is none.
//! - **Headers**: the MQTT 5 user properties. Kafka headers are a map in the client this sink uses: a key the
//!   publisher repeated keeps its last value.
//! - **Timestamp**: [`Record::timestamp_ms`], as the record's create time.
//!
//! # Acknowledgements
//!
//! A batch's records are grouped by (topic, partition), in their batch order, and each group is one produce
//! request, sent to the partition's leader with `acks = -1` (all in-sync replicas; the client this sink uses
//! sends every produce request with it and has no other setting). The groups go out concurrently and `send`
//! answers `Ok` only once every group was acknowledged. When some were and another failed, the whole batch
//! is answered as failed, and a later try sends the acknowledged groups again: delivery is at least once.
//!
//! # Failures
//!
//! One `send` is one delivery attempt in the bridge's sense, bounded by `timeout_ms`; within it, a group whose
//! produce fails with an error that may pass (connection refused or lost, leader moved, not enough replicas) is
//! sent again up to `retries` times, `retry_backoff_ms` apart (doubling), after reconnecting and reading the
//! metadata anew. Past that, or past `timeout_ms`, the answer is a retryable [`SinkError`] and the bridge's own
//! backoff takes over. A topic name Kafka refuses, a topic the cluster does not have (and did not create when
//! asked for it), a record larger than `max_record_bytes` or than the broker takes, or a record the broker
//! rejects as invalid are fatal: sending that batch again cannot succeed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rskafka::chrono::{DateTime, TimeZone, Utc};
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression as KafkaCompression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record as KafkaRecord;
use rskafka::BackoffConfig;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::sink::SinkError;
use crate::template::{Part, Template};
use crate::Record;

/// The longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// How a Kafka sink is set up, as written in the bridge's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Brokers to learn the cluster from, as `host:port`; one that answers is enough.
    pub bootstrap: Vec<String>,
    /// The Kafka topic, a template: see the module documentation for how MQTT topics are made valid names.
    pub topic: String,
    /// The record key, a template; `None` means `${topic}`.
    #[serde(default)]
    pub key: Option<String>,
    /// The record value, a template; `None` means the payload's bytes as they are.
    #[serde(default)]
    pub value: Option<String>,
    /// At most this many records in one `send`; the bridge's batching reads it (default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long one `send` may take, retries included, before it answers a retryable error (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often one `send` sends a partition's records again after a failure that may pass (default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The pause before the first of those retries, doubled before each next one (default 200).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// How record batches are compressed on the wire (default none).
    #[serde(default)]
    pub compression: Compression,
    /// A record whose key, value and headers add up to more bytes than this is refused (fatal) before
    /// anything is sent (default 1 MiB, Kafka's default `message.max.bytes` less its batch overhead).
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

/// Compression of the record batches a Kafka sink sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Sent as they are.
    #[default]
    None,
    /// gzip, which every Kafka broker and client reads.
    Gzip,
}

fn default_batch_size() -> usize {
    100
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_retries() -> u32 {
    3
}
fn default_retry_backoff_ms() -> u64 {
    200
}
fn default_max_record_bytes() -> usize {
    1_048_576
}

impl KafkaConfig {
    /// A configuration with these brokers and topic template, and every other setting at its default.
    pub fn new(bootstrap: Vec<String>, topic: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            bootstrap,
            topic: topic.into(),
            key: None,
            value: None,
            batch_size: default_batch_size(),
            timeout_ms: default_timeout_ms(),
            retries: default_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
            compression: Compression::default(),
            max_record_bytes: default_max_record_bytes(),
        }
    }
}

/// A sink that produces records to Kafka. Cheap to clone: clones share one connection to the cluster and one
/// cache of its metadata.
#[derive(Clone)]
pub struct KafkaSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("bootstrap", &self.inner.bootstrap)
            .finish_non_exhaustive()
    }
}

struct Inner {
    bootstrap: Vec<String>,
    topic: Template,
    key: Template,
    value: Option<Template>,
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    compression: KafkaCompression,
    max_record_bytes: usize,
    /// The connection and what was learnt through it, made on the first `send` and dropped whole after a
    /// failure that may pass, so the next attempt starts from the bootstrap brokers and fresh metadata.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    client: Option<Arc<Client>>,
    partition_counts: HashMap<String, i32>,
    partitions: HashMap<(String, i32), Arc<PartitionClient>>,
}

/// A record ready for Kafka, before its partition is known.
struct Rendered {
    topic: String,
    key: Vec<u8>,
    record: KafkaRecord,
}

/// Records per (topic, partition), each in batch order.
type Groups = BTreeMap<(String, i32), Vec<KafkaRecord>>;

impl KafkaSink {
    /// A sink for `config`. Nothing is connected yet: the first `send` connects, so a cluster that is down
    /// when the bridge starts is a retryable failure of that send, not an error here. Errors name the setting.
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink, String> {
        if config.bootstrap.is_empty() {
            return Err("kafka.bootstrap: no broker given (want a list of host:port)".into());
        }
        for (i, broker) in config.bootstrap.iter().enumerate() {
            let valid = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !valid {
                return Err(format!("kafka.bootstrap[{i}]: {broker:?} is not host:port"));
            }
        }
        let topic = Template::parse(&config.topic).map_err(|e| format!("kafka.topic: {e}"))?;
        for part in topic.parts() {
            if let Part::Text(text) = part {
                if let Some(c) = text.chars().find(|&c| !is_topic_char(c)) {
                    return Err(format!(
                        "kafka.topic: {:?} has {c:?}, which Kafka topic names cannot hold (only ASCII letters, digits, '.', '_' and '-')",
                        config.topic
                    ));
                }
            }
        }
        if topic.is_constant() {
            let name = topic.render(&empty_record());
            check_topic_name(&name).map_err(|e| format!("kafka.topic: {e}"))?;
        }
        let key =
            Template::parse(config.key.as_deref().unwrap_or("${topic}")).map_err(|e| format!("kafka.key: {e}"))?;
        let value = config
            .value
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| format!("kafka.value: {e}"))?;
        if config.batch_size == 0 {
            return Err("kafka.batch_size: must be at least 1".into());
        }
        if config.timeout_ms == 0 {
            return Err("kafka.timeout_ms: must be at least 1".into());
        }
        if config.retry_backoff_ms == 0 && config.retries > 0 {
            return Err("kafka.retry_backoff_ms: must be at least 1 when kafka.retries is not 0".into());
        }
        if config.max_record_bytes == 0 {
            return Err("kafka.max_record_bytes: must be at least 1".into());
        }
        Ok(KafkaSink {
            inner: Arc::new(Inner {
                bootstrap: config.bootstrap.clone(),
                topic,
                key,
                value,
                timeout: Duration::from_millis(config.timeout_ms),
                retries: config.retries,
                retry_backoff: Duration::from_millis(config.retry_backoff_ms),
                compression: match config.compression {
                    Compression::None => KafkaCompression::NoCompression,
                    Compression::Gzip => KafkaCompression::Gzip,
                },
                max_record_bytes: config.max_record_bytes,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// Produce `batch`, answering `Ok` once every record was acknowledged by all in-sync replicas of its
    /// partition. The module documentation says which failures are retryable.
    pub async fn send(&self, batch: &[Record]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Everything that can be refused without the cluster is, before anything is sent.
        let rendered = batch.iter().map(|r| self.render(r)).collect::<Result<Vec<_>, _>>()?;
        match tokio::time::timeout(self.inner.timeout, self.deliver(rendered)).await {
            Ok(result) => result,
            Err(_) => {
                self.forget().await;
                Err(SinkError::retry(format!(
                    "kafka: no acknowledgement within {} ms",
                    self.inner.timeout.as_millis()
                )))
            }
        }
    }

    fn render(&self, record: &Record) -> Result<Rendered, SinkError> {
        let topic = render_topic(&self.inner.topic, record);
        check_topic_name(&topic)
            .map_err(|e| SinkError::fatal(format!("kafka: {e} (from MQTT topic {:?})", record.topic)))?;
        let key = self.inner.key.render(record).into_bytes();
        let value = match &self.inner.value {
            Some(template) => template.render(record).into_bytes(),
            None => record.payload.to_vec(),
        };
        let headers: BTreeMap<String, Vec<u8>> = record
            .user_properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let timestamp = Utc
            .timestamp_millis_opt(i64::try_from(record.timestamp_ms).unwrap_or(i64::MAX))
            .single()
            // Past year 262,000: absurd, but not a reason to lose the record.
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let record = KafkaRecord {
            key: Some(key.clone()),
            value: Some(value),
            headers,
            timestamp,
        };
        let size = record.approximate_size();
        if size > self.inner.max_record_bytes {
            return Err(SinkError::fatal(format!(
                "kafka: a record for topic {topic:?} has {size} bytes, more than max_record_bytes ({})",
                self.inner.max_record_bytes
            )));
        }
        Ok(Rendered { topic, key, record })
    }

    /// Delivers with the retries `retries` allows; the caller bounds it with the timeout.
    async fn deliver(&self, rendered: Vec<Rendered>) -> Result<(), SinkError> {
        let mut rendered = Some(rendered);
        let mut groups = Groups::new();
        let mut attempt = 0;
        loop {
            let err = match self.attempt(&mut rendered, &mut groups).await {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if !err.retryable {
                return Err(err);
            }
            self.forget().await;
            if attempt >= self.inner.retries {
                return Err(SinkError::retry(format!("{} ({} tries)", err.reason, attempt + 1)));
            }
            let pause = self.inner.retry_backoff.saturating_mul(1 << attempt.min(16));
            attempt += 1;
            tracing::debug!(reason = %err.reason, attempt, ?pause, "kafka: sending again");
            tokio::time::sleep(pause).await;
        }
    }

    /// One try: assigns partitions (the first time), then sends every group not yet acknowledged, removing
    /// those that are.
    async fn attempt(&self, rendered: &mut Option<Vec<Rendered>>, groups: &mut Groups) -> Result<(), SinkError> {
        let client = self.client().await?;
        if let Some(records) = rendered.as_ref() {
            let mut counts: HashMap<&str, i32> = HashMap::new();
            for r in records {
                if !counts.contains_key(r.topic.as_str()) {
                    counts.insert(&r.topic, self.partition_count(&client, &r.topic).await?);
                }
            }
            let counts: HashMap<String, i32> = counts.into_iter().map(|(t, n)| (t.to_string(), n)).collect();
            for r in rendered.take().into_iter().flatten() {
                let partition = partition_for(&r.key, counts[&r.topic]);
                groups.entry((r.topic, partition)).or_default().push(r.record);
            }
        }

        let mut produces = JoinSet::new();
        for ((topic, partition), records) in groups.iter() {
            let partition_client = self.partition_client(&client, topic, *partition).await?;
            let (topic, partition, records) = (topic.clone(), *partition, records.clone());
            let compression = self.inner.compression;
            produces.spawn(async move {
                let result = partition_client.produce(records, compression).await;
                (topic, partition, result)
            });
        }
        let mut failure: Option<SinkError> = None;
        while let Some(joined) = produces.join_next().await {
            let err = match joined {
                Ok((topic, partition, Ok(_offsets))) => {
                    groups.remove(&(topic, partition));
                    continue;
                }
                Ok((topic, partition, Err(e))) => classify(&e, &format!("producing to {topic}[{partition}]")),
                Err(e) => SinkError::retry(format!("kafka: a produce task ended: {e}")),
            };
            // A fatal failure decides the answer: sending the batch again cannot succeed.
            if failure.as_ref().is_none_or(|f| f.retryable) {
                failure = Some(err);
            }
        }
        match failure {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }

    /// Drops the connection and every cached piece of metadata.
    async fn forget(&self) {
        *self.inner.state.lock().await = State::default();
    }

    async fn client(&self) -> Result<Arc<Client>, SinkError> {
        let mut state = self.inner.state.lock().await;
        if let Some(client) = &state.client {
            return Ok(Arc::clone(client));
        }
        let client = ClientBuilder::new(self.inner.bootstrap.clone())
            .client_id("ractmq-bridge")
            .backoff_config(one_try())
            .build()
            .await
            .map_err(|e| classify(&e, &format!("connecting to {}", self.inner.bootstrap.join(","))))?;
        let client = Arc::new(client);
        state.client = Some(Arc::clone(&client));
        Ok(client)
    }

    async fn partition_count(&self, client: &Client, topic: &str) -> Result<i32, SinkError> {
        let mut state = self.inner.state.lock().await;
        if let Some(&count) = state.partition_counts.get(topic) {
            return Ok(count);
        }
        for attempt in 0..2 {
            let topics = client
                .list_topics()
                .await
                .map_err(|e| classify(&e, "reading the topics' metadata"))?;
            for t in topics {
                let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                state.partition_counts.insert(t.name, count);
            }
            match state.partition_counts.get(topic) {
                Some(&count) if count > 0 => return Ok(count),
                Some(_) => {
                    return Err(SinkError::retry(format!("kafka: topic {topic:?} has no partition yet")));
                }
                None if attempt == 0 => {
                    // Asking for this one topic's metadata lets a cluster that creates topics on demand create it.
                    match client.partition_client(topic, 0, UnknownTopicHandling::Error).await {
                        Ok(_) => {}
                        Err(KafkaError::ServerError {
                            protocol_error: ProtocolError::UnknownTopicOrPartition,
                            ..
                        }) => {
                            return Err(SinkError::fatal(format!(
                                "kafka: topic {topic:?} does not exist (create it, or let the cluster create topics on demand)"
                            )));
                        }
                        Err(e) => return Err(classify(&e, &format!("looking up topic {topic:?}"))),
                    }
                }
                None => {}
            }
        }
        Err(SinkError::retry(format!(
            "kafka: topic {topic:?} was just created and is not listed yet"
        )))
    }

    async fn partition_client(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, SinkError> {
        let mut state = self.inner.state.lock().await;
        let key = (topic.to_string(), partition);
        if let Some(found) = state.partitions.get(&key) {
            return Ok(Arc::clone(found));
        }
        let made = client
            .partition_client(topic, partition, UnknownTopicHandling::Error)
            .await
            .map_err(|e| classify(&e, &format!("finding the leader of {topic}[{partition}]")))?;
        let made = Arc::new(made);
        state.partitions.insert(key, Arc::clone(&made));
        Ok(made)
    }
}

/// The client's own retries, made one try: this sink retries itself (`retries`), after dropping the
/// connection, so a send's attempts are counted and bounded in one place. A failure that the client would
/// have retried comes back as [`KafkaError::RetryFailed`].
fn one_try() -> BackoffConfig {
    BackoffConfig {
        // Not zero: the client draws its pause from `init_backoff..`, an empty range when zero.
        init_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        base: 2.0,
        deadline: Some(Duration::ZERO),
    }
}

/// Whether an error from the client may pass.
fn classify(err: &KafkaError, doing: &str) -> SinkError {
    let reason = format!("kafka: {doing}: {}", first_line(&err.to_string()));
    match err {
        KafkaError::ServerError {
            protocol_error:
                ProtocolError::InvalidTopicException
                | ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidRecord
                | ProtocolError::InvalidTimestamp
                | ProtocolError::InvalidRequiredAcks
                | ProtocolError::TopicAuthorizationFailed
                | ProtocolError::ClusterAuthorizationFailed
                | ProtocolError::UnsupportedForMessageFormat
                | ProtocolError::UnsupportedCompressionType
                | ProtocolError::PolicyViolation,
            ..
        } => SinkError::fatal(reason),
        // Other server errors: leader moves, replicas short, timeouts, storage hiccups, a partition a broker does
        // not know yet just after the topic was made, and what this sink does not know. Then connections refused
        // or lost, answers that could not be read, and what the client would have retried.
        _ => SinkError::retry(reason),
    }
}

/// The error's first line, less what the client says when its own retries (made one try here) gave up.
fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .replace("all retries failed: Retry exceeded deadline. Source: ", "")
        .replace("All retries failed: Retry exceeded deadline. Source: ", "")
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid topic name"));
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "topic name {:?}... has {} characters, more than Kafka's {MAX_TOPIC_LEN}",
            &name[..32],
            name.len()
        ));
    }
    Ok(())
}

/// The topic template filled from `record`, its placeholders' values made valid in a Kafka topic name.
fn render_topic(template: &Template, record: &Record) -> String {
    let mut out = String::new();
    for part in template.parts() {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Field(field) => {
                let mut value = String::new();
                field.value(record).write_text(&mut value);
                out.extend(value.chars().map(|c| match c {
                    '/' => '.',
                    c if is_topic_char(c) => c,
                    _ => '_',
                }));
            }
        }
    }
    out
}

fn empty_record() -> Record {
    Record {
        topic: "".into(),
        payload: Default::default(),
        qos: ractmq_codec::QoS::AtMostOnce,
        retain: false,
        user_properties: Vec::new(),
        timestamp_ms: 0,
    }
}

/// The partition Kafka's default partitioner picks for `key`: murmur2, made positive, modulo the count.
fn partition_for(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as i32) % partitions.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed 0x9747b28c.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_codec::QoS;

    fn record(topic: &str) -> Record {
        Record {
            topic: topic.into(),
            payload: "21.5".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            user_properties: vec![("site".into(), "north".into())],
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn murmur2_matches_kafka() {
        // The cases of Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data) as i32, want, "{:?}", String::from_utf8_lossy(data));
        }
        assert!((0..7).contains(&partition_for(b"foobar", 7)));
    }

    #[test]
    fn topics_are_made_valid_names() {
        let t = Template::parse("mqtt-${topic}").unwrap();
        assert_eq!(render_topic(&t, &record("sensors/1/temp")), "mqtt-sensors.1.temp");
        assert_eq!(render_topic(&t, &record("$SYS/a b+é")), "mqtt-_SYS.a_b__");
    }

    #[test]
    fn settings_are_checked_and_named() {
        let good = KafkaConfig::new(vec!["127.0.0.1:9092".into()], "mqtt-${topic}");
        KafkaSink::new(&good).unwrap();
        let bad = |f: &dyn Fn(&mut KafkaConfig)| {
            let mut c = good.clone();
            f(&mut c);
            KafkaSink::new(&c).unwrap_err()
        };
        assert!(bad(&|c| c.bootstrap.clear()).starts_with("kafka.bootstrap:"));
        assert!(bad(&|c| c.bootstrap = vec!["nohost".into()]).starts_with("kafka.bootstrap[0]:"));
        assert!(bad(&|c| c.topic = "mqtt/${topic}".into()).starts_with("kafka.topic:"));
        assert!(bad(&|c| c.topic = "${topik}".into()).starts_with("kafka.topic:"));
        assert!(bad(&|c| c.topic = "".into()).starts_with("kafka.topic:"));
        assert!(bad(&|c| c.key = Some("${nope}".into())).starts_with("kafka.key:"));
        assert!(bad(&|c| c.value = Some("${".into())).starts_with("kafka.value:"));
        assert!(bad(&|c| c.batch_size = 0).starts_with("kafka.batch_size:"));
    }

    #[test]
    fn config_reads_with_defaults_and_refuses_unknown_fields() {
        let c: KafkaConfig =
            serde_json::from_str(r#"{"bootstrap": ["k:9092"], "topic": "t", "compression": "gzip"}"#).unwrap();
        assert_eq!(c.batch_size, 100);
        assert_eq!((c.timeout_ms, c.retries, c.retry_backoff_ms), (5000, 3, 200));
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.key, None);
        let err = serde_json::from_str::<KafkaConfig>(r#"{"bootstrap": [], "topic": "t", "acks": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `acks`"), "{err}");
    }

    #[tokio::test]
    async fn records_kafka_refuses_are_fatal_before_anything_is_sent() {
        // Nothing listens there: these must fail before trying.
        let mut config = KafkaConfig::new(vec!["127.0.0.1:1".into()], "${topic}");
        config.max_record_bytes = 64;
        config.retries = 0;
        let sink = KafkaSink::new(&config).unwrap();
        let err = sink.send(&[record("")]).await.unwrap_err();
        assert!(!err.retryable && err.reason.contains("empty"), "{err:?}");
        let mut big = record("a");
        big.payload = vec![0u8; 100].into();
        let err = sink.send(&[big]).await.unwrap_err();
        assert!(!err.retryable && err.reason.contains("max_record_bytes"), "{err:?}");
        let err = sink.send(&[record("a")]).await.unwrap_err();
        assert!(err.retryable, "{err:?}");
    }
}
