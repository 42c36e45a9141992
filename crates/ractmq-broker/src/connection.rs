//! The socket side of a session: a reader task and a writer task that the session actor owns.
//!
//! The actor never waits on a socket. The reader decodes frames in batches and hands each batch to the actor as
//! one message; a semaphore bounds how many batches may wait in the actor's (unbounded) mailbox, so a client
//! that publishes faster than its session can route is slowed by TCP, not buffered. The writer drains an
//! [`Outbox`] the actor appends encoded bytes to; the actor stops taking deliveries while the outbox is above its
//! high-water mark, so a slow reader's backlog stays in its bounded mailbox where the overflow policy applies.
//! Both tasks are aborted when the actor's state is dropped, however the actor ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use ractmq_codec::{Decoder, Packet};
use ractor::ActorRef;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::session_actor::SessionMsg;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// The read side of a connection. TCP is kept concrete so that an idle connection can wait for readability
/// without holding a read buffer: most of an idle client's memory would otherwise be that buffer.
pub enum ReadHalf {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Other(BoxRead),
}

impl ReadHalf {
    /// Read what is available into `buf`, reserving `chunk` bytes only once there is something to read.
    async fn read_into(&mut self, buf: &mut BytesMut, chunk: usize) -> std::io::Result<usize> {
        match self {
            ReadHalf::Tcp(stream) => loop {
                stream.readable().await?;
                buf.reserve(chunk);
                match stream.try_read_buf(buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    result => return result,
                }
            },
            ReadHalf::Other(read) => {
                buf.reserve(chunk);
                read.read_buf(buf).await
            }
        }
    }
}
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Batches of packets one connection may have waiting in its session actor's mailbox.
const INBOUND_BATCHES: usize = 4;
/// Packets per batch, so one busy publisher cannot hold its actor for long.
const BATCH_PACKETS: usize = 256;
/// Bytes the reader asks the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Above this many unwritten bytes the actor stops taking deliveries for this connection.
const OUTBOX_HIGH_WATER: usize = 256 * 1024;

/// The write side of a connection. For TCP the actor may write directly when nothing is queued (see [`Outbox`]).
pub enum WriteHalf {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Other(BoxWrite),
}

/// An accepted socket after its CONNECT: the halves, what was read past the CONNECT, and the decoder that
/// knows the protocol level.
pub struct Transport {
    pub read: ReadHalf,
    pub write: WriteHalf,
    pub peer: SocketAddr,
    pub leftover: BytesMut,
    pub decoder: Decoder,
}

/// Aborts a task when dropped, so a killed actor takes its socket tasks with it.
pub struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    pub fn new(handle: JoinHandle<()>) -> Self {
        AbortOnDrop(Some(handle))
    }

    /// Let the task run to its end on its own (a writer flushing its last bytes).
    pub fn detach(mut self) {
        self.0.take();
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// Bytes waiting for the socket.
///
/// When nothing is queued and the writer task is idle, [`Outbox::push`] writes to a TCP socket directly
/// (non-blocking): a delivery then costs no task hop, which is most of a lightly loaded broker's latency. Only
/// what the socket does not take at once is queued for the writer task, so order is kept and the actor never
/// waits on a slow reader.
pub struct Outbox {
    state: Mutex<OutState>,
    notify: Notify,
    closing: AtomicBool,
    /// The actor stopped draining because this outbox was full: wake it once it is written.
    want_drain: AtomicBool,
    metrics: Arc<Metrics>,
}

struct OutState {
    buf: BytesMut,
    /// The writer task holds bytes taken from `buf` that are not written yet: direct writes must wait.
    writer_busy: bool,
    /// The socket, for direct writes; `None` for transports that cannot be written without awaiting.
    direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
}

impl Outbox {
    fn new(direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>, metrics: Arc<Metrics>) -> Self {
        Outbox {
            state: Mutex::new(OutState {
                buf: BytesMut::new(),
                writer_busy: false,
                direct,
            }),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            want_drain: AtomicBool::new(false),
            metrics,
        }
    }

    /// Write or queue encoded packets.
    pub fn push(&self, bytes: &mut BytesMut) {
        if bytes.is_empty() {
            return;
        }
        {
            let mut st = self.state.lock();
            if st.buf.is_empty() && !st.writer_busy {
                if let Some(socket) = &st.direct {
                    // On WouldBlock or an error the bytes are queued: the writer task waits, or reports the error.
                    if let Ok(n) = socket.try_write(bytes) {
                        Metrics::add(&self.metrics.bytes_sent, n as u64);
                        let _ = bytes.split_to(n);
                    }
                    if bytes.is_empty() {
                        return;
                    }
                }
            }
            if st.buf.is_empty() {
                std::mem::swap(&mut st.buf, bytes);
            } else {
                st.buf.extend_from_slice(bytes);
                bytes.clear();
            }
        }
        self.notify.notify_one();
    }

    pub fn pending(&self) -> usize {
        self.state.lock().buf.len()
    }

    /// True if more than the high-water mark waits for the socket; the writer task then promises a Drain once
    /// it has written it. The flag is set before the second look so that a writer finishing in between is not
    /// missed: either it sees the flag, or we see the outbox below the mark and carry on ourselves.
    pub fn backlogged(&self) -> bool {
        if self.pending() <= OUTBOX_HIGH_WATER {
            return false;
        }
        self.want_drain.store(true, Ordering::Release);
        if self.pending() > OUTBOX_HIGH_WATER {
            return true;
        }
        self.want_drain.store(false, Ordering::Release);
        false
    }

    /// Write what is queued, then close the socket.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// The running socket tasks of one connection.
pub struct Io {
    pub outbox: Arc<Outbox>,
    reader: AbortOnDrop,
    writer: AbortOnDrop,
}

impl Io {
    /// Start the reader and writer for `transport`, reporting to `actor` tagged with `generation`.
    pub fn start(transport: Transport, actor: ActorRef<SessionMsg>, generation: u64, metrics: Arc<Metrics>) -> Io {
        let (direct, write) = match transport.write {
            WriteHalf::Tcp(tcp) => {
                let tcp = Arc::new(tcp);
                (Some(tcp.clone()), Sink::Tcp(tcp))
            }
            WriteHalf::Other(other) => (None, Sink::Other(other)),
        };
        let outbox = Arc::new(Outbox::new(direct, metrics.clone()));
        let writer = tokio::spawn(write_loop(
            write,
            outbox.clone(),
            actor.clone(),
            generation,
            metrics.clone(),
        ));
        let reader = tokio::spawn(read_loop(
            transport.read,
            transport.leftover,
            transport.decoder,
            actor,
            generation,
            metrics,
        ));
        Io {
            outbox,
            reader: AbortOnDrop::new(reader),
            writer: AbortOnDrop::new(writer),
        }
    }

    /// Stop reading now; write what is queued, then close the socket (bounded by a timeout in the writer).
    pub fn close(self) {
        self.outbox.close();
        drop(self.reader);
        self.writer.detach();
    }
}

async fn read_loop(
    mut read: ReadHalf,
    mut buf: BytesMut,
    mut decoder: Decoder,
    actor: ActorRef<SessionMsg>,
    generation: u64,
    metrics: Arc<Metrics>,
) {
    let permits = Arc::new(Semaphore::new(INBOUND_BATCHES));
    loop {
        let mut packets = Vec::new();
        let mut error = None;
        while packets.len() < BATCH_PACKETS {
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if !packets.is_empty() && !send_batch(&actor, &permits, generation, packets).await {
            return;
        }
        if let Some(e) = error {
            let _ = actor.send_message(SessionMsg::ReaderClosed {
                generation,
                error: Some(e),
            });
            return;
        }
        if !buf.is_empty() && has_whole_frame(&buf) {
            continue; // the batch limit stopped us, not a lack of bytes
        }
        if buf.is_empty() {
            // Everything read was decoded: give the buffer back instead of keeping it while idle.
            buf = BytesMut::new();
        }
        match read.read_into(&mut buf, READ_CHUNK).await {
            Ok(0) | Err(_) => {
                let _ = actor.send_message(SessionMsg::ReaderClosed {
                    generation,
                    error: None,
                });
                return;
            }
            Ok(n) => Metrics::add(&metrics.bytes_received, n as u64),
        }
    }
}

/// True if `buf` holds at least one complete frame (cheap peek at the fixed header).
fn has_whole_frame(buf: &BytesMut) -> bool {
    let mut len: usize = 0;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return buf.len() >= 2 + i + len;
        }
    }
    buf.len() > 5 // malformed length: let the decoder report it
}

async fn send_batch(
    actor: &ActorRef<SessionMsg>,
    permits: &Arc<Semaphore>,
    generation: u64,
    packets: Vec<Packet>,
) -> bool {
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return false;
    };
    actor
        .send_message(SessionMsg::Inbound {
            generation,
            packets,
            permit: Permit(permit),
        })
        .is_ok()
}

/// Held by an inbound batch until the actor has handled it.
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

/// What the writer task writes to.
enum Sink {
    Tcp(Arc<tokio::net::tcp::OwnedWriteHalf>),
    Other(BoxWrite),
}

impl Sink {
    async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Tcp(socket) => {
                while !bytes.is_empty() {
                    socket.writable().await?;
                    match socket.try_write(bytes) {
                        Ok(n) => bytes = &bytes[n..],
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Sink::Other(write) => write.write_all(bytes).await,
        }
    }
}

async fn write_loop(
    mut sink: Sink,
    outbox: Arc<Outbox>,
    actor: ActorRef<SessionMsg>,
    generation: u64,
    metrics: Arc<Metrics>,
) {
    loop {
        let chunk = {
            let mut st = outbox.state.lock();
            let chunk = (!st.buf.is_empty()).then(|| st.buf.split());
            st.writer_busy = chunk.is_some();
            chunk
        };
        match chunk {
            Some(chunk) => {
                if sink.write_all(&chunk).await.is_err() {
                    let _ = actor.send_message(SessionMsg::ReaderClosed {
                        generation,
                        error: None,
                    });
                    return;
                }
                Metrics::add(&metrics.bytes_sent, chunk.len() as u64);
                if outbox.want_drain.swap(false, Ordering::AcqRel) {
                    let _ = actor.send_message(SessionMsg::Drain);
                }
            }
            None if outbox.closing.load(Ordering::Acquire) => {
                match sink {
                    Sink::Other(mut write) => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), write.shutdown()).await;
                    }
                    // Dropping the last reference to a TCP write half shuts its direction down (FIN).
                    Sink::Tcp(socket) => {
                        outbox.state.lock().direct = None;
                        drop(socket);
                    }
                }
                return;
            }
            None => outbox.notify.notified().await,
        }
    }
}
