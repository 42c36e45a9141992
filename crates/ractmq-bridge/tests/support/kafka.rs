//! A real Kafka-protocol broker for a test: tansu, a Kafka-compatible broker written in Rust, started on a free
//! loopback port with in-memory storage, and read back with rskafka's own consumer calls.
//! `scripts/install-tools.sh` installs it; a test fails, saying so, when it is missing.
//!
//! The binary is `$TANSU_BIN`, else `$RACTMQ_TOOLS/bin/tansu`, else
//! `${XDG_CACHE_HOME:-$HOME/.cache}/ractmq-tools/bin/tansu`.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;
use rskafka::BackoffConfig;

/// How long tansu may take to start answering.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

pub fn tansu_bin() -> PathBuf {
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
pub struct Tansu {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Tansu {
    /// Starts tansu on a free port and waits until it answers Kafka requests.
    pub async fn start(name: &str) -> Tansu {
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

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("tansu.log")
    }

    /// Starts it (again) on its port, with empty storage, and waits until it answers.
    pub async fn restart(&mut self) {
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
    pub async fn wait_answering(&mut self) {
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

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
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
pub async fn client(addr: &str) -> Result<Client, rskafka::client::error::Error> {
    ClientBuilder::new(vec![addr.to_string()])
        .backoff_config(BackoffConfig {
            deadline: Some(Duration::from_secs(5)),
            ..BackoffConfig::default()
        })
        .build()
        .await
}

pub async fn create_topic(client: &Client, topic: &str, partitions: i32) {
    client
        .controller_client()
        .unwrap()
        .create_topic(topic, partitions, 1, 5_000)
        .await
        .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
}

/// Every record of a partition, in offset order.
pub async fn read_partition(client: &Client, topic: &str, partition: i32) -> Vec<RecordAndOffset> {
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
