//! One `ractmq` node as a real process, for tests of what operators use (the REST API, `ractmq ctl`): started
//! on free ports, with its MQTT and API addresses read from its log; killed when dropped (printing its log if
//! the test failed).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Process {
    pub mqtt: SocketAddr,
    pub api: SocketAddr,
    child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The node's data dir, unless the test chose one (removed with the process).
    _data: Option<tempfile::TempDir>,
}

/// The address logged after `marker` on some line, e.g. `addr=` or `http://`.
fn address_after(lines: &[String], marker: &str) -> Option<SocketAddr> {
    lines.iter().find_map(|l| {
        let at = l.find(marker)? + marker.len();
        l[at..]
            .split(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | ','))
            .next()?
            .parse()
            .ok()
    })
}

impl Process {
    /// Start a node with `args` after `start --listen 127.0.0.1:0 --api-listen 127.0.0.1:0`.
    // The child is reaped by `Drop` once it is a `Process`, which clippy cannot see (see below).
    pub fn start(args: &[&str]) -> Process {
        Process::start_with_env(args, &[])
    }

    /// [`Process::start`] with environment variables set.
    #[allow(clippy::zombie_processes)]
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ractmq"));
        // Logs to a pipe are plain without it (see the tests in cli.rs); a test may still set it.
        command.env_remove("NO_COLOR");
        command.envs(env.iter().copied());
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // Every node gets its own store, as on a real machine, unless the test names one (or none).
        let data = (!args.iter().any(|a| *a == "--data-dir" || *a == "--durability"))
            .then(|| tempfile::tempdir().expect("a temporary data dir"));
        let mut child = command
            .args([
                "start",
                "--listen",
                "127.0.0.1:0",
                "--api-listen",
                "127.0.0.1:0",
                "--sys-interval",
                "0",
            ])
            .args(args)
            .args(
                data.iter()
                    .flat_map(|d| [std::ffi::OsStr::new("--data-dir"), d.path().as_os_str()]),
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ractmq starts");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        loop {
            let lines = log.lock().unwrap().clone();
            // In text logs `addr=ADDR`, in JSON logs `"addr":"ADDR"`.
            let mqtt = address_after(&lines, "addr=").or_else(|| address_after(&lines, "\"addr\":\""));
            if let (Some(mqtt), Some(api)) = (mqtt, address_after(&lines, "http://")) {
                return Process {
                    mqtt,
                    api,
                    child,
                    log,
                    _data: data,
                };
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ractmq did not start: {lines:#?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The API base URL, `http://ADDR/api/v1`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.api)
    }

    /// Send `signal` to the process.
    pub fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for line in self.log.lock().unwrap().iter() {
                eprintln!("[ractmq] {line}");
            }
        }
    }
}

/// Run `ractmq ctl --api ADDR ARGS...`; (exit code, stdout, stderr).
pub fn ctl(api: SocketAddr, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .args(["ctl", "--api", &api.to_string()])
        .args(args)
        .env_remove("RACTMQ_API_TOKEN")
        .output()
        .expect("ractmq ctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `ractmq ctl --api ADDR ARGS... --json`, which must succeed; what it printed, as JSON.
pub fn json_of(api: SocketAddr, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = ctl(api, &all);
    assert_eq!(code, 0, "ractmq ctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ractmq ctl {args:?} printed no JSON ({e}): {out}"))
}
