//! Why this exists: how long a durable node takes to come back with many persistent sessions and a large
//! offline queue (benches/restart_time.sh). `fill` makes the sessions (clean session 0, one QoS 1 subscription
//! each, many sessions per topic) and queues messages for them while they are offline, waiting for every
//! PUBACK; `resume`, started right after the restarted node, measures when it accepts connections and answers
//! its first CONNACK, then reconnects a sample of the sessions: each must be present and get its messages.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{spawn_local, JoinHandle};

use crate::flow::source_ip;
use crate::mqtt::{self, Reader};
use crate::{net, Common};

/// What `fill` makes.
pub struct Fill {
    pub sessions: u32,
    /// Sessions subscribed to each topic.
    pub per_topic: u32,
    /// Messages published to each topic.
    pub msgs: u32,
    pub pubs: u32,
}

/// A publisher that sees no PUBACK for this long gives up (a durable broker may take a while on a large batch).
const FILL_STALL: Duration = Duration::from_secs(60);
const HANDSHAKE: Duration = Duration::from_secs(30);

fn session_id(i: u32) -> String {
    format!("lg-r{i}")
}

fn topic_of(group: u32) -> String {
    format!("bench/restart/{group}")
}

/// The first errors, each once, and how many there were.
#[derive(Default)]
struct Errors {
    first: RefCell<Vec<String>>,
    count: Cell<u64>,
}

impl Errors {
    fn add(&self, e: String) {
        self.count.set(self.count.get() + 1);
        let mut first = self.first.borrow_mut();
        if first.len() < 10 && !first.contains(&e) {
            first.push(e);
        }
    }

    fn list(&self) -> Vec<String> {
        self.first.borrow().clone()
    }
}

async fn make_session(
    addr: SocketAddr,
    c_src: Option<std::net::Ipv4Addr>,
    i: u32,
    per_topic: u32,
    keepalive: u16,
) -> io::Result<()> {
    let id = session_id(i);
    let (mut s, _) = net::mqtt_connect_session(addr, c_src, &id, keepalive, false, HANDSHAKE).await?;
    net::mqtt_subscribe(&mut s, &topic_of(i / per_topic), 1, HANDSHAKE).await?;
    s.write_all(&mqtt::DISCONNECT).await?;
    let _ = s.shutdown().await;
    Ok(())
}

/// Publishes `msgs` QoS 1 messages to each of `topics` (round by round), at most `inflight` unacknowledged, and
/// waits for every PUBACK; returns the messages acknowledged.
async fn publish_all(
    c: &Common,
    index: usize,
    topics: Vec<u32>,
    msgs: u32,
    acked_total: Rc<Cell<u64>>,
) -> Result<u64, String> {
    let id = format!("lg-rp{index}");
    let s = net::mqtt_connect(c.addr, source_ip(c, index), &id, c.keepalive, HANDSHAKE)
        .await
        .map_err(|e| format!("{id}: connect: {e}"))?;
    let (mut rd_half, mut wr) = s.into_split();
    let acked = Rc::new(Cell::new(0u64));
    let notify = Rc::new(Notify::new());
    let reader: JoinHandle<()> = {
        let (acked, notify, acked_total) = (acked.clone(), notify.clone(), acked_total.clone());
        spawn_local(async move {
            let mut rd = Reader::new(16 * 1024);
            loop {
                match rd.fill(&mut rd_half).await {
                    Ok(0) | Err(_) => {
                        notify.notify_waiters();
                        return;
                    }
                    Ok(_) => {}
                }
                let mut n = 0;
                while let Ok(Some(f)) = rd.next_frame() {
                    if f.kind == mqtt::PUBACK {
                        n += 1;
                    }
                }
                acked.set(acked.get() + n);
                acked_total.set(acked_total.get() + n);
                notify.notify_waiters();
            }
        })
    };
    let total = topics.len() as u64 * msgs as u64;
    let names: Vec<Vec<u8>> = topics.iter().map(|t| topic_of(*t).into_bytes()).collect();
    let mut payload = vec![0u8; c.payload];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut sent = 0u64;
    let inflight = c.inflight.max(1);
    let result = async {
        for m in 0..msgs {
            for (k, t) in topics.iter().enumerate() {
                while sent - acked.get() >= inflight {
                    if !out.is_empty() {
                        wr.write_all(&out).await.map_err(|e| format!("{id}: write: {e}"))?;
                        out.clear();
                    }
                    let notified = notify.notified();
                    if sent - acked.get() < inflight {
                        break;
                    }
                    if reader.is_finished() {
                        return Err(format!("{id}: the broker closed the connection"));
                    }
                    if tokio::time::timeout(FILL_STALL, notified).await.is_err() {
                        return Err(format!("{id}: no PUBACK for {} s", FILL_STALL.as_secs()));
                    }
                }
                mqtt::stamp(&mut payload, *t, m, 0);
                mqtt::publish(&mut out, &names[k], 1, (sent % 65_535) as u16 + 1, &payload);
                sent += 1;
                if out.len() >= 32 * 1024 {
                    wr.write_all(&out).await.map_err(|e| format!("{id}: write: {e}"))?;
                    out.clear();
                }
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(|e| format!("{id}: write: {e}"))?;
        }
        while acked.get() < total {
            let notified = notify.notified();
            if acked.get() >= total {
                break;
            }
            if reader.is_finished() {
                return Err(format!("{id}: the broker closed the connection"));
            }
            if tokio::time::timeout(FILL_STALL, notified).await.is_err() {
                return Err(format!("{id}: no PUBACK for {} s", FILL_STALL.as_secs()));
            }
        }
        let _ = wr.write_all(&mqtt::DISCONNECT).await;
        Ok(acked.get())
    }
    .await;
    reader.abort();
    result
}

pub async fn fill(c: &Common, f: Fill) -> Value {
    let t0 = Instant::now();
    let deadline = Duration::from_secs_f64(c.deadline);
    let errors = Rc::new(Errors::default());
    let made = Rc::new(Cell::new(0u32));
    let sem = Rc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let handles: Vec<JoinHandle<()>> = (0..f.sessions)
        .map(|i| {
            let (sem, errors, made) = (sem.clone(), errors.clone(), made.clone());
            let (addr, src, keepalive, per_topic) = (c.addr, source_ip(c, i as usize), c.keepalive, f.per_topic);
            spawn_local(async move {
                let Ok(_permit) = sem.acquire().await else { return };
                match make_session(addr, src, i, per_topic, keepalive).await {
                    Ok(()) => made.set(made.get() + 1),
                    Err(e) => errors.add(format!("session: {e}")),
                }
            })
        })
        .collect();
    let mut timed_out = false;
    for h in handles {
        let left = deadline.saturating_sub(t0.elapsed());
        if tokio::time::timeout(left, h).await.is_err() {
            timed_out = true;
            break;
        }
    }
    let subscribe_s = t0.elapsed().as_secs_f64();
    let topics = f.sessions.div_ceil(f.per_topic);
    let t1 = Instant::now();
    let acked = Rc::new(Cell::new(0u64));
    let mut published = 0u64;
    if !timed_out {
        let pubs: Vec<JoinHandle<Result<u64, String>>> = (0..f.pubs as usize)
            .map(|k| {
                let mine: Vec<u32> = (0..topics).filter(|t| *t as usize % f.pubs as usize == k).collect();
                let (c, acked) = (c.clone(), acked.clone());
                spawn_local(async move { publish_all(&c, k, mine, f.msgs, acked).await })
            })
            .collect();
        for p in pubs {
            let left = deadline.saturating_sub(t0.elapsed());
            match tokio::time::timeout(left, p).await {
                Ok(Ok(Ok(n))) => published += n,
                Ok(Ok(Err(e))) => errors.add(e),
                Ok(Err(e)) => errors.add(e.to_string()),
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
    }
    let publish_s = t1.elapsed().as_secs_f64();
    // Every session of a topic gets each of its messages.
    let queued: u64 = (0..topics)
        .map(|t| (f.sessions - t * f.per_topic).min(f.per_topic) as u64 * f.msgs as u64)
        .sum();
    let ok =
        !timed_out && errors.count.get() == 0 && made.get() == f.sessions && published == topics as u64 * f.msgs as u64;
    json!({
        "scenario": "fill", "peer": c.label, "ok": ok, "sessions": f.sessions, "sessions_made": made.get(),
        "topics": topics, "sessions_per_topic": f.per_topic, "msgs_per_topic": f.msgs, "publishers": f.pubs,
        "published_acked": published, "acked_seen": acked.get(), "queued_expected": queued,
        "payload": c.payload, "subscribe_s": subscribe_s, "publish_s": publish_s, "timed_out": timed_out,
        "errors_count": errors.count.get(), "errors": errors.list(), "broker_rss_kib": c.broker_rss_kib(),
    })
}

/// What one resumed session got.
struct Resumed {
    present: bool,
    unique: u32,
    dups: u32,
}

/// Reads a resumed session's messages (acknowledging each) until it has `msgs` different ones or nothing has
/// arrived for a while.
async fn drain_session(mut s: TcpStream, mut rd: Reader, present: bool, msgs: u32) -> io::Result<Resumed> {
    if !present {
        // a new session: nothing to wait for
        let _ = s.write_all(&mqtt::DISCONNECT).await;
        return Ok(Resumed {
            present,
            unique: 0,
            dups: 0,
        });
    }
    let mut seen = vec![false; msgs as usize];
    let (mut unique, mut dups) = (0u32, 0u32);
    let mut acks = Vec::new();
    loop {
        while let Some(f) = rd.next_frame()? {
            if f.kind != mqtt::PUBLISH {
                continue;
            }
            if let Some(p) = mqtt::parse_publish(f.flags, f.body) {
                if p.qos > 0 {
                    mqtt::puback(&mut acks, p.pid);
                }
                match mqtt::read_stamp(p.payload).map(|(_, seq, _)| seq as usize) {
                    Some(seq) if seq < seen.len() && !seen[seq] => {
                        seen[seq] = true;
                        unique += 1;
                    }
                    _ => dups += 1,
                }
            }
        }
        if !acks.is_empty() {
            s.write_all(&acks).await?;
            acks.clear();
        }
        if unique >= msgs {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(10), rd.fill(&mut s)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    let _ = s.write_all(&mqtt::DISCONNECT).await;
    Ok(Resumed { present, unique, dups })
}

async fn resume_one(c: &Common, i: u32, msgs: u32) -> io::Result<Resumed> {
    let mut rd = Reader::new(16 * 1024);
    let (s, present) = net::mqtt_connect_reader(
        c.addr,
        source_ip(c, i as usize),
        &session_id(i),
        c.keepalive,
        false,
        HANDSHAKE,
        &mut rd,
    )
    .await?;
    drain_session(s, rd, present, msgs).await
}

pub async fn resume(c: &Common, sessions: u32, sample: u32, msgs: u32, wait: f64) -> Value {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(wait);
    let errors = Errors::default();
    // When the node accepts a TCP connection at all.
    let mut accept_s = None;
    while Instant::now() < end {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), net::tcp_connect(c.addr, None)).await {
            accept_s = Some(t0.elapsed().as_secs_f64());
            drop(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sample = sample.clamp(1, sessions.max(1));
    let ids: Vec<u32> = (0..sample)
        .map(|k| (k as u64 * sessions as u64 / sample as u64) as u32)
        .collect();
    // The first CONNACK (a resumed session), retried until the node answers one.
    let mut first_connack_s = None;
    let mut first: Option<Resumed> = None;
    while accept_s.is_some() && Instant::now() < end {
        let mut rd = Reader::new(16 * 1024);
        let connected = net::mqtt_connect_reader(
            c.addr,
            None,
            &session_id(ids[0]),
            c.keepalive,
            false,
            HANDSHAKE,
            &mut rd,
        )
        .await;
        match connected {
            Ok((s, present)) => {
                first_connack_s = Some(t0.elapsed().as_secs_f64());
                match drain_session(s, rd, present, msgs).await {
                    Ok(r) => first = Some(r),
                    Err(e) => errors.add(format!("{}: {e}", session_id(ids[0]))),
                }
                break;
            }
            Err(e) => {
                if Instant::now() >= end {
                    errors.add(format!("{}: {e}", session_id(ids[0])));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let t_check = Instant::now();
    let mut results: Vec<Resumed> = first.into_iter().collect();
    if first_connack_s.is_some() {
        let sem = Rc::new(Semaphore::new(c.connect_concurrency.max(1)));
        let handles: Vec<JoinHandle<(u32, io::Result<Resumed>)>> = ids[1..]
            .iter()
            .map(|&i| {
                let (sem, c) = (sem.clone(), c.clone());
                spawn_local(async move {
                    let _permit = sem.acquire().await;
                    (i, resume_one(&c, i, msgs).await)
                })
            })
            .collect();
        for h in handles {
            match h.await {
                Ok((_, Ok(r))) => results.push(r),
                Ok((i, Err(e))) => errors.add(format!("{}: {e}", session_id(i))),
                Err(e) => errors.add(e.to_string()),
            }
        }
    }
    let present = results.iter().filter(|r| r.present).count();
    let complete = results.iter().filter(|r| r.unique >= msgs).count();
    let min = results.iter().map(|r| r.unique).min();
    let dups: u32 = results.iter().map(|r| r.dups).sum();
    json!({
        "scenario": "resume", "peer": c.label,
        "ok": accept_s.is_some() && first_connack_s.is_some() && present == sample as usize
            && complete == sample as usize && errors.count.get() == 0,
        "accept_s": accept_s, "first_connack_s": first_connack_s, "sampled": sample,
        "checked": results.len(), "session_present": present, "complete": complete,
        "messages_min": min, "messages_expected": msgs, "dups": dups,
        "check_s": t_check.elapsed().as_secs_f64(), "errors_count": errors.count.get(), "errors": errors.list(),
        "broker_rss_kib": c.broker_rss_kib(),
    })
}
