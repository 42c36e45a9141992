//! An in-process subscription that outlives the actors reading it: at-least-once delivery into a supervised
//! topology.
//!
//! The broker acknowledges a QoS 1 or 2 publish once the message is queued for each subscriber; for an
//! in-process [`Subscription`] that is its channel. If the actor holding that handle dies, or a stage after
//! it dies with messages in its mailbox, those messages are gone although their publishers were told they
//! arrived. An [`Inbox`] is opened beside the tree, not inside an actor: it numbers each message it hands out
//! and keeps it until a stage acknowledges it, and a new reader (the first stage, started again) is given
//! every message not yet acknowledged before anything new.
//!
//! Redelivery makes it at-least-once; [`Inbox::ack`] is true only once per message, so a last stage that
//! acknowledges before it does its one visible thing (see `examples/topology.rs`) acts once per message.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use ractmq_protocol::Message;
use tokio::sync::{Notify, Semaphore};

use crate::broker::{ApiError, Broker, Subscription};

/// An in-process subscription with acknowledgements, shared by the stages of a topology (cloning shares
/// it). The subscription ends when the last clone is dropped.
///
/// ```no_run
/// # async fn run(broker: ractmq_broker::Broker) -> Result<(), Box<dyn std::error::Error>> {
/// use ractmq_broker::Inbox;
///
/// let inbox = Inbox::open(&broker, "orders/#", 1000).await?;
/// // In the first stage's `pre_start`: a new reader is given again what was not acknowledged.
/// let mut reader = inbox.reader();
/// while let Some(delivery) = reader.next().await {
///     // ... hand it on; the stage that finishes with it calls:
///     inbox.ack(delivery.id);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Inbox(Arc<Inner>);

/// One message handed out by an [`Inbox`]; acknowledge it with [`Inbox::ack`] and its `id`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Numbered by the inbox in the order it took the messages from the broker; the same on every redelivery.
    pub id: u64,
    /// 1 the first time the message is handed out, then one more each time it is handed out again.
    pub attempt: u32,
    /// The message, as published.
    pub message: Arc<Message>,
}

// Local only, so that stages can pass deliveries to each other (ractor's cluster mode asks every message type).
impl ractor::Message for Delivery {}

/// Takes messages from an [`Inbox`]; only the newest reader gets any.
pub struct InboxReader {
    inbox: Arc<Inner>,
    generation: u64,
}

struct Inner {
    subscription: tokio::sync::Mutex<Subscription>,
    ledger: Mutex<Ledger>,
    /// One permit per message that may be handed out and not acknowledged yet: the topology's window.
    window: Semaphore,
    /// Wakes readers when they may have been replaced, or a message was put back for redelivery.
    changed: Notify,
}

#[derive(Default)]
struct Ledger {
    generation: u64,
    next_id: u64,
    /// Handed out and not acknowledged, by id: the message and how many times it was handed out.
    unacked: BTreeMap<u64, (Arc<Message>, u32)>,
    redeliver: VecDeque<u64>,
}

impl Inbox {
    /// Subscribe to `filter`. At most `capacity` messages wait in the broker unread (more are dropped and
    /// counted, as for [`Broker::subscribe`], so size it for bursts while the topology restarts) and at most
    /// `capacity` are handed out and not yet acknowledged.
    pub async fn open(broker: &Broker, filter: &str, capacity: usize) -> Result<Inbox, ApiError> {
        let subscription = broker.subscribe(filter, capacity).await?;
        Ok(Inbox(Arc::new(Inner {
            subscription: tokio::sync::Mutex::new(subscription),
            ledger: Mutex::new(Ledger::default()),
            window: Semaphore::new(capacity.max(1)),
            changed: Notify::new(),
        })))
    }

    /// A new reader, given first every message handed out before and not acknowledged, oldest first. Earlier
    /// readers get nothing more ([`InboxReader::next`] returns `None`): call it when the first stage starts,
    /// so that whatever died with the stages that restarted is given again.
    pub fn reader(&self) -> InboxReader {
        let mut ledger = self.0.ledger.lock();
        ledger.generation += 1;
        ledger.redeliver = ledger.unacked.keys().copied().collect();
        let generation = ledger.generation;
        drop(ledger);
        self.0.changed.notify_waiters();
        InboxReader {
            inbox: self.0.clone(),
            generation,
        }
    }

    /// Acknowledge message `id`: done with, never handed out again. True the first time only, so a stage that
    /// gets a message twice (redelivered while the first copy was still on its way) can tell.
    pub fn ack(&self, id: u64) -> bool {
        let known = self.0.ledger.lock().unacked.remove(&id).is_some();
        if known {
            self.0.window.add_permits(1);
        }
        known
    }

    /// Messages handed out and not acknowledged yet.
    pub fn unacked(&self) -> usize {
        self.0.ledger.lock().unacked.len()
    }
}

impl InboxReader {
    /// The next message: one to hand out again if any, else the next from the broker once fewer than the
    /// window are unacknowledged. `None` once a newer reader exists or the broker has stopped.
    ///
    /// Cancel-safe: a reader dropped while it waits loses nothing.
    pub async fn next(&mut self) -> Option<Delivery> {
        let inner = &*self.inbox;
        loop {
            let changed = inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut ledger = inner.ledger.lock();
                if ledger.generation != self.generation {
                    return None;
                }
                if let Some(id) = ledger.redeliver.pop_front() {
                    if let Some((message, attempts)) = ledger.unacked.get_mut(&id) {
                        *attempts += 1;
                        let (message, attempt) = (message.clone(), *attempts);
                        return Some(Delivery { id, attempt, message });
                    }
                    continue; // acknowledged since
                }
            }
            let taken = async {
                let permit = inner.window.acquire().await.expect("the window is never closed");
                let message = inner.subscription.lock().await.recv().await;
                (permit, message)
            };
            tokio::select! {
                _ = &mut changed => continue,
                (permit, message) = taken => {
                    let message = message?;
                    permit.forget(); // given back by `ack`
                    let mut ledger = inner.ledger.lock();
                    let id = ledger.next_id;
                    ledger.next_id += 1;
                    if ledger.generation != self.generation {
                        // Replaced while it waited: the message goes to the new reader, as its first attempt.
                        ledger.unacked.insert(id, (message, 0));
                        ledger.redeliver.push_back(id);
                        drop(ledger);
                        inner.changed.notify_waiters();
                        return None;
                    }
                    ledger.unacked.insert(id, (message.clone(), 1));
                    return Some(Delivery { id, attempt: 1, message });
                }
            }
        }
    }
}
