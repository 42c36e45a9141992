//! The sink of a sink bridge, whatever its kind, and how the bridge uses it (batches, sends in flight,
//! retries): what the pump needs from a bridge's configuration, in one place.

use crate::sink::SinkError;

/// A configured sink of any kind, cheap to clone (sends may run at once).
#[derive(Clone)]
pub(crate) enum Sink {
    Http(crate::http::HttpSink),
    Postgres(crate::postgres::PostgresSink),
    Kafka(crate::kafka::KafkaSink),
}

/// How a bridge uses its sink: batches up to `batch_size`, at most `max_inflight` at once, each tried
/// `retries` more times after a retryable failure, waiting `backoff` (doubled each time) in between.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendPolicy {
    pub(crate) batch_size: usize,
    pub(crate) max_inflight: usize,
    pub(crate) retries: u32,
    pub(crate) backoff: std::time::Duration,
}

impl Sink {
    /// The sink of a bridge's configuration, with its send policy.
    pub(crate) fn of(config: &crate::config::BridgeConfig) -> Result<(Sink, SendPolicy), String> {
        use crate::config::BridgeConfig;
        let ms = std::time::Duration::from_millis;
        match config {
            BridgeConfig::Http(c) => Ok((
                Sink::Http(crate::http::HttpSink::new(&c.sink)?),
                SendPolicy {
                    batch_size: c.sink.batch_size.max(1),
                    max_inflight: c.sink.max_inflight.max(1),
                    retries: c.sink.retries,
                    backoff: ms(c.sink.retry_backoff_ms),
                },
            )),
            BridgeConfig::Postgres(c) => Ok((
                Sink::Postgres(crate::postgres::PostgresSink::new(&c.sink)?),
                SendPolicy {
                    batch_size: c.sink.batch_size.max(1),
                    max_inflight: c.sink.pool_size.max(1),
                    retries: c.sink.retries,
                    backoff: ms(c.sink.retry_backoff_ms),
                },
            )),
            BridgeConfig::Kafka(c) => Ok((
                Sink::Kafka(crate::kafka::KafkaSink::new(&c.sink)?),
                SendPolicy {
                    batch_size: c.sink.batch_size.max(1),
                    // One batch at a time keeps each partition's records in the order they were published.
                    max_inflight: 1,
                    // The Kafka sink retries inside a send (per partition, reconnecting), `retries` times.
                    retries: 0,
                    backoff: ms(c.sink.retry_backoff_ms),
                },
            )),
            BridgeConfig::Mqtt(_) => Err("an MQTT bridge has no sink".into()),
        }
    }

    /// One attempt at delivering `batch`.
    pub(crate) async fn send(&self, batch: &[crate::Record]) -> Result<(), SinkError> {
        match self {
            Sink::Http(s) => s.send(batch).await,
            Sink::Postgres(s) => s.send(batch).await,
            Sink::Kafka(s) => s.send(batch).await,
        }
    }

    /// Records that may share a batch have the same key (an HTTP request goes to one URL).
    pub(crate) fn batch_key(&self, record: &crate::Record) -> Option<String> {
        match self {
            Sink::Http(s) => Some(s.url_for(record)),
            Sink::Postgres(_) | Sink::Kafka(_) => None,
        }
    }
}
