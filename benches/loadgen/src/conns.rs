//! Why this exists: the connections scenario. Opens as many idle MQTT clients as asked (about as many as the
//! open-file limit allows), from several 127.0.0.x source addresses, and reports connects per second and the
//! broker's resident memory per connection; then pings every client to show the broker still serves them, and
//! reads the memory again once they have been quiet as long (what a client that spoke once costs when idle).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::spawn_local;

use crate::flow::source_ip;
use crate::mqtt::{self, Reader};
use crate::{net, Common};

async fn ping(mut s: TcpStream) -> (TcpStream, bool) {
    let ok = async {
        s.write_all(&mqtt::PINGREQ).await?;
        let mut rd = Reader::new(16);
        loop {
            if let Some(f) = rd.next_frame()? {
                if f.kind == mqtt::PINGRESP {
                    return Ok::<bool, std::io::Error>(true);
                }
                continue;
            }
            if rd.fill(&mut s).await? == 0 {
                return Ok(false);
            }
        }
    };
    let ok = matches!(tokio::time::timeout(Duration::from_secs(10), ok).await, Ok(Ok(true)));
    (s, ok)
}

/// How the clients arrive: all at once (bounded by `--connect-concurrency`), at a steady rate, or in batches.
#[derive(Clone, Copy, Default)]
pub struct Pace {
    /// Connects started per second (0: as fast as the concurrency allows).
    pub rate: f64,
    /// Clients per batch (0: no batches); each batch is established before the pause and the next one.
    pub batch: usize,
    /// Seconds between batches.
    pub pause: f64,
}

pub async fn run(c: &Common, count: usize, settle: f64, pace: Pace) -> Value {
    let rss0 = c.broker_rss_kib();
    let cpu0 = c.broker_cpu_seconds();
    let streams: Rc<RefCell<Vec<TcpStream>>> = Rc::new(RefCell::new(Vec::with_capacity(count)));
    let failed = Rc::new(Cell::new(0u64));
    let errors: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let sem = Rc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let t0 = Instant::now();
    let last_ok = Rc::new(Cell::new(t0));
    let mut handles = Vec::with_capacity(count);
    // Handles awaited already (a batch's), which must not be polled again.
    let mut awaited = 0;
    for i in 0..count {
        if pace.batch > 0 && i > 0 && i % pace.batch == 0 {
            for h in &mut handles[awaited..i] {
                let _ = h.await;
            }
            awaited = i;
            tokio::time::sleep(Duration::from_secs_f64(pace.pause)).await;
        }
        if pace.rate > 0.0 {
            tokio::time::sleep_until((t0 + Duration::from_secs_f64(i as f64 / pace.rate)).into()).await;
        }
        let (sem, streams, failed, errors, last_ok) = (
            sem.clone(),
            streams.clone(),
            failed.clone(),
            errors.clone(),
            last_ok.clone(),
        );
        let (addr, src, keepalive) = (c.addr, source_ip(c, i), c.keepalive);
        handles.push(spawn_local(async move {
            let Ok(_permit) = sem.acquire().await else { return };
            match net::mqtt_connect(addr, src, &format!("lg-c{i}"), keepalive, Duration::from_secs(10)).await {
                Ok(s) => {
                    streams.borrow_mut().push(s);
                    last_ok.set(Instant::now());
                }
                Err(e) => {
                    failed.set(failed.get() + 1);
                    let mut errors = errors.borrow_mut();
                    let msg = e.to_string();
                    if errors.len() < 10 && !errors.contains(&msg) {
                        errors.push(msg);
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(c.deadline);
    let mut timed_out = false;
    for h in &mut handles[awaited..] {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, h).await.is_err() {
            timed_out = true;
            break;
        }
    }
    // At the deadline, handshakes still in progress are abandoned (and not counted).
    for h in &handles {
        h.abort();
    }
    let established = streams.borrow().len();
    let elapsed = (last_ok.get() - t0).as_secs_f64();
    let cpu1 = c.broker_cpu_seconds();
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let rss1 = c.broker_rss_kib();

    // Every client pings once; the broker must answer all of them.
    let t_ping = Instant::now();
    let all: Vec<TcpStream> = streams.borrow_mut().drain(..).collect();
    let pings: Vec<_> = all.into_iter().map(|s| spawn_local(ping(s))).collect();
    let mut alive = 0usize;
    let mut kept = Vec::with_capacity(pings.len());
    for p in pings {
        if let Ok((s, ok)) = p.await {
            alive += ok as usize;
            kept.push(s);
        }
    }
    let ping_s = t_ping.elapsed().as_secs_f64();
    let rss2 = c.broker_rss_kib();
    // Idle again for as long: what a client costs once it has spoken and gone quiet (the broker hibernates its
    // session after --hibernate-after-ms, 1 s by default, but the allocator need not give the memory back).
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let rss3 = c.broker_rss_kib();
    let per_conn_of = |after: Option<u64>| match (rss0, after) {
        (Some(a), Some(b)) if established > 0 => Some((b.saturating_sub(a)) as f64 * 1024.0 / established as f64),
        _ => None,
    };
    let errors = errors.borrow().clone();
    drop(kept);
    json!({
        "scenario": "conns", "peer": c.label, "requested": count, "established": established,
        "failed": failed.get(), "alive_after_ping": alive, "ping_s": ping_s, "timed_out": timed_out,
        "ok": established == count && alive == established && !timed_out,
        "elapsed_s": elapsed,
        "connects_per_s": if elapsed > 0.0 { established as f64 / elapsed } else { 0.0 },
        "broker_cpu_s": cpu0.zip(cpu1).map(|(a, b)| b - a),
        "broker_rss_kib_before": rss0, "broker_rss_kib_after": rss1, "broker_rss_kib_after_ping": rss2,
        "broker_rss_kib_idle_after_ping": rss3,
        "rss_bytes_per_conn": per_conn_of(rss1), "rss_bytes_per_conn_idle_after_ping": per_conn_of(rss3),
        "sources": c.sources, "errors": errors,
        "rate": pace.rate, "batch": pace.batch, "batch_pause_s": pace.pause,
    })
}
