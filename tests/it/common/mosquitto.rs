//! A real Mosquitto broker for the bridge tests: started on a free loopback port with a configuration of the
//! test's choosing, stopped (SIGTERM: it saves its persistence file) or killed (SIGKILL), and started again on
//! the same port and files. Killed when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Mosquitto with persistence on (so that a stop and start keeps its sessions and queued messages),
    /// anonymous clients allowed, and `extra` lines of configuration.
    pub fn start(extra: &str) -> Mosquitto {
        let port = free_port();
        Mosquitto::start_on(port, extra)
    }

    /// Mosquitto enforcing the ACL file `acl` (Mosquitto's format) on anonymous clients.
    pub fn with_acl(acl: &str) -> Mosquitto {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acl");
        std::fs::write(&file, acl).unwrap();
        Mosquitto::start_in(dir, port, &format!("acl_file {}", file.display()))
    }

    /// [`Mosquitto::start`] on `port`.
    pub fn start_on(port: u16, extra: &str) -> Mosquitto {
        Mosquitto::start_in(tempfile::tempdir().unwrap(), port, extra)
    }

    fn start_in(dir: tempfile::TempDir, port: u16, extra: &str) -> Mosquitto {
        // As root Mosquitto drops to the `mosquitto` user, who could not write its files here.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root\n"
        } else {
            ""
        };
        let config = format!(
            "{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 0\n{extra}\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut m = Mosquitto {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child: None,
        };
        m.run();
        m
    }

    /// A file beside the configuration (an ACL file, say).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/test-all.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}: {}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it with SIGTERM (it closes its connections and saves its persistence file) and wait until it has.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    /// Kill it (SIGKILL) and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().unwrap();
        }
    }

    /// Kill it (SIGKILL: it saves nothing) and start it again on the same port and files: what it held since
    /// its last save (none on its defaults) is gone, the bridge's session with it.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Start it again, on the same port and files.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mosquitto_bin() -> String {
    for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "mosquitto".into()
}
