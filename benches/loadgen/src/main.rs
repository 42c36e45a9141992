//! Why this exists: `ractmq-loadgen` drives one benchmark scenario against one MQTT 3.1.1 broker on loopback and
//! prints one JSON line of results (throughput, loss, duplicates, latency, how long publishers were held, broker
//! CPU and memory). It runs on one
//! thread (a current_thread tokio runtime) because on a 2-core machine every cycle it spends is taken from the
//! broker under test; only the latency scenario adds a second thread that paces the publishers. benches/run.sh
//! runs it against ractmq, Mosquitto and rumqttd in turn, and against a 2-node ractmq cluster with
//! `--sub-addr` (publishers on one node, subscribers on the other).

mod conns;
mod flow;
mod mqtt;
mod net;
mod sessions;
mod track;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use flow::{Flow, Plan, PubPlan, SubPlan};

#[derive(Parser)]
#[command(name = "ractmq-loadgen", about = "MQTT 3.1.1 load generator (loopback only)")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
pub struct Common {
    /// Broker address (loopback only: 127.0.0.0/8); publishers connect here, and subscribers too unless
    /// --sub-addr is given.
    #[arg(long, global = true, default_value = "127.0.0.1:1883")]
    pub addr: SocketAddr,
    /// Where subscribers connect, when not to --addr: another node of a clustered broker, so that every
    /// message crosses from the publishers' node to the subscribers' node (loopback only).
    #[arg(long, global = true)]
    pub sub_addr: Option<SocketAddr>,
    /// The broker's PID, for its CPU time and resident memory from /proc. Repeat it for a broker of several
    /// processes (the nodes of a cluster): CPU time and memory are then the sums over all of them.
    #[arg(long, global = true)]
    pub broker_pid: Vec<u32>,
    /// Name of the broker in the output.
    #[arg(long, global = true, default_value = "broker")]
    pub label: String,
    /// Seconds of publishing (the latency scenario adds its warm-up).
    #[arg(long, global = true, default_value_t = 5.0)]
    pub duration: f64,
    /// At most this many messages per publisher.
    #[arg(long, global = true, default_value_t = 5_000_000)]
    pub max_msgs: u64,
    /// Hard limit of a run in seconds, whatever happens.
    #[arg(long, global = true, default_value_t = 60.0)]
    pub deadline: f64,
    /// After publishing ends, give up waiting for stragglers after this many seconds without a delivery.
    #[arg(long, global = true, default_value_t = 2.0)]
    pub drain_idle: f64,
    /// A publisher that sees no progress for this many seconds stops (and the run reports a stall).
    #[arg(long, global = true, default_value_t = 3.0)]
    pub stall: f64,
    /// MQTT keepalive in seconds (rumqttd refuses 0).
    #[arg(long, global = true, default_value_t = 600)]
    pub keepalive: u16,
    /// Payload bytes (at least 16: stream id, sequence number, send time).
    #[arg(long, global = true, default_value_t = 64)]
    pub payload: usize,
    /// PUBLISH frames per write.
    #[arg(long, global = true, default_value_t = 64)]
    pub batch: usize,
    /// Unacknowledged QoS 1 PUBLISHes per publisher.
    #[arg(long, global = true, default_value_t = 100)]
    pub inflight: u64,
    /// Messages a flow's publishers may run ahead of its subscribers (0: no limit); default per scenario.
    #[arg(long, global = true)]
    pub window: Option<u64>,
    /// Handshakes (CONNECT..CONNACK) in progress at once.
    #[arg(long, global = true, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Spread connections over this many source addresses 127.0.0.2, 127.0.0.3, ... (0: let the kernel pick).
    #[arg(long, global = true, default_value_t = 8)]
    pub sources: u8,
    /// Subscribers connect with clean session 0 (persistent sessions), so that the broker keeps every copy for
    /// them (and a durable broker commits it before its PUBACK); the scenario is reported as durable-NAME.
    #[arg(long, global = true)]
    pub persistent_subs: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// N publishers -> 1 subscriber on one topic.
    Fanin {
        #[arg(long, default_value_t = 4)]
        pubs: u32,
        #[arg(long, default_value_t = 0)]
        qos: u8,
    },
    /// 1 publisher -> N subscribers of one topic.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subs: u32,
        #[arg(long, default_value_t = 0)]
        qos: u8,
    },
    /// N publisher/subscriber pairs, each on its own topic.
    P2p {
        #[arg(long, default_value_t = 1000)]
        pairs: u32,
        #[arg(long, default_value_t = 0)]
        qos: u8,
    },
    /// A fixed total rate over N pairs; latency percentiles from send to receive.
    Latency {
        #[arg(long, default_value_t = 100)]
        pairs: u32,
        #[arg(long, default_value_t = 20_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        /// Seconds at the start whose samples are not recorded.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// P publishers -> N healthy subscribers of one topic plus stuck ones that subscribe and never read; bound
    /// it with --max-msgs. Reports the healthy subscribers' loss, how long publishers were held, broker memory.
    Stuck {
        /// Healthy subscribers.
        #[arg(long, default_value_t = 10)]
        subs: u32,
        /// Subscribers that never read their socket after their SUBACK.
        #[arg(long, default_value_t = 1)]
        stuck: u32,
        #[arg(long, default_value_t = 1)]
        pubs: u32,
        #[arg(long, default_value_t = 1)]
        qos: u8,
    },
    /// Fill a broker with persistent sessions holding queued messages (for a restart-time measurement): SESSIONS
    /// clients connect with clean session 0, subscribe at QoS 1 to bench/restart/G (PER_TOPIC sessions per
    /// topic G) and disconnect; then PUBS publishers send MSGS QoS 1 messages to every topic and wait for every
    /// PUBACK. Queued in all: SESSIONS x MSGS messages. Bound it with --deadline.
    Fill {
        #[arg(long, default_value_t = 100_000)]
        sessions: u32,
        #[arg(long, default_value_t = 100)]
        per_topic: u32,
        #[arg(long, default_value_t = 10)]
        msgs: u32,
        #[arg(long, default_value_t = 4)]
        pubs: u32,
    },
    /// After a restart: the time until the broker accepts TCP connections and answers a CONNACK (counted from
    /// this command's start, so start it right after the broker), then SAMPLE of the SESSIONS sessions that
    /// `fill` made reconnect with clean session 0: each must have session present and get its MSGS messages.
    Resume {
        #[arg(long, default_value_t = 100_000)]
        sessions: u32,
        #[arg(long, default_value_t = 100)]
        sample: u32,
        #[arg(long, default_value_t = 10)]
        msgs: u32,
        /// Seconds to wait for the broker to accept connections.
        #[arg(long, default_value_t = 600.0)]
        wait: f64,
    },
    /// As many idle clients as asked; connects per second and broker memory per connection.
    Conns {
        #[arg(long, default_value_t = 19_900)]
        count: usize,
        /// Seconds to wait after the last CONNACK, and again after every client has pinged once, before
        /// reading the broker's memory.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        /// Connects started per second (0: as fast as --connect-concurrency allows).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Connect in batches of this many clients (0: no batches), each established before the next.
        #[arg(long, default_value_t = 0)]
        batch: usize,
        /// Seconds to wait between batches.
        #[arg(long, default_value_t = 0.0)]
        batch_pause: f64,
    },
}

/// Raise the soft open-file limit to the hard one: the connections scenario needs one descriptor per client.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

impl Common {
    /// Where subscribers connect: --sub-addr, or the publishers' --addr.
    pub fn subscriber_addr(&self) -> SocketAddr {
        self.sub_addr.unwrap_or(self.addr)
    }

    /// CPU seconds of all the broker's processes, or None when one of them cannot be read (or none is given).
    pub fn broker_cpu_seconds(&self) -> Option<f64> {
        sum_over(&self.broker_pid, net::cpu_seconds)
    }

    /// Resident memory in KiB of all the broker's processes, as [`Common::broker_cpu_seconds`].
    pub fn broker_rss_kib(&self) -> Option<u64> {
        sum_over(&self.broker_pid, net::rss_kib)
    }
}

/// The sum of `read(pid)` over `pids`; None when `pids` is empty or any read fails.
fn sum_over<T: std::iter::Sum<T>>(pids: &[u32], read: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| read(pid)).sum()
}

/// Only loopback IPv4 addresses (127.0.0.0/8) may be targeted.
fn loopback_only(what: &str, addr: SocketAddr) -> Result<(), String> {
    if matches!(addr, SocketAddr::V4(a) if a.ip().is_loopback()) {
        Ok(())
    } else {
        Err(format!(
            "only loopback IPv4 brokers (127.0.0.0/8) may be targeted, not {what} {addr}"
        ))
    }
}

fn qos_ok(qos: u8) -> Result<u8, String> {
    if qos <= 1 {
        Ok(qos)
    } else {
        Err(format!("QoS {qos} is not supported by the load generator (0 or 1)"))
    }
}

fn plan(c: &Common, scenario: &Scenario) -> Result<Plan, String> {
    let w = |default: u64| c.window.unwrap_or(default);
    Ok(match *scenario {
        Scenario::Fanin { pubs, qos } => Plan {
            scenario: format!("fanin-q{qos}"),
            qos: qos_ok(qos)?,
            subs: vec![SubPlan {
                topic: "bench/fanin".into(),
                flow: 0,
                base: 0,
                streams: pubs,
            }],
            pubs: (0..pubs)
                .map(|i| PubPlan {
                    topic: "bench/fanin".into(),
                    flow: 0,
                    stream: i,
                })
                .collect(),
            flows: vec![Flow::new(1, w(20_000))],
            sub_buffer: 256 * 1024,
            rate: None,
            stuck: vec![],
        },
        Scenario::Fanout { subs, qos } => Plan {
            scenario: format!("fanout-q{qos}"),
            qos: qos_ok(qos)?,
            subs: (0..subs)
                .map(|_| SubPlan {
                    topic: "bench/fanout".into(),
                    flow: 0,
                    base: 0,
                    streams: 1,
                })
                .collect(),
            pubs: vec![PubPlan {
                topic: "bench/fanout".into(),
                flow: 0,
                stream: 0,
            }],
            flows: vec![Flow::new(subs as u64, w(200))],
            sub_buffer: 16 * 1024,
            rate: None,
            stuck: vec![],
        },
        Scenario::P2p { pairs, qos } => Plan {
            scenario: format!("p2p-q{qos}"),
            qos: qos_ok(qos)?,
            subs: pair_subs("bench/p2p", pairs),
            pubs: pair_pubs("bench/p2p", pairs),
            flows: (0..pairs).map(|_| Flow::new(1, w(100))).collect(),
            sub_buffer: 16 * 1024,
            rate: None,
            stuck: vec![],
        },
        Scenario::Latency {
            pairs,
            rate,
            qos,
            warmup,
        } => Plan {
            scenario: format!("latency-q{qos}"),
            qos: qos_ok(qos)?,
            subs: pair_subs("bench/lat", pairs),
            pubs: pair_pubs("bench/lat", pairs),
            flows: (0..pairs).map(|_| Flow::new(1, 0)).collect(),
            sub_buffer: 16 * 1024,
            rate: Some((rate, warmup)),
            stuck: vec![],
        },
        Scenario::Stuck { subs, stuck, pubs, qos } => {
            let sub = |_| SubPlan {
                topic: "bench/stuck".into(),
                flow: 0,
                base: 0,
                streams: pubs,
            };
            Plan {
                scenario: format!("stuck-q{qos}"),
                qos: qos_ok(qos)?,
                subs: (0..subs).map(sub).collect(),
                pubs: (0..pubs)
                    .map(|i| PubPlan {
                        topic: "bench/stuck".into(),
                        flow: 0,
                        stream: i,
                    })
                    .collect(),
                // the fan-out window: the publishers may not outrun the healthy subscribers (at QoS 0 a broker
                // would shed what they cannot take), so a longer wait is the broker holding them
                flows: vec![Flow::new(subs as u64, w(200))],
                sub_buffer: 64 * 1024,
                rate: None,
                stuck: (0..stuck).map(sub).collect(),
            }
        }
        Scenario::Conns { .. } | Scenario::Fill { .. } | Scenario::Resume { .. } => {
            unreachable!("not a message scenario")
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let c = cli.common;
    let targets = loopback_only("--addr", c.addr).and_then(|()| match c.sub_addr {
        Some(a) => loopback_only("--sub-addr", a),
        None => Ok(()),
    });
    if let Err(e) = targets {
        eprintln!("ractmq-loadgen: {e}");
        return ExitCode::FAILURE;
    }
    if c.payload < mqtt::STAMP_LEN {
        eprintln!("ractmq-loadgen: --payload must be at least {}", mqtt::STAMP_LEN);
        return ExitCode::FAILURE;
    }
    raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, async {
        match &cli.scenario {
            Scenario::Conns {
                count,
                settle,
                rate,
                batch,
                batch_pause,
            } => {
                let pace = conns::Pace {
                    rate: *rate,
                    batch: *batch,
                    pause: *batch_pause,
                };
                Ok(conns::run(&c, *count, *settle, pace).await)
            }
            Scenario::Fill {
                sessions,
                per_topic,
                msgs,
                pubs,
            } => {
                let f = sessions::Fill {
                    sessions: *sessions,
                    per_topic: (*per_topic).max(1),
                    msgs: *msgs,
                    pubs: (*pubs).max(1),
                };
                Ok(sessions::fill(&c, f).await)
            }
            Scenario::Resume {
                sessions,
                sample,
                msgs,
                wait,
            } => Ok(sessions::resume(&c, *sessions, *sample, *msgs, *wait).await),
            other => match plan(&c, other) {
                Ok(p) => Ok(flow::run(&c, p).await),
                Err(e) => Err(e),
            },
        }
    });
    match result {
        Ok(v) => {
            println!("{v}");
            // drop the runtime without waiting for thousands of sockets to be shut down one by one
            std::mem::forget(local);
            std::mem::forget(rt);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ractmq-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One subscriber per pair, each on its own topic `{prefix}/{i}` with its own flow.
fn pair_subs(prefix: &str, pairs: u32) -> Vec<SubPlan> {
    (0..pairs)
        .map(|i| SubPlan {
            topic: format!("{prefix}/{i}"),
            flow: i as usize,
            base: i,
            streams: 1,
        })
        .collect()
}

/// The publishers matching [`pair_subs`].
fn pair_pubs(prefix: &str, pairs: u32) -> Vec<PubPlan> {
    (0..pairs)
        .map(|i| PubPlan {
            topic: format!("{prefix}/{i}"),
            flow: i as usize,
            stream: i,
        })
        .collect()
}
