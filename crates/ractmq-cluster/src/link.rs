//! The queue of messages on their way to one other node, kept until that node says it has routed them.
//!
//! ractor_cluster sends over one TCP connection per pair of nodes and drops whatever was in flight when the
//! connection breaks, without telling anyone. So every forwarded message gets a sequence number and stays
//! here until the receiver acknowledges it; when a new link to the node comes up, everything unacknowledged
//! is sent again, and the receiver skips the numbers it has routed already (see `inbound.rs`). A cut that
//! heals therefore loses nothing and repeats nothing.
//!
//! The queue is bounded: a node that stops acknowledging (down, partitioned, or slower than the publishers)
//! fills it, and then new messages for it are dropped and counted. Long before that, while the node is up,
//! publishers are held (see `ractmq_broker::flow`): from [`HOLD_MESSAGES`] or [`HOLD_BYTES`] unacknowledged,
//! or half the bound if that is less, until the queue is down to half of that again. When the node comes back as a new
//! incarnation (it restarted, its subscribers are gone) the queue is emptied and counted too. Plain data
//! behind a lock: publishers push from their own tasks, the link's pump takes batches.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use ractmq_protocol::Message;

use crate::wire_message::message_size;

/// Unacknowledged messages towards a node that is up from which its publishers are held: a few windows of
/// the pump's, so that a node keeping up never holds anyone.
pub const HOLD_MESSAGES: usize = 32_000;
/// Unacknowledged bytes (as `message_size` counts them) from which publishers are held.
pub const HOLD_BYTES: usize = 32 * 1024 * 1024;
use ractor::ActorId;
use tokio::sync::Notify;

/// One message for the node, with what it is for there.
#[derive(Debug, Clone)]
pub struct Item {
    pub message: Arc<Message>,
    pub deliver: bool,
    pub shared: Vec<(Arc<str>, Arc<str>)>,
    /// For the one client named, a session that moved to the node (see `ractmq_broker::moving`).
    pub relay_to: Option<Arc<str>>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Full,
}

#[derive(Debug)]
struct Queue {
    /// Unacknowledged messages, oldest first: `entries[i]` has number `first_seq + i`.
    entries: VecDeque<Item>,
    /// `message_size` of the entries, summed.
    bytes: usize,
    first_seq: u64,
    /// The highest number sent over the current link (`first_seq - 1` when none is).
    sent_upto: u64,
    /// The link `sent_upto` refers to.
    link: Option<ActorId>,
    /// The incarnation of the node being served, once known.
    incarnation: Option<u64>,
    capacity: usize,
}

impl Queue {
    /// Unacknowledged messages from which publishers are held.
    fn hold_messages(&self) -> usize {
        (self.capacity / 2).min(HOLD_MESSAGES)
    }
}

/// The queue towards one node, shared by the publishers and the link's pump.
#[derive(Debug)]
pub struct PeerLink {
    queue: Mutex<Queue>,
    /// Wakes the pump when there is something to send.
    pub notify: Notify,
    /// Wakes publishers waiting for room (see [`PeerLink::is_congested`]).
    pub room: Notify,
}

impl PeerLink {
    pub fn new(capacity: usize) -> PeerLink {
        PeerLink {
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                bytes: 0,
                first_seq: 1,
                sent_upto: 0,
                link: None,
                incarnation: None,
                capacity: capacity.max(1),
            }),
            notify: Notify::new(),
            room: Notify::new(),
        }
    }

    /// Queue `item`; refused when the queue is full. `Ok(true)`: the queue is at its hold mark, and
    /// publishers should wait for room.
    pub fn push(&self, item: Item) -> Result<bool, Refused> {
        let congested = {
            let mut q = self.queue.lock();
            if q.entries.len() >= q.capacity {
                return Err(Refused::Full);
            }
            q.bytes += message_size(&item.message);
            q.entries.push_back(item);
            q.entries.len() >= q.hold_messages() || q.bytes >= HOLD_BYTES
        };
        self.notify.notify_one();
        Ok(congested)
    }

    /// Whether a publisher should wait: until the queue is down to half its hold mark (not just below it, so
    /// that waiting publishers do not wake for every acknowledgement).
    pub fn is_congested(&self) -> bool {
        let q = self.queue.lock();
        q.entries.len() > q.hold_messages() / 2 || q.bytes > HOLD_BYTES / 2
    }

    /// The highest number the node has acknowledged: it moves as long as the node makes progress.
    pub fn acknowledged(&self) -> u64 {
        self.queue.lock().first_seq - 1
    }

    /// The node has routed everything up to `seq`: forget it.
    pub fn ack(&self, seq: u64) {
        {
            let mut q = self.queue.lock();
            while q.first_seq <= seq {
                let Some(item) = q.entries.pop_front() else {
                    break;
                };
                q.bytes -= message_size(&item.message);
                q.first_seq += 1;
            }
            q.sent_upto = q.sent_upto.max(q.first_seq - 1);
        }
        self.room.notify_waiters();
    }

    /// The next batch to send over `link`, numbered from the returned sequence number: at most `max_items`
    /// messages, no more than `max_bytes` by `size` unless the first alone is larger, and none while `window`
    /// messages are sent and not yet acknowledged. On a link other than the last one used, sending starts
    /// again from the oldest unacknowledged message.
    ///
    /// The window keeps what is in transit small: ractor_cluster queues sends and the acknowledgements coming
    /// back in the same unbounded mailboxes, so without it acknowledgements would wait behind everything sent
    /// and the queue would fill with messages already delivered.
    pub fn next_batch(
        &self,
        link: &ActorId,
        window: usize,
        max_items: usize,
        max_bytes: usize,
        size: impl Fn(&Item) -> usize,
    ) -> Option<(u64, Vec<Item>)> {
        let mut q = self.queue.lock();
        if q.link.as_ref() != Some(link) {
            q.link = Some(*link);
            q.sent_upto = q.first_seq - 1;
        }
        let start = (q.sent_upto + 1 - q.first_seq) as usize;
        let room = window.saturating_sub(start);
        let mut bytes = 0;
        let mut items = Vec::new();
        for item in q.entries.iter().skip(start).take(max_items.min(room)) {
            bytes += size(item);
            if !items.is_empty() && bytes > max_bytes {
                break;
            }
            items.push(item.clone());
        }
        if items.is_empty() {
            return None;
        }
        let first = q.sent_upto + 1;
        q.sent_upto += items.len() as u64;
        Some((first, items))
    }

    /// The last send over the current link failed: send everything unacknowledged again on the next link.
    pub fn link_lost(&self) {
        self.queue.lock().link = None;
    }

    /// The node runs as `incarnation`. If that is a new run of a node served before, the queued messages were
    /// meant for subscribers that no longer exist: they are dropped, and how many is returned.
    pub fn serve_incarnation(&self, incarnation: u64) -> usize {
        let mut q = self.queue.lock();
        let previous = q.incarnation.replace(incarnation);
        if previous.is_none_or(|p| p == incarnation) {
            return 0;
        }
        let dropped = q.entries.len();
        q.first_seq += dropped as u64;
        q.entries.clear();
        q.bytes = 0;
        q.sent_upto = q.first_seq - 1;
        dropped
    }

    /// Messages queued and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.queue.lock().entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ractmq_codec::QoS;

    fn item(n: u8) -> Item {
        Item {
            message: Arc::new(Message::new("t", Bytes::from(vec![n]), QoS::AtLeastOnce, false)),
            deliver: true,
            shared: Vec::new(),
            relay_to: None,
        }
    }

    fn payloads(items: &[Item]) -> Vec<u8> {
        items.iter().map(|i| i.message.payload[0]).collect()
    }

    fn link(n: u64) -> ActorId {
        ActorId::Local(n)
    }

    #[test]
    fn batches_are_numbered_in_order_and_not_sent_twice_on_one_link() {
        let l = PeerLink::new(10);
        for n in 1..=5 {
            l.push(item(n)).unwrap();
        }
        let (first, items) = l.next_batch(&link(1), usize::MAX, 3, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (1, vec![1, 2, 3]));
        let (first, items) = l.next_batch(&link(1), usize::MAX, 3, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (4, vec![4, 5]));
        assert!(l.next_batch(&link(1), usize::MAX, 3, usize::MAX, |_| 1).is_none());
    }

    #[test]
    fn a_new_link_gets_everything_unacknowledged_again() {
        let l = PeerLink::new(10);
        for n in 1..=4 {
            l.push(item(n)).unwrap();
        }
        l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        l.ack(2);
        assert_eq!(l.len(), 2);
        let (first, items) = l.next_batch(&link(2), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (3, vec![3, 4]));
        l.link_lost();
        let (first, items) = l.next_batch(&link(2), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (3, vec![3, 4]));
    }

    #[test]
    fn a_large_queue_holds_publishers_from_its_hold_mark() {
        let l = PeerLink::new(1_000_000);
        let pushed = (0..HOLD_MESSAGES).filter(|_| l.push(item(0)).unwrap()).count();
        assert_eq!(pushed, 1, "only the push that reached the mark says so");
        assert!(l.is_congested());
    }

    #[test]
    fn past_half_full_publishers_are_told_to_wait_until_a_quarter() {
        let l = PeerLink::new(8);
        let pushed: Vec<bool> = (1..=5).map(|n| l.push(item(n)).unwrap()).collect();
        assert_eq!(pushed, [false, false, false, true, true]);
        assert!(l.is_congested());
        l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        l.ack(2);
        assert!(l.is_congested(), "3 left: more than a quarter");
        l.ack(3);
        assert!(!l.is_congested());
    }

    #[test]
    fn a_full_queue_refuses_until_acknowledged() {
        let l = PeerLink::new(2);
        l.push(item(1)).unwrap();
        l.push(item(2)).unwrap();
        assert_eq!(l.push(item(3)), Err(Refused::Full));
        l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        l.ack(1);
        l.push(item(3)).unwrap();
        let (first, items) = l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (3, vec![3]));
    }

    #[test]
    fn batches_stop_at_the_byte_budget_but_always_carry_one() {
        let l = PeerLink::new(10);
        for n in 1..=3 {
            l.push(item(n)).unwrap();
        }
        let (_, items) = l.next_batch(&link(1), usize::MAX, 10, 5, |_| 10).unwrap();
        assert_eq!(payloads(&items), vec![1]);
        let (_, items) = l.next_batch(&link(1), usize::MAX, 10, 25, |_| 10).unwrap();
        assert_eq!(payloads(&items), vec![2, 3]);
    }

    #[test]
    fn no_more_than_the_window_is_in_transit() {
        let l = PeerLink::new(10);
        for n in 1..=5 {
            l.push(item(n)).unwrap();
        }
        let (_, items) = l.next_batch(&link(1), 3, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!(payloads(&items), vec![1, 2, 3]);
        assert!(
            l.next_batch(&link(1), 3, 10, usize::MAX, |_| 1).is_none(),
            "the window is full"
        );
        l.ack(2);
        let (first, items) = l.next_batch(&link(1), 3, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (4, vec![4, 5]));
    }

    #[test]
    fn a_restarted_node_does_not_get_the_previous_runs_messages() {
        let l = PeerLink::new(10);
        assert_eq!(l.serve_incarnation(7), 0);
        l.push(item(1)).unwrap();
        l.push(item(2)).unwrap();
        assert_eq!(l.serve_incarnation(7), 0);
        assert_eq!(l.serve_incarnation(8), 2);
        assert!(l.is_empty());
        l.push(item(3)).unwrap();
        let (first, items) = l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!((first, payloads(&items)), (3, vec![3]));
    }

    #[test]
    fn stale_and_repeated_acks_are_harmless() {
        let l = PeerLink::new(10);
        for n in 1..=3 {
            l.push(item(n)).unwrap();
        }
        l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        l.ack(2);
        l.ack(1);
        l.ack(2);
        assert_eq!(l.len(), 1);
        l.ack(99);
        assert!(l.is_empty());
        l.push(item(4)).unwrap();
        let (first, _) = l.next_batch(&link(1), usize::MAX, 10, usize::MAX, |_| 1).unwrap();
        assert_eq!(first, 4);
    }
}
