//! The task a sink bridge's actor owns (HTTP, PostgreSQL): it takes messages from the bridge's local session,
//! hands them to the sink in batches, and acknowledges each to the local session only once the sink took it
//! (a 2xx, a committed transaction), or once it went to the dead-letter topic after its retries.
//!
//! Batches form by themselves: while `max_inflight` sends are out, what arrives waits and goes in the next
//! one, up to `batch_size`. Acknowledgements go back in the order the messages came, whatever order the
//! sends finish in. The messages waiting here are bounded (a few batches); past that the pump stops reading,
//! and the local session's buffer holds the rest with its policy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractmq_broker::BrokerView;
use ractmq_codec::{Packet, Protocol, Publish, QoS};
use ractmq_protocol::Message;
use tokio::sync::mpsc;

use crate::client::{Client, Event, InboundAck};
use crate::config::{self, BridgeConfig};
use crate::link::Link;
use crate::local_session::{self, LocalEnd};
use crate::mqtt_pump::Control;
use crate::sink::SinkError;
use crate::sinks::{SendPolicy, Sink};
use crate::stats::Counters;
use crate::Record;

/// Bytes of the in-process pipe to the local broker, each way.
const LOCAL_PIPE: usize = 256 * 1024;

/// How a batch ended.
enum Outcome {
    Taken,
    /// Failed past its retries (or for good): dead-letter it.
    Failed(SinkError),
}

struct Pending {
    record: Record,
    ack: Option<InboundAck>,
    /// Its position in arrival order, for acknowledging in order.
    seq: u64,
}

pub(crate) struct SinkPump {
    name: String,
    forward: Vec<String>,
    qos: QoS,
    dlq_topic: String,
    sink: Sink,
    policy: SendPolicy,
    view: BrokerView,
    stats: Arc<Counters>,
    local: Client<()>,
    link: Link,
    waiting: VecDeque<Pending>,
    in_flight: usize,
    next_seq: u64,
    /// Finished messages not yet acknowledged because an earlier one is not finished: by seq.
    finished: BTreeMap<u64, Option<InboundAck>>,
    /// The seq of the oldest message not acknowledged yet.
    next_to_ack: u64,
    done_tx: mpsc::UnboundedSender<(Vec<Pending>, Outcome, Duration)>,
    done_rx: mpsc::UnboundedReceiver<(Vec<Pending>, Outcome, Duration)>,
    letters_tx: mpsc::UnboundedSender<Vec<Pending>>,
    letters_rx: mpsc::UnboundedReceiver<Vec<Pending>>,
    events: Vec<Event<()>>,
    packets: Vec<Packet>,
}

impl SinkPump {
    pub(crate) fn new(config: &BridgeConfig, view: &BrokerView, stats: Arc<Counters>) -> Result<SinkPump, String> {
        let (sink, policy) = Sink::of(config)?;
        let (qos, dlq_topic) = match config {
            BridgeConfig::Http(c) => (c.qos, c.dlq_topic.clone()),
            BridgeConfig::Postgres(c) => (c.qos, c.dlq_topic.clone()),
            BridgeConfig::Kafka(c) => (c.qos, c.dlq_topic.clone()),
            BridgeConfig::Mqtt(_) => return Err("not a sink bridge".into()),
        };
        let window = (policy.batch_size * policy.max_inflight).clamp(1, u16::MAX as usize) as u16;
        let local = crate::local_session::client(config.name(), window);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (letters_tx, letters_rx) = mpsc::unbounded_channel();
        Ok(SinkPump {
            name: config.name().to_string(),
            forward: config.forward().to_vec(),
            qos: QoS::from_u8(qos).unwrap_or(QoS::AtLeastOnce),
            dlq_topic,
            sink,
            policy,
            view: view.clone(),
            stats,
            local,
            link: Link::new(view.connect_in_process(LOCAL_PIPE), Protocol::V5, false),
            waiting: VecDeque::new(),
            in_flight: 0,
            next_seq: 0,
            finished: BTreeMap::new(),
            next_to_ack: 0,
            done_tx,
            done_rx,
            letters_tx,
            letters_rx,
            events: Vec::new(),
            packets: Vec::new(),
        })
    }

    /// Runs until told to stop (`Ok`) or the local connection fails (`Err`: the actor is restarted).
    pub(crate) async fn run(mut self, mut control: mpsc::Receiver<Control>) -> Result<(), String> {
        let connect = self.local.connect(Instant::now());
        self.packets.push(connect);
        self.flush().await?;
        // Room for two rounds of batches: enough to fill the next ones while the current ones are out.
        let hold = self.policy.batch_size * self.policy.max_inflight * 2;
        loop {
            tokio::select! {
                read = self.link.read_more(), if self.waiting.len() < hold => {
                    if !read.map_err(|e| format!("local connection: {e}"))? {
                        return Err("the local broker closed the bridge's connection".into());
                    }
                    if let Err(end) = self.on_local() {
                        return local_session::pump_end(&self.name, end);
                    }
                }
                Some((batch, outcome, took)) = self.done_rx.recv() => self.on_done(batch, outcome, took),
                Some(batch) = self.letters_rx.recv() => {
                    Counters::add(&self.stats.dead_lettered, batch.len() as u64);
                    self.finish(batch);
                }
                _ = self.stats.letters.replay_ready.notified() => {
                    for letter in self.stats.letters.take_replays() {
                        Counters::add(&self.stats.retried, 1);
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        let record = Record {
                            topic: letter.topic.into(),
                            payload: letter.bytes,
                            qos: QoS::AtLeastOnce,
                            retain: false,
                            user_properties: letter.user_properties,
                            timestamp_ms: now_ms(),
                        };
                        self.waiting.push_back(Pending { record, ack: None, seq });
                    }
                }
                _ = control.recv() => {
                    self.packets.push(self.local.disconnect_packet());
                    let _ = self.flush().await;
                    return Ok(());
                }
            }
            self.start_sends();
            self.flush().await?;
        }
    }

    fn on_local(&mut self) -> Result<(), LocalEnd> {
        let now = Instant::now();
        while let Some(packet) = self.link.next_packet()? {
            self.local.handle(packet, now, &mut self.events)?;
        }
        for event in std::mem::take(&mut self.events) {
            match event {
                Event::Connected { .. } => {
                    let stale = local_session::stale(&self.view, &self.name, &self.forward);
                    self.local.unsubscribe(&stale);
                    self.local.subscribe(&self.forward, self.qos);
                }
                Event::Subscribed(reasons) => {
                    let refused = reasons.iter().any(|&r| r >= 0x80);
                    self.stats
                        .connected
                        .store(!refused, std::sync::atomic::Ordering::Relaxed);
                }
                Event::Message { publish, ack } => {
                    if publish.dup {
                        Counters::add(&self.stats.duplicates, 1);
                    }
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.waiting.push_back(Pending {
                        record: record_of(publish),
                        ack,
                        seq,
                    });
                }
                // The sink took the message before it was acknowledged: the second half needs nothing more.
                Event::Released(pkid) => self.local.complete(pkid),
                Event::Acked(()) | Event::Refused(..) | Event::Completed(_) => {}
            }
        }
        Ok(())
    }

    /// Start as many batches as the policy allows.
    fn start_sends(&mut self) {
        while self.in_flight < self.policy.max_inflight && !self.waiting.is_empty() {
            let key = self.sink.batch_key(&self.waiting[0].record);
            let mut batch = Vec::with_capacity(self.policy.batch_size.min(self.waiting.len()));
            while batch.len() < self.policy.batch_size {
                match self.waiting.front() {
                    Some(p) if self.sink.batch_key(&p.record) == key => batch.push(self.waiting.pop_front().unwrap()),
                    _ => break,
                }
            }
            self.in_flight += 1;
            Counters::add(&self.stats.sent, batch.len() as u64);
            let (sink, policy, done, stats) =
                (self.sink.clone(), self.policy, self.done_tx.clone(), self.stats.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = deliver(&sink, &batch, policy, &stats).await;
                let _ = done.send((batch, outcome, started.elapsed()));
            });
        }
    }

    fn on_done(&mut self, batch: Vec<Pending>, outcome: Outcome, took: Duration) {
        self.in_flight -= 1;
        match outcome {
            Outcome::Taken => {
                self.stats.connected.store(true, std::sync::atomic::Ordering::Relaxed);
                self.stats.set_error(None);
                Counters::add(&self.stats.acked, batch.len() as u64);
                self.stats.observe_latency(took.as_micros() as u64);
                self.finish(batch);
            }
            Outcome::Failed(why) => {
                Counters::add(&self.stats.failed, batch.len() as u64);
                tracing::warn!(bridge = %self.name, messages = batch.len(), "dead-lettered: {why}");
                self.stats.set_error(Some(why.reason.clone()));
                self.dead_letter(batch, why);
            }
        }
    }

    /// Publish the batch on the dead-letter topic with the reason; the messages are acknowledged once it is.
    fn dead_letter(&self, batch: Vec<Pending>, why: SinkError) {
        for p in &batch {
            let r = &p.record;
            (self.stats.letters).record(&r.topic, r.payload.clone(), &why.reason, r.user_properties.clone());
        }
        let letters: Vec<Message> = (batch.iter())
            .map(|p| {
                let topic = config::dlq_topic(&self.dlq_topic, &self.name, &p.record.topic);
                let mut letter = Message::new(topic, p.record.payload.clone(), QoS::AtLeastOnce, false);
                letter.properties.user_properties = p.record.user_properties.clone();
                letter
                    .properties
                    .user_properties
                    .push(("reason".into(), why.reason.clone()));
                letter
                    .properties
                    .user_properties
                    .push(("bridge".into(), self.name.clone()));
                letter
            })
            .collect();
        let (view, done) = (self.view.clone(), self.letters_tx.clone());
        tokio::spawn(async move {
            for letter in letters {
                view.publish(letter).await;
            }
            let _ = done.send(batch);
        });
    }

    /// These messages are done with: acknowledge them, and every earlier one, in arrival order.
    fn finish(&mut self, batch: Vec<Pending>) {
        for p in batch {
            self.finished.insert(p.seq, p.ack);
        }
        while let Some(ack) = self.finished.remove(&self.next_to_ack) {
            self.next_to_ack += 1;
            if let Some(ack) = ack {
                self.local.ack(ack);
            }
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.local.take_output(Instant::now(), &mut self.packets);
        self.link
            .send(&mut self.packets)
            .await
            .map_err(|e| format!("local connection: {e}"))
    }
}

/// One batch, with its retries.
async fn deliver(sink: &Sink, batch: &[Pending], policy: SendPolicy, stats: &Counters) -> Outcome {
    let records: Vec<Record> = batch.iter().map(|p| p.record.clone()).collect();
    let mut wait = policy.backoff;
    let mut attempt = 0;
    loop {
        match sink.send(&records).await {
            Ok(()) => return Outcome::Taken,
            Err(e) if e.retryable && attempt < policy.retries => {
                attempt += 1;
                Counters::add(&stats.retried, 1);
                stats.connected.store(false, std::sync::atomic::Ordering::Relaxed);
                stats.set_error(Some(e.reason));
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            Err(e) => return Outcome::Failed(e),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn record_of(publish: Publish) -> Record {
    let timestamp_ms = now_ms();
    Record {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        user_properties: publish.properties.user_properties,
        timestamp_ms,
    }
}
