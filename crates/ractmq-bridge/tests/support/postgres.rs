//! A real PostgreSQL server for a test: a fresh cluster in a temporary directory, on a free loopback port,
//! with an empty database `ractmq`; stopped (and its files removed) when dropped, its log printed if the test
//! failed. Stopping and starting it again on the same port and files is how a test shows a database outage.
//!
//! PostgreSQL refuses to run as root, and tests run as root here and in CI, so as root the server runs as the
//! system user `ractmq-pg` (created if missing; `nobody` if it cannot be). It is found under
//! `/usr/lib/postgresql/VERSION/bin` (the highest version), or in `$RACTMQ_PG_BIN`; when it is not installed
//! the test fails saying so: `scripts/test-all.sh` installs it.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to start or to stop.
const DEADLINE: Duration = Duration::from_secs(60);

/// The user the server runs as when the tests run as root.
const USER: &str = "ractmq-pg";

/// The database every server has, empty.
pub const DATABASE: &str = "ractmq";

/// A running (or stopped) PostgreSQL server of the test's own.
pub struct PgServer {
    bin: PathBuf,
    /// The user and group to run as (`None`: as ourselves).
    run_as: Option<(u32, u32)>,
    port: u16,
    child: Option<Child>,
    /// Holds `data/` (the cluster), the Unix socket and `postgres.log`; removed last.
    dir: tempfile::TempDir,
}

impl PgServer {
    /// A new cluster, started, with the database [`DATABASE`].
    pub async fn start() -> PgServer {
        let bin = bin_dir();
        let run_as = unprivileged_user();
        let dir = tempfile::Builder::new()
            .prefix("ractmq-pg-")
            .tempdir()
            .expect("a temporary directory");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the temporary directory");
        }
        let mut server = PgServer {
            bin,
            run_as,
            port: 0,
            child: None,
            dir,
        };
        let initdb = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--locale=C",
                "-E",
                "UTF8",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed ({}):\n{}{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        // A free port can be taken by someone else before the server binds it: then another one.
        for attempt in 1.. {
            server.port = free_port();
            match server.run().await {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("already in use") => continue,
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        let client = server.client_of("postgres").await;
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .expect("CREATE DATABASE");
        server
    }

    /// The URL of [`DATABASE`], for a sink's configuration.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// A new connection to [`DATABASE`], for the test's own statements.
    pub async fn client(&self) -> tokio_postgres::Client {
        self.client_of(DATABASE).await
    }

    /// Stop the server (fast shutdown: open connections are closed) and wait until it has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGINT is PostgreSQL's fast shutdown. SIGTERM (smart shutdown) would wait for every client to leave,
        // and a sink's pooled connections do not leave on their own.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + DEADLINE;
        loop {
            match child.try_wait().expect("wait for postgres") {
                Some(_) => return,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("PostgreSQL did not stop within {DEADLINE:?}:\n{}", self.log());
                }
            }
        }
    }

    /// Start the stopped server again, on the same port and files.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the server is running");
        if let Err(log) = self.run().await {
            panic!("PostgreSQL did not start again:\n{log}");
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// A command running `program` of the PostgreSQL installation as the unprivileged user, and told to end
    /// (fast shutdown) if this test process dies without stopping it.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("setpriv");
        if let Some((uid, gid)) = self.run_as {
            command.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
            ]);
        }
        command.args(["--pdeathsig", "INT", "--"]).arg(self.bin.join(program));
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    /// Start `postgres` and wait until it accepts connections; `Err` with its log if it exits first or the
    /// deadline passes.
    // The child is stopped and reaped by `stop`, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    async fn run(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open postgres.log");
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-F"])
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for postgres") {
                return Err(format!("postgres exited ({status}):\n{}", self.log()));
            }
            if tokio_postgres::connect(&self.connect_string("postgres"), tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "postgres did not accept connections within {DEADLINE:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn connect_string(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database} connect_timeout=5",
            self.port
        )
    }

    async fn client_of(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.connect_string(database), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {database} on port {}: {e}", self.port));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- postgres.log ---\n{}", self.log());
        }
    }
}

/// The directory of `initdb` and `postgres`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RACTMQ_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").is_file(),
            "RACTMQ_PG_BIN={} has no initdb",
            dir.display()
        );
        return dir;
    }
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: these tests need a real server and found no \
             /usr/lib/postgresql/*/bin/initdb. scripts/test-all.sh installs it (Debian: apt-get install \
             postgresql); elsewhere set RACTMQ_PG_BIN to the directory holding initdb and postgres."
        ),
    }
}

/// As root, the user and group the server runs as (made if missing); otherwise `None`.
fn unprivileged_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    if ids(USER).is_none() {
        // Two test processes may both get here: the loser's useradd fails, and the user is there all the same.
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    Some(ids(USER).or_else(|| ids("nobody")).unwrap_or_else(|| {
        panic!("running as root, and neither the user {USER} (useradd failed) nor nobody exists to run PostgreSQL as")
    }))
}

/// The uid and gid of `user`, if it exists.
fn ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, user])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A loopback port nothing listens on (at the moment it is asked).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}
