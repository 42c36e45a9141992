//! Why this exists: the message scenarios (fan-in, fan-out, point-to-point, latency, stuck subscriber) share
//! one engine: connect subscribers and publishers, publish numbered messages (flat out inside a flow-control
//! window, or at a fixed rate), drain, and account for every message: delivered, lost, duplicated, reordered,
//! per subscriber. It also records how long publishers were held (the longest time without a write completing
//! or a PUBACK arriving) and the broker's peak resident memory.
//!
//! Stuck subscribers (the stuck scenario) connect and subscribe like the others, then never read their socket
//! until the run is over; their messages are not part of the run's loss. Afterwards they are read for a while
//! to show what the broker kept for them.
//!
//! Flow control: each flow (a group of publishers and the subscribers of their messages) lets its publishers
//! run at most `window` messages ahead of what the subscribers have received. This measures the rate a broker
//! sustains rather than how much it can buffer, and it keeps a QoS 0 run from turning into a memory test.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{spawn_local, JoinHandle};

use crate::mqtt::{self, Reader};
use crate::net;
use crate::track::SubState;
use crate::Common;

/// Publishers and the subscribers that receive their messages.
pub struct Flow {
    /// Messages published (publisher side, all publishers of the flow).
    sent: Cell<u64>,
    /// Messages received (all subscribers of the flow).
    delivered: Cell<u64>,
    /// Subscribers that receive each message.
    fanout: u64,
    /// Messages a publisher may run ahead of the subscribers (0: no limit).
    window: u64,
    progress: Notify,
}

impl Flow {
    pub fn new(fanout: u64, window: u64) -> Self {
        Flow {
            sent: Cell::new(0),
            delivered: Cell::new(0),
            fanout: fanout.max(1),
            window,
            progress: Notify::new(),
        }
    }

    fn room(&self) -> u64 {
        if self.window == 0 {
            return u64::MAX;
        }
        let behind = (self.sent.get() * self.fanout).saturating_sub(self.delivered.get());
        self.window.saturating_sub(behind.div_ceil(self.fanout))
    }
}

pub struct SubPlan {
    pub topic: String,
    /// The flow this subscriber belongs to (unused for a stuck subscriber).
    pub flow: usize,
    /// First stream id this subscriber receives, and how many.
    pub base: u32,
    pub streams: u32,
}

pub struct PubPlan {
    pub topic: String,
    pub flow: usize,
    pub stream: u32,
}

pub struct Plan {
    pub scenario: String,
    pub qos: u8,
    pub subs: Vec<SubPlan>,
    pub pubs: Vec<PubPlan>,
    pub flows: Vec<Flow>,
    /// Read buffer per subscriber.
    pub sub_buffer: usize,
    /// Some((messages per second over all publishers, warm-up seconds)): the latency scenario.
    pub rate: Option<(f64, f64)>,
    /// Subscribers that subscribe and then do not read until the run ends.
    pub stuck: Vec<SubPlan>,
}

/// When a publisher last made progress (a write completed, a PUBACK arrived), and the longest time it went
/// without any.
struct Progress {
    last: Cell<Instant>,
    max_gap: Cell<Duration>,
}

impl Progress {
    fn new(start: Instant) -> Self {
        Progress {
            last: Cell::new(start),
            max_gap: Cell::new(Duration::ZERO),
        }
    }

    fn tick(&self) {
        let now = Instant::now();
        let gap = now.saturating_duration_since(self.last.get());
        if gap > self.max_gap.get() {
            self.max_gap.set(gap);
        }
        self.last.set(now);
    }
}

struct Ctx {
    epoch: Instant,
    stop: Cell<bool>,
    last_rx: Cell<Instant>,
    /// Messages sent per stream.
    sent: RefCell<Vec<u64>>,
    pubs_done: Cell<usize>,
    stalls: Cell<u64>,
    closed_by_broker: Cell<u64>,
    errors: RefCell<Vec<String>>,
    stall_after: Duration,
    /// PUBACKs received, all publishers.
    acked: Cell<u64>,
}

impl Ctx {
    fn new(epoch: Instant, n_streams: usize, stall_after: Duration) -> Self {
        Ctx {
            epoch,
            stop: Cell::new(false),
            last_rx: Cell::new(epoch),
            sent: RefCell::new(vec![0; n_streams]),
            pubs_done: Cell::new(0),
            stalls: Cell::new(0),
            closed_by_broker: Cell::new(0),
            errors: RefCell::new(Vec::new()),
            stall_after,
            acked: Cell::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn error(&self, what: String) {
        let mut errors = self.errors.borrow_mut();
        if errors.len() < 10 {
            errors.push(what);
        }
    }
}

pub fn source_ip(c: &Common, i: usize) -> Option<Ipv4Addr> {
    (c.sources > 0).then(|| Ipv4Addr::new(127, 0, 0, 2 + (i % c.sources as usize) as u8))
}

/// Opens `ids.len()` MQTT connections to `addr`, `c.connect_concurrency` at a time, subscribing where a topic
/// is given; `clean` false: persistent sessions (clean session 0).
async fn connect_all(
    c: &Common,
    addr: SocketAddr,
    ids: Vec<(String, Option<String>)>,
    qos: u8,
    clean: bool,
) -> Result<Vec<TcpStream>, String> {
    let sem = Rc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let handles: Vec<JoinHandle<Result<TcpStream, String>>> = ids
        .into_iter()
        .enumerate()
        .map(|(i, (id, topic))| {
            let sem = sem.clone();
            let (src, keepalive) = (source_ip(c, i), c.keepalive);
            spawn_local(async move {
                let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
                let timeout = Duration::from_secs(10);
                let (mut s, _) = net::mqtt_connect_session(addr, src, &id, keepalive, clean, timeout)
                    .await
                    .map_err(|e| format!("{id}: connect: {e}"))?;
                if let Some(t) = topic {
                    net::mqtt_subscribe(&mut s, &t, qos, timeout)
                        .await
                        .map_err(|e| format!("{id}: subscribe: {e}"))?;
                }
                Ok(s)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

async fn subscriber(ctx: Rc<Ctx>, flow: Rc<Flow>, mut stream: TcpStream, state: Rc<RefCell<SubState>>, buf: usize) {
    let quickack = state.borrow().latencies.is_some();
    let mut rd = Reader::new(buf);
    let mut acks = Vec::new();
    loop {
        match rd.fill(&mut stream).await {
            Ok(0) => {
                ctx.closed_by_broker.set(ctx.closed_by_broker.get() + 1);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                ctx.error(format!("subscriber read: {e}"));
                return;
            }
        }
        if quickack {
            net::set_quickack(&stream);
        }
        let now_ns = ctx.now_ns();
        let mut count = 0u64;
        {
            let mut st = state.borrow_mut();
            loop {
                match rd.next_frame() {
                    Ok(Some(f)) if f.kind == mqtt::PUBLISH => {
                        match mqtt::parse_publish(f.flags, f.body) {
                            Some(p) => {
                                if p.qos > 0 {
                                    mqtt::puback(&mut acks, p.pid);
                                }
                                st.record(mqtt::read_stamp(p.payload), now_ns);
                            }
                            None => st.garbled += 1,
                        }
                        count += 1;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        ctx.error(format!("subscriber decode: {e}"));
                        return;
                    }
                }
            }
        }
        if !acks.is_empty() {
            if let Err(e) = stream.write_all(&acks).await {
                ctx.error(format!("subscriber write: {e}"));
                return;
            }
            acks.clear();
        }
        if count > 0 {
            flow.delivered.set(flow.delivered.get() + count);
            ctx.last_rx.set(Instant::now());
            flow.progress.notify_waiters();
        }
    }
}

/// Counts PUBACKs on a QoS 1 publisher's connection.
async fn ack_reader<R: AsyncRead + Unpin>(
    ctx: Rc<Ctx>,
    mut rd_half: R,
    acked: Rc<Cell<u64>>,
    notify: Rc<Notify>,
    progress: Option<Rc<Progress>>,
) {
    let mut rd = Reader::new(16 * 1024);
    loop {
        match rd.fill(&mut rd_half).await {
            Ok(0) => {
                ctx.closed_by_broker.set(ctx.closed_by_broker.get() + 1);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                ctx.error(format!("publisher read: {e}"));
                return;
            }
        }
        let mut n = 0;
        loop {
            match rd.next_frame() {
                Ok(Some(f)) if f.kind == mqtt::PUBACK => n += 1,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    ctx.error(format!("publisher decode: {e}"));
                    return;
                }
            }
        }
        if n > 0 {
            acked.set(acked.get() + n);
            ctx.acked.set(ctx.acked.get() + n);
            if let Some(p) = &progress {
                p.tick();
            }
            notify.notify_waiters();
        }
    }
}

struct PubCfg {
    qos: u8,
    payload: usize,
    batch: usize,
    inflight: u64,
    cap: u64,
}

/// Waits for `notify` unless `ready()` already holds; false when nothing happened for the stall time.
async fn wait_for(ctx: &Ctx, notify: &Notify, ready: impl Fn() -> bool) -> bool {
    let notified = notify.notified();
    if ready() {
        return true;
    }
    tokio::time::timeout(ctx.stall_after, notified).await.is_ok()
}

/// Publishes numbered messages flat out within the flow window (and, at QoS 1, the inflight window).
async fn publisher(
    ctx: Rc<Ctx>,
    flow: Rc<Flow>,
    stream: TcpStream,
    stream_id: u32,
    topic: String,
    cfg: PubCfg,
    progress: Rc<Progress>,
) {
    let (rd_half, mut wr) = stream.into_split();
    let acked = Rc::new(Cell::new(0u64));
    let ack_notify = Rc::new(Notify::new());
    let ack_task = (cfg.qos > 0).then(|| {
        spawn_local(ack_reader(
            ctx.clone(),
            rd_half,
            acked.clone(),
            ack_notify.clone(),
            Some(progress.clone()),
        ))
    });
    let topic = topic.into_bytes();
    let mut payload = vec![0u8; cfg.payload.max(mqtt::STAMP_LEN)];
    let mut out = Vec::with_capacity(cfg.batch * (payload.len() + topic.len() + 8));
    let mut seq: u64 = 0;
    let mut pid: u16 = 0;
    let mut gave_up = false;
    while !ctx.stop.get() && seq < cfg.cap {
        let room = flow.room();
        if room == 0 {
            if !wait_for(&ctx, &flow.progress, || flow.room() > 0).await {
                ctx.stalls.set(ctx.stalls.get() + 1);
                ctx.error(format!(
                    "publisher {stream_id}: no delivery progress for {:?}",
                    ctx.stall_after
                ));
                gave_up = true;
                break;
            }
            continue;
        }
        let mut n = (cfg.batch as u64).min(cfg.cap - seq).min(room);
        if cfg.qos > 0 {
            let free = cfg.inflight.saturating_sub(seq - acked.get());
            if free == 0 {
                let limit = cfg.inflight;
                if !wait_for(&ctx, &ack_notify, || seq - acked.get() < limit).await {
                    ctx.stalls.set(ctx.stalls.get() + 1);
                    ctx.error(format!("publisher {stream_id}: no PUBACK for {:?}", ctx.stall_after));
                    gave_up = true;
                    break;
                }
                continue;
            }
            n = n.min(free);
        }
        out.clear();
        let ts = ctx.now_ns();
        for _ in 0..n {
            mqtt::stamp(&mut payload, stream_id, seq as u32, ts);
            if cfg.qos > 0 {
                pid = if pid == u16::MAX { 1 } else { pid + 1 };
            }
            mqtt::publish(&mut out, &topic, cfg.qos, pid, &payload);
            seq += 1;
        }
        flow.sent.set(flow.sent.get() + n);
        ctx.sent.borrow_mut()[stream_id as usize] += n;
        if let Err(e) = wr.write_all(&out).await {
            ctx.error(format!("publisher {stream_id} write: {e}"));
            break;
        }
        progress.tick();
    }
    if gave_up {
        // the time waited before giving up was a wait too
        progress.tick();
    }
    ctx.pubs_done.set(ctx.pubs_done.get() + 1);
    // Keep the connection (and the ack reader) open until the run ends: closing early would be a disconnect
    // in the middle of the measurement.
    std::future::pending::<()>().await;
    drop((wr, ack_task));
}

/// The latency scenario's publishing side runs on a thread of its own, so that sending never delays the
/// subscribers' receive timestamps (and they never delay a send): it sends `rate` messages per second,
/// evenly spaced, round-robin over the publishers, each stamped with its send time.
struct Paced {
    streams: Vec<(std::net::TcpStream, Vec<u8>)>,
    rate: f64,
    total: u64,
    qos: u8,
    payload: usize,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    sent: Arc<Vec<AtomicU64>>,
    error: Arc<Mutex<Option<String>>>,
}

/// write_all on a non-blocking socket (shared with the runtime that reads its PUBACKs).
fn write_all_nb(s: &mut std::net::TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(50)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn paced(mut p: Paced) {
    let n = p.streams.len() as u64;
    let mut payload = vec![0u8; p.payload.max(mqtt::STAMP_LEN)];
    let mut out = Vec::with_capacity(256);
    let mut seqs = vec![0u32; p.streams.len()];
    let mut pid: u16 = 0;
    let start = Instant::now();
    for k in 0..p.total {
        if p.stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + Duration::from_secs_f64(k as f64 / p.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let i = (k % n) as usize;
        let (stream, topic) = &mut p.streams[i];
        out.clear();
        mqtt::stamp(&mut payload, i as u32, seqs[i], p.epoch.elapsed().as_nanos() as u64);
        if p.qos > 0 {
            pid = if pid == u16::MAX { 1 } else { pid + 1 };
        }
        mqtt::publish(&mut out, topic, p.qos, pid, &payload);
        if let Err(e) = write_all_nb(stream, &out) {
            *p.error.lock().unwrap() = Some(format!("publisher {i} write: {e}"));
            break;
        }
        seqs[i] += 1;
        p.sent[i].fetch_add(1, Ordering::Relaxed);
    }
    p.done.store(true, Ordering::Release);
    // the sockets stay open until the process ends
    std::mem::forget(p.streams);
}

/// Bridges the pacing thread to the run: passes the stop request on and reports the counts when it is done.
async fn paced_watch(
    ctx: Rc<Ctx>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    sent: Arc<Vec<AtomicU64>>,
    error: Arc<Mutex<Option<String>>>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if ctx.stop.get() {
            stop.store(true, Ordering::Relaxed);
        }
        if done.load(Ordering::Acquire) {
            let mut mine = ctx.sent.borrow_mut();
            for (m, s) in mine.iter_mut().zip(sent.iter()) {
                *m = s.load(Ordering::Relaxed);
            }
            if let Some(e) = error.lock().unwrap().take() {
                ctx.error(e);
            }
            ctx.pubs_done.set(ctx.pubs_done.get() + sent.len());
            return;
        }
    }
}

/// After the run, reads the stuck subscribers at last (acknowledging at QoS 1) until nothing more arrives for
/// the drain time, or for 10 s at most: what the broker had kept for them, and whether it had closed them.
async fn release_stuck(
    c: &Common,
    stuck: &[SubPlan],
    streams: Vec<TcpStream>,
    sent: &[u64],
) -> Option<Vec<(&'static str, Value)>> {
    if stuck.is_empty() {
        return None;
    }
    let start = Instant::now();
    let ctx = Rc::new(Ctx::new(start, sent.len(), Duration::from_secs_f64(c.stall)));
    let flow = Rc::new(Flow::new(1, 0));
    let states: Vec<Rc<RefCell<SubState>>> = stuck
        .iter()
        .map(|s| Rc::new(RefCell::new(SubState::new(s.base, s.streams, false, 0))))
        .collect();
    let tasks: Vec<JoinHandle<()>> = streams
        .into_iter()
        .zip(&states)
        .map(|(stream, st)| spawn_local(subscriber(ctx.clone(), flow.clone(), stream, st.clone(), 64 * 1024)))
        .collect();
    let expected: u64 = stuck
        .iter()
        .map(|s| (s.base..s.base + s.streams).map(|i| sent[i as usize]).sum::<u64>())
        .sum();
    let unique = || -> u64 {
        states
            .iter()
            .map(|st| st.borrow().trackers.iter().map(|t| t.unique).sum::<u64>())
            .sum()
    };
    let idle = Duration::from_secs_f64(c.drain_idle);
    let (mut seen, mut seen_at) = (0u64, start);
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = Instant::now();
        if flow.delivered.get() != seen {
            (seen, seen_at) = (flow.delivered.get(), now);
        }
        let all_closed = ctx.closed_by_broker.get() >= stuck.len() as u64;
        if unique() >= expected || all_closed || now - seen_at >= idle || now - start >= Duration::from_secs(10) {
            break;
        }
    }
    for t in &tasks {
        t.abort();
    }
    let dups: u64 = states
        .iter()
        .map(|st| st.borrow().trackers.iter().map(|t| t.dups).sum::<u64>())
        .sum();
    let errors = ctx.errors.borrow().clone();
    Some(vec![
        ("stuck_expected", json!(expected)),
        ("stuck_received", json!(unique())),
        ("stuck_dups", json!(dups)),
        ("stuck_closed_by_broker", json!(ctx.closed_by_broker.get())),
        ("stuck_errors", json!(errors)),
    ])
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

pub async fn run(c: &Common, plan: Plan) -> Value {
    let Plan {
        scenario,
        qos,
        subs,
        pubs,
        flows,
        sub_buffer,
        rate,
        stuck,
    } = plan;
    // With persistent subscribers the broker must keep (and, if durable, commit) every copy: another scenario.
    let scenario = if c.persistent_subs {
        format!("durable-{scenario}")
    } else {
        scenario
    };
    let mut base = json!({
        "scenario": scenario, "peer": c.label, "persistent_subscribers": c.persistent_subs, "qos": qos, "publishers": pubs.len(), "subscribers": subs.len(),
        "payload": c.payload, "max_msgs_per_publisher": c.max_msgs,
    });
    if !stuck.is_empty() {
        base["stuck_subscribers"] = json!(stuck.len());
    }
    if let Some(sub_addr) = c.sub_addr {
        base["pub_addr"] = json!(c.addr.to_string());
        base["sub_addr"] = json!(sub_addr.to_string());
    }
    let fail = |why: String| {
        let mut v = base.clone();
        v["ok"] = json!(false);
        v["errors"] = json!([why]);
        v
    };
    let sub_ids = subs
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("lg-s{i}"), Some(s.topic.clone())))
        .collect();
    let sub_streams = match connect_all(c, c.subscriber_addr(), sub_ids, qos, !c.persistent_subs).await {
        Ok(s) => s,
        Err(e) => return fail(format!("connecting subscribers: {e}")),
    };
    let stuck_ids = stuck
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("lg-stuck{i}"), Some(s.topic.clone())))
        .collect();
    // they read nothing after their SUBACK until the run is over
    let stuck_streams = match connect_all(c, c.subscriber_addr(), stuck_ids, qos, true).await {
        Ok(s) => s,
        Err(e) => return fail(format!("connecting stuck subscribers: {e}")),
    };
    let pub_ids = (0..pubs.len()).map(|i| (format!("lg-p{i}"), None)).collect();
    let pub_streams = match connect_all(c, c.addr, pub_ids, qos, true).await {
        Ok(s) => s,
        Err(e) => return fail(format!("connecting publishers: {e}")),
    };
    // Let every broker finish installing the subscriptions it has acknowledged.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let n_streams = pubs.iter().map(|p| p.stream + 1).max().unwrap_or(0) as usize;
    let epoch = Instant::now();
    let warmup_ns = rate.map_or(0, |(_, w)| (w * 1e9) as u64);
    let ctx = Rc::new(Ctx::new(epoch, n_streams, Duration::from_secs_f64(c.stall)));
    let flows: Vec<Rc<Flow>> = flows.into_iter().map(Rc::new).collect();
    let cpu0 = c.broker_cpu_seconds();
    let self_cpu0 = net::self_cpu_seconds();
    let rss0 = c.broker_rss_kib();
    let mut rss_max = rss0;
    let progress: Vec<Rc<Progress>> = pubs.iter().map(|_| Rc::new(Progress::new(epoch))).collect();

    let mut tasks = Vec::new();
    let states: Vec<Rc<RefCell<SubState>>> = subs
        .iter()
        .map(|s| {
            Rc::new(RefCell::new(SubState::new(
                s.base,
                s.streams,
                rate.is_some(),
                warmup_ns,
            )))
        })
        .collect();
    for ((s, stream), state) in subs.iter().zip(sub_streams).zip(&states) {
        let flow = flows[s.flow].clone();
        tasks.push(spawn_local(subscriber(
            ctx.clone(),
            flow,
            stream,
            state.clone(),
            sub_buffer,
        )));
    }
    let cap = c.max_msgs;
    match rate {
        None => {
            for ((p, stream), progress) in pubs.iter().zip(pub_streams).zip(&progress) {
                let cfg = PubCfg {
                    qos,
                    payload: c.payload,
                    batch: c.batch,
                    inflight: c.inflight,
                    cap,
                };
                let flow = flows[p.flow].clone();
                tasks.push(spawn_local(publisher(
                    ctx.clone(),
                    flow,
                    stream,
                    p.stream,
                    p.topic.clone(),
                    cfg,
                    progress.clone(),
                )));
            }
        }
        Some((rate, warmup)) => {
            let mut streams = Vec::new();
            for (p, stream) in pubs.iter().zip(pub_streams) {
                let std_stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => return fail(format!("publisher socket: {e}")),
                };
                if qos > 0 {
                    // the runtime reads PUBACKs on a duplicate of the socket; the pacing thread writes
                    let reader = std_stream.try_clone().and_then(TcpStream::from_std);
                    match reader {
                        Ok(r) => {
                            let acked = Rc::new(Cell::new(0));
                            tasks.push(spawn_local(ack_reader(
                                ctx.clone(),
                                r,
                                acked,
                                Rc::new(Notify::new()),
                                None,
                            )));
                        }
                        Err(e) => return fail(format!("publisher socket: {e}")),
                    }
                }
                streams.push((std_stream, p.topic.clone().into_bytes()));
            }
            let total = ((rate * (c.duration + warmup)) as u64).min(cap.saturating_mul(pubs.len() as u64));
            let stop = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicBool::new(false));
            let sent = Arc::new((0..streams.len()).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
            let error = Arc::new(Mutex::new(None));
            let p = Paced {
                streams,
                rate,
                total,
                qos,
                payload: c.payload,
                epoch,
                stop: stop.clone(),
                done: done.clone(),
                sent: sent.clone(),
                error: error.clone(),
            };
            if let Err(e) = std::thread::Builder::new().name("paced".into()).spawn(move || paced(p)) {
                return fail(format!("pacing thread: {e}"));
            }
            tasks.push(spawn_local(paced_watch(ctx.clone(), stop, done, sent, error)));
        }
    }

    // Drive: stop publishing after the duration; finish when everything sent has arrived, when nothing has
    // arrived for the drain time after publishing ended, or at the hard deadline.
    let npubs = pubs.len();
    let duration = Duration::from_secs_f64(c.duration + rate.map_or(0.0, |(_, w)| w));
    let deadline = Duration::from_secs_f64(c.deadline);
    let drain_idle = Duration::from_secs_f64(c.drain_idle);
    let mut timed_out = false;
    let mut pub_end: Option<Instant> = None;
    let mut cpu_at_last_rx = cpu0;
    let mut last_seen = Instant::now();
    let mut last_delivered = 0;
    let mut rss_read = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = Instant::now();
        if now - rss_read >= Duration::from_millis(100) {
            rss_max = rss_max.max(c.broker_rss_kib());
            rss_read = now;
        }
        if !ctx.stop.get() && now - epoch >= duration {
            ctx.stop.set(true);
        }
        let delivered: u64 = flows.iter().map(|f| f.delivered.get()).sum();
        if delivered != last_delivered {
            last_delivered = delivered;
            last_seen = now;
            cpu_at_last_rx = c.broker_cpu_seconds();
        }
        let all_done = ctx.pubs_done.get() >= npubs;
        if all_done && pub_end.is_none() {
            pub_end = Some(now);
        }
        if all_done {
            let sent = ctx.sent.borrow();
            let expected: u64 = subs
                .iter()
                .map(|s| (s.base..s.base + s.streams).map(|i| sent[i as usize]).sum::<u64>())
                .sum();
            let unique: u64 = states
                .iter()
                .map(|st| st.borrow().trackers.iter().map(|t| t.unique).sum::<u64>())
                .sum();
            if unique >= expected || now - last_seen >= drain_idle {
                break;
            }
        }
        if now - epoch >= deadline {
            timed_out = true;
            ctx.stop.set(true);
            break;
        }
    }
    let self_cpu1 = net::self_cpu_seconds();
    let rss1 = c.broker_rss_kib();
    rss_max = rss_max.max(rss1);
    for t in &tasks {
        t.abort();
    }
    let sent_per_stream = ctx.sent.borrow().clone();
    let stuck_view = release_stuck(c, &stuck, stuck_streams, &sent_per_stream).await;

    // Account for every message.
    let sent: u64 = sent_per_stream.iter().sum();
    let (mut expected, mut unique, mut dups, mut reordered, mut misrouted, mut garbled) = (0u64, 0, 0, 0, 0, 0);
    let (mut received, mut subs_with_loss, mut subs_with_dups, mut max_lost_per_sub) = (0u64, 0u64, 0u64, 0u64);
    let mut lat = Vec::new();
    for (s, st) in subs.iter().zip(&states) {
        let st = st.borrow();
        let (mut sub_expected, mut sub_unique, mut sub_dups) = (0u64, 0u64, 0u64);
        for (k, t) in st.trackers.iter().enumerate() {
            sub_expected += sent_per_stream[(s.base as usize) + k];
            sub_unique += t.unique;
            sub_dups += t.dups;
            reordered += t.reordered;
        }
        let sub_lost = sub_expected.saturating_sub(sub_unique);
        expected += sub_expected;
        unique += sub_unique;
        dups += sub_dups;
        subs_with_loss += (sub_lost > 0) as u64;
        subs_with_dups += (sub_dups > 0) as u64;
        max_lost_per_sub = max_lost_per_sub.max(sub_lost);
        received += st.received();
        misrouted += st.misrouted;
        garbled += st.garbled;
        if let Some(l) = &st.latencies {
            lat.extend_from_slice(l);
        }
    }
    let lost = expected.saturating_sub(unique);
    let elapsed = ctx.last_rx.get().saturating_duration_since(epoch).as_secs_f64();
    let pub_max_gap = progress.iter().map(|p| p.max_gap.get()).max().unwrap_or_default();
    let publish_s = progress
        .iter()
        .map(|p| p.last.get().saturating_duration_since(epoch))
        .max()
        .unwrap_or_default()
        .as_secs_f64();
    let pub_elapsed = pub_end.map_or(elapsed, |t| (t - epoch).as_secs_f64());
    let cpu = match (cpu0, cpu_at_last_rx) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let mut v = base;
    let errors = ctx.errors.borrow().clone();
    v["ok"] = json!(errors.is_empty() && !timed_out && lost == 0 && dups == 0 && misrouted == 0 && garbled == 0);
    v["sent"] = json!(sent);
    v["expected"] = json!(expected);
    v["received"] = json!(received);
    v["delivered"] = json!(unique);
    v["lost"] = json!(lost);
    v["lost_pct"] = json!(if expected > 0 {
        lost as f64 * 100.0 / expected as f64
    } else {
        0.0
    });
    v["dups"] = json!(dups);
    v["subs_with_loss"] = json!(subs_with_loss);
    v["subs_with_dups"] = json!(subs_with_dups);
    v["max_lost_per_sub"] = json!(max_lost_per_sub);
    v["reordered"] = json!(reordered);
    v["misrouted"] = json!(misrouted);
    v["garbled"] = json!(garbled);
    v["elapsed_s"] = json!(elapsed);
    v["msgs_per_s"] = json!(if elapsed > 0.0 { unique as f64 / elapsed } else { 0.0 });
    v["publish_rate"] = json!(if pub_elapsed > 0.0 {
        sent as f64 / pub_elapsed
    } else {
        0.0
    });
    v["broker_cpu_s"] = json!(cpu);
    v["broker_cpu_s_per_million"] = json!(cpu.filter(|_| unique > 0).map(|c| c * 1e6 / unique as f64));
    v["loadgen_cpu_s"] = json!(self_cpu0.zip(self_cpu1).map(|(a, b)| b - a));
    v["broker_rss_kib_before"] = json!(rss0);
    v["broker_rss_kib_after"] = json!(rss1);
    v["broker_rss_kib_max"] = json!(rss_max);
    if rate.is_none() {
        v["acked"] = json!(ctx.acked.get());
        v["publish_s"] = json!(publish_s);
        v["pub_max_gap_s"] = json!(pub_max_gap.as_secs_f64());
    }
    if let Some(sv) = stuck_view {
        for (k, x) in sv {
            v[k] = x;
        }
    }
    v["stalls"] = json!(ctx.stalls.get());
    v["closed_by_broker"] = json!(ctx.closed_by_broker.get());
    v["timed_out"] = json!(timed_out);
    v["errors"] = json!(errors);
    if rate.is_some() {
        lat.sort_unstable();
        let mean = if lat.is_empty() {
            f64::NAN
        } else {
            lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0
        };
        v["rate"] = json!(rate.map(|r| r.0));
        v["latency_samples"] = json!(lat.len());
        v["latency_us"] = json!({
            "mean": mean, "p50": percentile(&lat, 50.0), "p90": percentile(&lat, 90.0), "p99": percentile(&lat, 99.0),
            "p999": percentile(&lat, 99.9), "max": lat.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        });
    }
    v
}
