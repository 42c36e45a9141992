//! The socket side of a session: a reader task, and a writer task when one is needed, owned by the session.
//!
//! The actor never waits on a socket. The reader decodes frames in batches and hands each batch to the session
//! as one message; a semaphore bounds how many batches may wait in the actor's (unbounded) mailbox, so a client
//! that publishes faster than its session can route is slowed by TCP, not buffered. The reader also enforces
//! keepalive, and it reports to its owner ([`ConnOwner`], the session record) rather than to an actor ref, so
//! a hibernated session's connection keeps being read and wakes the session when something arrives.
//!
//! The writer drains an [`Outbox`] the actor appends encoded bytes to; the actor stops taking deliveries while
//! the outbox is above its high-water mark, so a slow reader's backlog stays in its bounded mailbox where the
//! overflow policy applies. Both tasks are aborted when the [`Io`] is dropped unclosed, however the actor ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use ractmq_codec::{DecodeError, Decoder, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::fence::{FenceGuard, Fences};
use crate::metrics::Metrics;
use crate::peer_counts::Place;
use crate::rate_limit::InboundLimit;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// The read side of a connection. TCP is kept concrete so that an idle connection can wait for readability
/// without holding a read buffer: most of an idle client's memory would otherwise be that buffer.
pub enum ReadHalf {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Other(BoxRead),
}

impl ReadHalf {
    /// Read what is available into `buf`. An empty `buf` gets heap only for what actually arrived; one holding
    /// part of a frame is given room for `chunk` more bytes first.
    ///
    /// `readable()` can report readiness that is already stale: tokio clears it only when a read would block,
    /// and a read that took everything the socket had (the CONNECT in the handshake, the last batch of a
    /// client that then goes quiet) does not. Reserving `chunk` before that read would leave every idle
    /// connection holding it while it waits (16 KiB for the reader: most of what an idle client cost). So an
    /// empty buffer is read through a per-thread scratch buffer and given a copy of what came, sized to fit.
    pub(crate) async fn read_into(&mut self, buf: &mut BytesMut, chunk: usize) -> std::io::Result<usize> {
        match self {
            ReadHalf::Tcp(stream) => loop {
                stream.readable().await?;
                let read = if buf.is_empty() {
                    read_via_scratch(stream, buf, chunk)
                } else {
                    buf.reserve(chunk);
                    stream.try_read_buf(buf)
                };
                match read {
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

/// The most a read into an empty buffer takes at once (see [`ReadHalf::read_into`]).
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Read at most `chunk` bytes from `stream` into this thread's scratch buffer and append them to `buf`.
fn read_via_scratch(
    stream: &tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    chunk: usize,
) -> std::io::Result<usize> {
    SCRATCH_BUF.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let n = stream.try_read(&mut scratch[..chunk.min(SCRATCH)])?;
        buf.extend_from_slice(&scratch[..n]);
        Ok(n)
    })
}

pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A batch of packets from the reader of connection `generation`, read at `mark` (see `fence.rs`); `fence`
/// if it changes subscriptions, dropped once the index has the change.
pub struct Batch {
    pub generation: u64,
    pub packets: Vec<Packet>,
    pub permit: Permit,
    pub mark: u64,
    pub fence: Option<FenceGuard>,
}

/// What a connection's tasks tell the session they belong to.
pub enum ConnEvent {
    Inbound(Batch),
    /// The connection `generation` ended on the socket side (EOF, I/O error, or undecodable bytes).
    ReaderClosed {
        generation: u64,
        error: Option<DecodeError>,
    },
    /// The reader of connection `generation` heard nothing for the keepalive limit.
    Tick {
        generation: u64,
    },
    /// The outbox was written below its high-water mark: the session may drain again.
    Drained,
}

/// Whom a connection reports to: the session record, which hands the event to the session's actor or, while
/// the session hibernates, keeps it and wakes the session. False once nobody will take events any more.
pub trait ConnOwner: Send + Sync + 'static {
    fn report(&self, event: ConnEvent) -> bool;
}

/// Batches of packets one connection may have waiting in its session actor's mailbox.
const INBOUND_BATCHES: usize = 4;
/// Packets per batch, so one busy publisher cannot hold its actor for long.
const BATCH_PACKETS: usize = 256;
/// Bytes the reader asks the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Above this many unwritten bytes the actor stops taking deliveries for this connection.
const OUTBOX_HIGH_WATER: usize = 256 * 1024;
/// Added to the keepalive limit so that the session, which saw the last packet a little after the reader did,
/// agrees that it is overdue.
pub const KEEPALIVE_SLACK: Duration = Duration::from_millis(50);
/// How long the reader of a closed connection keeps draining what the client still sends.
const LINGER: Duration = Duration::from_secs(1);
/// When the session found keepalive not yet overdue, the reader asks again after this long. With the slack,
/// the granularity of the check: a silent client is closed within 1.5 x its Keep Alive plus both.
pub const KEEPALIVE_RECHECK: Duration = Duration::from_secs(1);

/// The write side of a connection. For TCP the actor may write directly when nothing is queued (see [`Outbox`]).
pub enum WriteHalf {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Other(BoxWrite),
}

impl WriteHalf {
    /// Write and flush `bytes`, waiting as long as it takes: for the handshake, before the outbox exists.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            WriteHalf::Tcp(tcp) => tcp.write_all(bytes).await,
            WriteHalf::Other(other) => {
                other.write_all(bytes).await?;
                other.flush().await
            }
        }
    }

    pub(crate) async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            WriteHalf::Tcp(tcp) => tcp.shutdown().await,
            WriteHalf::Other(other) => other.shutdown().await,
        }
    }
}

/// An accepted socket after its CONNECT: the halves, what was read past the CONNECT, and the decoder that
/// knows the protocol level.
pub struct Transport {
    pub read: ReadHalf,
    pub write: WriteHalf,
    pub peer: SocketAddr,
    pub leftover: BytesMut,
    pub decoder: Decoder,
    /// Counts the connection on its listener (and its peer address) for as long as its socket is read.
    pub counted: Counted,
    /// The client's inbound rate limits, if any: its reader waits rather than go over them.
    pub(crate) inbound: Option<Arc<InboundLimit>>,
}

/// One open client connection on a listener's count (`Kernel::listener_connections`), and on its peer
/// address's when that is bounded, from its accepted CONNECT until its reader ends; the counts go down when
/// this is dropped.
pub struct Counted(Arc<AtomicU64>, #[allow(dead_code)] Option<Place>); // the place is held, not read

impl Counted {
    pub(crate) fn new(counter: &Arc<AtomicU64>, peer: Option<Place>) -> Counted {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(counter.clone(), peer)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Aborts a task when dropped, so a killed actor takes its socket tasks with it.
pub struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    pub fn new(handle: JoinHandle<()>) -> Self {
        AbortOnDrop(Some(handle))
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
/// When nothing is queued and no writer is busy, [`Outbox::push`] writes to a TCP socket directly
/// (non-blocking): a delivery then costs no task hop, which is most of a lightly loaded broker's latency. Only
/// what the socket does not take at once is queued for the writer task, so order is kept and the actor never
/// waits on a slow reader. The writer task starts the first time bytes must wait: an idle connection, or one
/// whose socket always keeps up, never pays for one.
pub struct Outbox {
    state: Mutex<OutState>,
    notify: Notify,
    closing: AtomicBool,
    /// The actor stopped draining because this outbox was full: wake it once it is written.
    want_drain: AtomicBool,
    /// Weak: a hibernated session holds its connection, and so this outbox.
    owner: Weak<dyn ConnOwner>,
    generation: u64,
    metrics: Arc<Metrics>,
}

struct OutState {
    buf: BytesMut,
    /// The writer task holds bytes taken from `buf` that are not written yet: direct writes must wait.
    writer_busy: bool,
    /// The socket, for direct writes; `None` for transports that cannot be written without awaiting.
    direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
    /// The sink until the writer task takes it.
    sink: Option<Sink>,
    writer: Option<JoinHandle<()>>,
}

impl Outbox {
    /// Write or queue encoded packets.
    pub fn push(self: &Arc<Self>, bytes: &mut BytesMut) {
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
            self.start_writer(&mut st);
        }
        self.notify.notify_one();
    }

    fn start_writer(self: &Arc<Self>, st: &mut OutState) {
        if let Some(sink) = st.sink.take() {
            st.writer = Some(tokio::spawn(write_loop(sink, self.clone())));
        }
    }

    pub fn pending(&self) -> usize {
        self.state.lock().buf.len()
    }

    /// Nothing waits for the socket.
    pub fn is_idle(&self) -> bool {
        let st = self.state.lock();
        st.buf.is_empty() && !st.writer_busy
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
    fn close(self: &Arc<Self>) {
        self.closing.store(true, Ordering::Release);
        {
            let mut st = self.state.lock();
            match st.sink.take() {
                // Nothing was ever queued on a TCP socket: dropping both references to its write half sends FIN.
                Some(Sink::Tcp(socket)) if st.buf.is_empty() => {
                    st.direct = None;
                    drop(socket);
                }
                sink => {
                    st.sink = sink;
                    self.start_writer(&mut st);
                }
            }
        }
        self.notify.notify_one();
    }

    fn report(&self, event: ConnEvent) {
        if let Some(owner) = self.owner.upgrade() {
            owner.report(event);
        }
    }
}

/// The running socket tasks of one connection.
pub struct Io {
    pub outbox: Arc<Outbox>,
    /// Aborted when the `Io` is dropped; after `close`, it lingers (see [`LINGER`]).
    reader: Option<AbortOnDrop>,
    closed: bool,
}

impl Io {
    /// Start the reader for `transport`, reporting to `owner` tagged with `generation`. `keepalive` is how
    /// long the client may stay silent (one and a half times its Keep Alive); the reader enforces it, so a
    /// connected session needs no timer of its own.
    pub fn start(
        transport: Transport,
        owner: Arc<dyn ConnOwner>,
        generation: u64,
        keepalive: Option<Duration>,
        metrics: Arc<Metrics>,
        fences: Arc<Fences>,
    ) -> Io {
        let (direct, sink) = match transport.write {
            WriteHalf::Tcp(tcp) => {
                let tcp = Arc::new(tcp);
                (Some(tcp.clone()), Sink::Tcp(tcp))
            }
            WriteHalf::Other(other) => (None, Sink::Other(other)),
        };
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutState {
                buf: BytesMut::new(),
                writer_busy: false,
                direct,
                sink: Some(sink),
                writer: None,
            }),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            want_drain: AtomicBool::new(false),
            owner: Arc::downgrade(&owner),
            generation,
            metrics: metrics.clone(),
        });
        let reader = tokio::spawn(read_loop(
            transport.read,
            transport.leftover,
            transport.decoder,
            Link {
                owner,
                generation,
                keepalive: keepalive.map(|k| k + KEEPALIVE_SLACK),
                fences,
                inbound: transport.inbound,
                _counted: transport.counted,
            },
            metrics,
        ));
        Io {
            outbox,
            reader: Some(AbortOnDrop::new(reader)),
            closed: false,
        }
    }

    /// Write what is queued, then close the socket (bounded by a timeout in the writer). The reader goes on
    /// for [`LINGER`], its packets ignored by the session, so that a client still sending (PUBRELs for the
    /// PUBRECs before a DISCONNECT, say) finds a half-closed socket rather than a reset that could hide the
    /// DISCONNECT from it.
    pub fn close(mut self) {
        self.closed = true;
        self.outbox.close();
        if let Some(reader) = self.reader.take() {
            tokio::spawn(async move {
                tokio::time::sleep(LINGER).await;
                drop(reader);
            });
        }
    }
}

impl Drop for Io {
    /// Dropped without `close` (the actor was killed or failed): the writer goes too, unflushed.
    fn drop(&mut self) {
        if !self.closed {
            if let Some(writer) = self.outbox.state.lock().writer.take() {
                writer.abort();
            }
        }
    }
}

/// What the reader reports to.
struct Link {
    owner: Arc<dyn ConnOwner>,
    generation: u64,
    /// Silence allowed before the reader asks the session to check keepalive.
    keepalive: Option<Duration>,
    fences: Arc<Fences>,
    inbound: Option<Arc<InboundLimit>>,
    _counted: Counted,
}

impl Link {
    fn send(&self, event: ConnEvent) -> bool {
        self.owner.report(event)
    }
}

async fn read_loop(mut read: ReadHalf, mut buf: BytesMut, mut decoder: Decoder, link: Link, metrics: Arc<Metrics>) {
    let generation = link.generation;
    let permits = Arc::new(Semaphore::new(INBOUND_BATCHES));
    // Keepalive is checked lazily: one timer per connection, registered once, that fires at the earliest
    // possible deadline and re-arms from the last packet seen. A packet costs a clock read, not a timer
    // operation: re-arming a timer per read would put the timer wheel's lock on every message's path.
    let limit = link.keepalive.unwrap_or(Duration::MAX);
    let mut last_packet = tokio::time::Instant::now();
    let keepalive = tokio::time::sleep_until(last_packet.checked_add(limit).unwrap_or_else(far_future));
    tokio::pin!(keepalive);
    // Whether the bytes being decoded came from a read that had to wait for the socket (see `send_batch`).
    let mut woken = false;
    loop {
        // Sized to the frames already read: a packet is a large value, and a vector regrown as it fills
        // copies every packet read so far each time.
        let mut packets = Vec::with_capacity(whole_frames(&buf, BATCH_PACKETS));
        let mut error = None;
        let before = buf.len();
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
        if let (Some(limit), false) = (&link.inbound, packets.is_empty()) {
            // Over its rate, the client waits here: its socket is not read meanwhile (backpressure).
            let publishes = packets.iter().filter(|p| matches!(p, Packet::Publish(_))).count() as u32;
            let read = (before - buf.len()).min(u32::MAX as usize) as u32;
            limit.wait(publishes, read).await;
        }
        if !packets.is_empty() {
            // Any packet is a sign of life [MQTT-3.1.2-22].
            last_packet = tokio::time::Instant::now();
            let woken = std::mem::take(&mut woken) && link.fences.changed_recently(last_packet.into_std());
            if !send_batch(&link, &permits, packets, woken).await {
                return;
            }
        }
        if let Some(e) = error {
            link.send(ConnEvent::ReaderClosed {
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
        woken = buf.is_empty();
        let read = tokio::select! {
            read = read.read_into(&mut buf, READ_CHUNK) => read,
            () = &mut keepalive => {
                let due = last_packet.checked_add(limit).unwrap_or_else(far_future);
                if due > tokio::time::Instant::now() {
                    keepalive.as_mut().reset(due); // a packet came since the timer was set
                } else {
                    // Silent for too long: the session closes the connection (0x8D) unless its own clock
                    // disagrees, in which case we ask again shortly.
                    if !link.send(ConnEvent::Tick { generation }) {
                        return;
                    }
                    keepalive.as_mut().reset(tokio::time::Instant::now() + KEEPALIVE_RECHECK);
                }
                continue;
            }
        };
        match read {
            Ok(0) | Err(_) => {
                link.send(ConnEvent::ReaderClosed {
                    generation,
                    error: None,
                });
                return;
            }
            Ok(n) => Metrics::add(&metrics.bytes_received, n as u64),
        }
    }
}

/// A deadline that never comes, for connections without keepalive (about thirty years ahead).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// True if `buf` holds at least one complete frame (cheap peek at the fixed header).
fn has_whole_frame(buf: &[u8]) -> bool {
    whole_frame_len(buf).is_some()
}

/// How many complete frames start `buf`, counting at most `max`.
fn whole_frames(buf: &[u8], max: usize) -> usize {
    let (mut count, mut at) = (0, 0);
    while count < max {
        let Some(len) = whole_frame_len(&buf[at..]) else {
            break;
        };
        count += 1;
        at += len;
    }
    count
}

/// The length of the frame at the front of `buf` if all of it is there (cheap peek at the fixed header). A
/// malformed remaining length counts as a frame taking the rest of `buf`: the decoder reports it.
fn whole_frame_len(buf: &[u8]) -> Option<usize> {
    let mut len: usize = 0;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let frame = 2 + i + len;
            return (buf.len() >= frame).then_some(frame);
        }
    }
    (buf.len() > 5).then_some(buf.len())
}

/// `woken`: the batch came from a read that waited for the socket while subscriptions were changing.
async fn send_batch(link: &Link, permits: &Arc<Semaphore>, packets: Vec<Packet>, woken: bool) -> bool {
    if woken && packets.iter().any(|p| matches!(p, Packet::Publish(_))) {
        // Sockets that became readable together are read in the reverse order of their readiness: the
        // runtime runs the reader it woke last first (tokio's LIFO slot). Letting the readers woken with
        // this one decode first keeps a SUBSCRIBE that reached the node before this PUBLISH ahead of it.
        // Only while subscriptions change (see `Fences::changed_recently`): the yield costs about a tenth
        // of point-to-point throughput, and with no SUBSCRIBE about there is nothing to keep ahead.
        tokio::task::yield_now().await;
    }
    // Numbered as read, before waiting for a permit: subscription changes read by then go first.
    let mark = link.fences.mark();
    let changes_subscriptions = packets
        .iter()
        .any(|p| matches!(p, Packet::Subscribe(_) | Packet::Unsubscribe(_)));
    let fence = changes_subscriptions.then(|| link.fences.begin());
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return false;
    };
    link.send(ConnEvent::Inbound(Batch {
        generation: link.generation,
        packets,
        permit: Permit(permit),
        mark,
        fence,
    }))
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
            // TLS and WebSocket streams buffer what they are given: flush, or it may wait for the next write.
            Sink::Other(write) => {
                write.write_all(bytes).await?;
                write.flush().await
            }
        }
    }
}

async fn write_loop(mut sink: Sink, outbox: Arc<Outbox>) {
    let metrics = outbox.metrics.clone();
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
                    outbox.report(ConnEvent::ReaderClosed {
                        generation: outbox.generation,
                        error: None,
                    });
                    return;
                }
                Metrics::add(&metrics.bytes_sent, chunk.len() as u64);
                if outbox.want_drain.swap(false, Ordering::AcqRel) {
                    outbox.report(ConnEvent::Drained);
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Polls `fut` once: true if it is still pending.
    async fn pending_after_one_poll<F: Future>(fut: F) -> bool {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
    }

    #[test]
    fn whole_frames_are_counted_from_the_fixed_headers() {
        let pingreq = [0xc0, 0x00];
        let publish = [0x30, 0x05, 0x00, 0x01, b'a', b'x', b'y'];
        let mut buf = Vec::new();
        for _ in 0..3 {
            buf.extend_from_slice(&pingreq);
            buf.extend_from_slice(&publish);
        }
        assert_eq!(whole_frames(&buf, 100), 6);
        assert_eq!(whole_frames(&buf, 4), 4);
        assert_eq!(
            whole_frames(&buf[..buf.len() - 1], 100),
            5,
            "the last one is incomplete"
        );
        assert_eq!(whole_frames(&[], 100), 0);
        assert_eq!(
            whole_frames(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 100),
            1,
            "malformed: one, for the decoder"
        );
    }

    /// A reader that took everything the socket had is left with stale readiness: its next read finds nothing
    /// and waits, and while it waits its empty buffer holds no heap (an idle connection costs no read buffer).
    #[tokio::test]
    async fn an_idle_read_holds_no_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, _write) = server.into_split();
        let mut read = ReadHalf::Tcp(read);

        client.write_all(b"\xc0\x00").await.unwrap(); // PINGREQ
        let mut buf = BytesMut::new();
        while buf.len() < 2 {
            read.read_into(&mut buf, READ_CHUNK).await.unwrap();
        }
        assert_eq!(&buf[..], b"\xc0\x00");
        assert!(buf.capacity() < READ_CHUNK, "sized to what came, not to the chunk");

        let mut buf = BytesMut::new();
        assert!(pending_after_one_poll(read.read_into(&mut buf, READ_CHUNK)).await);
        assert_eq!(buf.capacity(), 0);

        // and it still reads what comes next
        client.write_all(b"\xc0\x00").await.unwrap();
        assert_eq!(read.read_into(&mut buf, READ_CHUNK).await.unwrap(), 2);
        assert_eq!(&buf[..], b"\xc0\x00");
    }
}
