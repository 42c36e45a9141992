//! Real `ractmq` processes for the cluster tests: start one on given ports, kill it with SIGKILL (also when a
//! test fails, by its guard, which then prints its log; and when the test process dies, by the kernel), read
//! its log, and follow its `$SYS/brokers`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{Packet, QoS};

use super::{eventually_within, Client};

/// How long a test waits for processes to start, link up, or notice that one went away.
pub const WAIT: Duration = Duration::from_secs(30);
pub const COOKIE: &str = "membership-test-cookie";

/// `n` loopback addresses with free ports (bound together so that they differ, then released). They are
/// taken below the kernel's ephemeral range, where nothing else in the tests binds (every `127.0.0.1:0` and
/// every outgoing connection gets an ephemeral port): a node killed and started again on its ports finds them
/// still free.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    let mut held = Vec::new();
    while held.len() < n {
        // xorshift: a different port each time, across test processes too.
        let mut x = STATE.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        let port = 20_000 + (x % 12_000) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// A hosts file for nodes run with [`Node::with_hosts`]: bind-mounted over /etc/hosts in each node's private
/// mount namespace (`unshare --mount`), so that names resolve through getaddrinfo as in production without
/// touching the machine's /etc/hosts. Rewritten in place ([`HostsFile::set`]): the bind mount follows the
/// inode. Needs root (CI runs the tests as root); without it, [`HostsFile::new`] fails saying so.
pub struct HostsFile {
    dir: tempfile::TempDir,
}

impl HostsFile {
    /// A hosts file with `localhost` and `lines`, checked to be mountable over /etc/hosts.
    pub fn new(lines: &[&str]) -> HostsFile {
        let hosts = HostsFile {
            dir: tempfile::tempdir().expect("a temporary dir"),
        };
        hosts.set(lines);
        let probe = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/hosts"#)
            .arg(hosts.path())
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "this test resolves names through a hosts file bind-mounted over /etc/hosts in a private mount \
                 namespace, which needs root (uid {}); run it as root, as CI does: unshare said {}",
                unsafe { libc::geteuid() },
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("this test needs unshare(1) (util-linux) to run nodes with their own /etc/hosts: {e}"),
        }
        hosts
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("hosts")
    }

    /// Replace the file's lines (in place, keeping its inode) with `localhost` and `lines`.
    pub fn set(&self, lines: &[&str]) {
        use std::io::Write;
        let mut text = String::from("127.0.0.1 localhost\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.path())
            .expect("the hosts file opens");
        file.write_all(text.as_bytes()).expect("the hosts file is written");
    }
}

/// One `ractmq` process; killed (SIGKILL) when dropped.
pub struct Node {
    pub name: String,
    pub mqtt: SocketAddr,
    pub cluster: SocketAddr,
    extra: Vec<String>,
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The node's data dir, kept across its restarts as a machine's disk is.
    data: tempfile::TempDir,
    /// Run it in a private mount namespace with this file bind-mounted over /etc/hosts (see [`HostsFile`]).
    pub hosts: Option<std::path::PathBuf>,
    /// Environment variables set for it, after the defaults (e.g. RUST_LOG).
    pub env: Vec<(String, String)>,
}

impl Node {
    pub fn new(name: &str, mqtt: SocketAddr, cluster: SocketAddr, extra: &[String]) -> Node {
        Node {
            name: name.to_string(),
            mqtt,
            cluster,
            extra: extra.to_vec(),
            child: None,
            log: Arc::default(),
            data: tempfile::tempdir().expect("a temporary data dir"),
            hosts: None,
            env: Vec::new(),
        }
    }

    /// The same, resolving names through `hosts` instead of the machine's /etc/hosts.
    pub fn with_hosts(mut self, hosts: &HostsFile) -> Node {
        self.hosts = Some(hosts.path());
        self
    }

    pub fn start(&mut self) {
        let mut command = match &self.hosts {
            None => Command::new(env!("CARGO_BIN_EXE_ractmq")),
            // unshare and sh exec in turn, so the process (its pid, its death signal) is ractmq's.
            Some(hosts) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
                    .arg(hosts)
                    .arg(env!("CARGO_BIN_EXE_ractmq"));
                c
            }
        };
        // Should the test process itself be killed (no Drop runs then), the node dies with it.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // Fast heartbeats so that tests do not wait long for a node to be found down, and the REST API on a
        // free port so that nodes started side by side do not compete for the default; a test may give its own.
        let mut defaults = vec![
            "--sys-interval",
            "1",
            "--heartbeat-interval-ms",
            "250",
            "--down-after-ms",
            "2000",
            "--api-listen",
            "127.0.0.1:0",
        ];
        for flag in ["--heartbeat-interval-ms", "--down-after-ms", "--api-listen"] {
            if self.extra.iter().any(|a| a == flag) {
                let i = defaults.iter().position(|d| *d == flag).unwrap();
                defaults.drain(i..i + 2);
            }
        }
        let mut child = command
            .args(["start", "--listen", &self.mqtt.to_string()])
            .args(["--node-name", &self.name, "--cluster-listen", &self.cluster.to_string()])
            .args(defaults)
            .args(&self.extra)
            .arg("--data-dir")
            .arg(self.data.path())
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ractmq starts");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        let name = self.name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(format!("[{name}] {line}"));
            }
        });
        self.child = Some(child);
    }

    /// kill -9, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait (at most `limit`) for the process to exit by itself; its exit code. `None`: still running, or
    /// killed by a signal.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        let child = self.child.as_mut()?;
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Send `signal` (SIGSTOP, SIGCONT...) to the running process.
    pub fn signal(&mut self, signal: i32) {
        let child = self.child.as_mut().expect("started");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{} is no longer running ({status}), so it cannot be sent signal {signal}",
                self.name
            );
        }
        let pid = child.id();
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
    }

    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Where its REST API listens, as it logged (once started).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.log.lock().unwrap().iter().find_map(|l| {
            let at = l.find("http://")? + "http://".len();
            l[at..].split_whitespace().next()?.parse().ok()
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            for line in self.log.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// The latest `$SYS/brokers` a node published, read by an MQTT client subscribed to it.
pub struct Brokers {
    latest: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Brokers {
    /// Connect to `node` once its listener accepts, and follow its `$SYS/brokers`.
    pub async fn watch(node: &Node) -> Brokers {
        let addr = node.mqtt;
        let start = std::time::Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                start.elapsed() < WAIT,
                "{} accepts MQTT connections on {addr}",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut client = Client::connect(addr, &format!("watch-{}", node.name)).await;
        client.subscribe("$SYS/brokers", QoS::AtMostOnce).await;
        let latest = Arc::new(Mutex::new(String::new()));
        let seen = latest.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(packet)) = client.events.recv().await {
                if let Packet::Publish(p) = packet {
                    if p.topic == "$SYS/brokers" {
                        *seen.lock().unwrap() = String::from_utf8_lossy(&p.payload).into_owned();
                    }
                }
            }
        });
        Brokers { latest, task }
    }

    pub fn get(&self) -> String {
        self.latest.lock().unwrap().clone()
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn until_lists(watch: &Brokers, node: &str, expected: &str) {
    eventually_within(WAIT, &format!("{node}'s $SYS/brokers to be '{expected}'"), || {
        watch.get() == expected
    })
    .await;
}

/// Start nodes n1..n`count` on free ports, all joining through n1 (with `extra` flags each), and wait until
/// every one lists them all in `$SYS/brokers`.
pub async fn start_cluster(count: usize, extra: &[&str]) -> Vec<Node> {
    let addrs = free_addrs(count * 2);
    let mut nodes: Vec<Node> = (0..count)
        .map(|i| {
            let mut args: Vec<String> = vec!["--cookie".into(), COOKIE.into()];
            if i > 0 {
                args.extend(["--seed".to_string(), format!("n1@{}", addrs[count])]);
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            Node::new(&format!("n{}", i + 1), addrs[i], addrs[count + i], &args)
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let all: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let all = all.join(",");
    for node in &nodes {
        let watch = Brokers::watch(node).await;
        until_lists(&watch, &node.name, &all).await;
    }
    nodes
}

/// Wait until every node in `nodes` lists exactly `expected` in `$SYS/brokers`.
pub async fn until_all_list(nodes: &[&Node], expected: &str) {
    for node in nodes {
        let watch = Brokers::watch(node).await;
        until_lists(&watch, &node.name, expected).await;
    }
}

/// `got` is 0..n, in order; on failure, say how it differs without printing thousands of numbers.
pub fn assert_in_order(got: &[usize], n: usize, what: &str) {
    if got.iter().copied().eq(0..n) {
        return;
    }
    let missing: Vec<usize> = (0..n).filter(|i| !got.contains(i)).collect();
    let first_out_of_place = got.iter().enumerate().find(|(i, v)| *i != **v);
    panic!(
        "{what}: got {} of {n}; {} missing (first: {:?}); first out of place: {:?}",
        got.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        first_out_of_place
    );
}

/// The payloads (decimal numbers) of the publishes `client` receives until one on `marker`.
pub async fn numbers_until(client: &mut Client, marker: &str) -> Vec<usize> {
    client
        .publishes_until(marker)
        .await
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).parse().unwrap())
        .collect()
}
