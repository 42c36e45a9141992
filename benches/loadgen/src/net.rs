//! Why this exists: opening MQTT client connections the way the benchmark needs them (TCP_NODELAY, optional
//! loopback source address without using up ephemeral ports, TCP_QUICKACK on subscribers) and reading the
//! broker's CPU time and resident memory from /proc.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::mqtt::{self, Reader};

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a plain setsockopt on a descriptor we own, with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Acknowledge received data at once instead of delaying the ACK. Linux clears this mode by itself, so it is
/// set again after every read; without it, a broker that leaves Nagle on waits for our delayed ACK (up to
/// 40 ms) and the latency scenario would measure that instead of the broker.
pub fn set_quickack(stream: &TcpStream) {
    let _ = setsockopt_int(stream.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1);
}

/// A TCP connection to `broker`, from `source` (a 127.0.0.x address) when given. IP_BIND_ADDRESS_NO_PORT
/// defers the port choice to connect(), so the same source port can serve several brokers and a run does not
/// exhaust the ephemeral range with sockets left in TIME_WAIT by the previous run.
pub async fn tcp_connect(broker: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        setsockopt_int(socket.as_raw_fd(), libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)))?;
    }
    let stream = socket.connect(broker).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn proto_err(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads frames until one of `kind` arrives; returns its body's first bytes (enough for CONNACK/SUBACK).
async fn expect_frame(stream: &mut TcpStream, rd: &mut Reader, kind: u8) -> io::Result<Vec<u8>> {
    loop {
        if let Some(f) = rd.next_frame()? {
            if f.kind == kind {
                return Ok(f.body.to_vec());
            }
            continue;
        }
        if rd.fill(stream).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "broker closed the connection",
            ));
        }
    }
}

/// TCP connect + MQTT CONNECT/CONNACK with a clean session, within `timeout`.
pub async fn mqtt_connect(
    broker: SocketAddr,
    source: Option<Ipv4Addr>,
    client_id: &str,
    keepalive: u16,
    timeout: Duration,
) -> io::Result<TcpStream> {
    mqtt_connect_session(broker, source, client_id, keepalive, true, timeout)
        .await
        .map(|(stream, _)| stream)
}

/// TCP connect + MQTT CONNECT/CONNACK, within `timeout`; `clean` false asks for a persistent session. Returns
/// the stream and the CONNACK's session present flag. Anything the broker sends right after the CONNACK (a
/// resumed session's messages) is not read here: use [`mqtt_connect_reader`] to keep it.
pub async fn mqtt_connect_session(
    broker: SocketAddr,
    source: Option<Ipv4Addr>,
    client_id: &str,
    keepalive: u16,
    clean: bool,
    timeout: Duration,
) -> io::Result<(TcpStream, bool)> {
    let mut rd = Reader::new(64);
    mqtt_connect_reader(broker, source, client_id, keepalive, clean, timeout, &mut rd).await
}

/// [`mqtt_connect_session`] reading through `rd`, which keeps whatever arrived after the CONNACK.
pub async fn mqtt_connect_reader(
    broker: SocketAddr,
    source: Option<Ipv4Addr>,
    client_id: &str,
    keepalive: u16,
    clean: bool,
    timeout: Duration,
    rd: &mut Reader,
) -> io::Result<(TcpStream, bool)> {
    let fut = async {
        let mut stream = tcp_connect(broker, source).await?;
        let mut out = Vec::with_capacity(32 + client_id.len());
        mqtt::connect(&mut out, client_id, keepalive, clean);
        stream.write_all(&out).await?;
        let body = expect_frame(&mut stream, rd, mqtt::CONNACK).await?;
        match (body.first(), body.get(1)) {
            (Some(flags), Some(0)) => Ok((stream, flags & 1 == 1)),
            (_, rc) => Err(proto_err(format!("CONNACK refused: {rc:?}"))),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "CONNECT timed out")))
}

/// SUBSCRIBE/SUBACK on an open connection, within `timeout`.
pub async fn mqtt_subscribe(stream: &mut TcpStream, topic: &str, qos: u8, timeout: Duration) -> io::Result<()> {
    let fut = async {
        let mut out = Vec::with_capacity(16 + topic.len());
        mqtt::subscribe(&mut out, 1, topic, qos);
        stream.write_all(&out).await?;
        let mut rd = Reader::new(64);
        let body = expect_frame(stream, &mut rd, mqtt::SUBACK).await?;
        match body.get(2) {
            Some(rc) if *rc <= 2 => Ok(()),
            rc => Err(proto_err(format!("SUBACK refused: {rc:?}"))),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "SUBSCRIBE timed out")))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds of a process (all its threads), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

pub fn self_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

/// Resident memory in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
