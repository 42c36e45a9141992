//! Where every session's state lives, outside the actor that serves it.
//!
//! A session actor may panic or be killed; its client's subscriptions, messages in flight and queued messages
//! must not die with it. They live here, in a [`SessionShared`] per client id that the store, the subscription
//! index and the actor all hold. A restarted actor picks up the same `SessionShared`; a rebuilt topic shard
//! reads every session's subscriptions from here. The store itself is plain data owned by the broker handle, so
//! no actor restart can lose it (a node restart does: sessions are in memory).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use ractmq_protocol::config::{Limits, OverflowPolicy};
use ractmq_protocol::{BoundedQueue, Delivery, PushOutcome, Session};
use ractor::ActorRef;

use crate::metrics::Metrics;
use crate::session_actor::SessionMsg;

/// Messages routed to a session and not yet handed to its protocol state machine.
pub struct Mailbox {
    pub queue: BoundedQueue<Delivery>,
    /// A Drain message is on its way to the actor; no need to send another.
    wake_pending: bool,
    pub online: bool,
}

/// One client's session, shared by the store, the subscription index and the session actor.
pub struct SessionShared {
    pub client_id: Arc<str>,
    /// Protocol state; locked by the session actor while it handles a message, and by a shard rebuild.
    pub state: Mutex<Session>,
    pub mailbox: Mutex<Mailbox>,
    /// The actor currently serving this session (replaced on restart).
    owner: Mutex<Option<ActorRef<SessionMsg>>>,
}

impl SessionShared {
    pub fn new(client_id: Arc<str>, limits: &Limits) -> Arc<Self> {
        Arc::new(SessionShared {
            state: Mutex::new(Session::new(client_id.clone())),
            mailbox: Mutex::new(Mailbox {
                queue: BoundedQueue::new(limits.max_offline_queue_len, limits.offline_overflow),
                wake_pending: false,
                online: false,
            }),
            owner: Mutex::new(None),
            client_id,
        })
    }

    pub fn set_owner(&self, actor: Option<ActorRef<SessionMsg>>) {
        *self.owner.lock() = actor;
        self.mailbox.lock().wake_pending = false;
    }

    pub fn owner(&self) -> Option<ActorRef<SessionMsg>> {
        self.owner.lock().clone()
    }

    /// Switch the mailbox between the online and the offline bound.
    pub fn set_online(&self, online: bool, limits: &Limits, metrics: &Metrics) {
        let mut mb = self.mailbox.lock();
        mb.online = online;
        let dropped = if online {
            mb.queue.set_limits_keep(limits.max_queue_len, limits.queue_overflow);
            0
        } else {
            let policy = match limits.offline_overflow {
                OverflowPolicy::Disconnect => OverflowPolicy::DropNewest,
                p => p,
            };
            mb.queue.set_limits(limits.max_offline_queue_len, policy)
        };
        Metrics::add(&metrics.dropped_offline_queue_full, dropped);
    }

    /// Queue a delivery and wake the actor if it is not already awake. The only cost on the publisher's side
    /// is this lock and, once per batch, one actor message.
    pub fn push(&self, delivery: Delivery, metrics: &Metrics) {
        let (wake, outcome, online) = {
            let mut mb = self.mailbox.lock();
            let outcome = mb.queue.push(delivery);
            let wake = mb.online && !mb.wake_pending;
            if wake {
                mb.wake_pending = true;
            }
            (wake, outcome, mb.online)
        };
        match outcome {
            PushOutcome::Queued => {}
            PushOutcome::DroppedOldest | PushOutcome::DroppedNewest => {
                let counter = if online {
                    &metrics.dropped_queue_full
                } else {
                    &metrics.dropped_offline_queue_full
                };
                Metrics::add(counter, 1);
            }
            PushOutcome::MustDisconnect => {
                Metrics::add(&metrics.dropped_queue_full, 1);
                if let Some(owner) = self.owner() {
                    let _ = owner.send_message(SessionMsg::QueueOverflow);
                }
            }
        }
        if wake {
            match self.owner() {
                Some(owner) if owner.send_message(SessionMsg::Drain).is_ok() => {}
                // No live actor: the next one drains on start.
                _ => self.mailbox.lock().wake_pending = false,
            }
        }
    }

    /// Take up to `max` queued deliveries; clears the wake flag when the queue is emptied.
    pub fn take(&self, max: usize, out: &mut Vec<Delivery>) -> bool {
        let mut mb = self.mailbox.lock();
        while out.len() < max {
            match mb.queue.pop() {
                Some(d) => out.push(d),
                None => break,
            }
        }
        let more = !mb.queue.is_empty();
        if !more {
            mb.wake_pending = false;
        }
        more
    }

    /// Put back deliveries that could not be sent yet, in order, at the front.
    pub fn put_back(&self, rest: impl DoubleEndedIterator<Item = Delivery>) {
        let mut mb = self.mailbox.lock();
        for d in rest.rev() {
            mb.queue.push_front(d);
        }
    }
}

/// All sessions of this node by client id.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<Arc<str>, Arc<SessionShared>>>,
}

impl SessionStore {
    pub fn get(&self, client_id: &str) -> Option<Arc<SessionShared>> {
        self.sessions.lock().get(client_id).cloned()
    }

    pub fn insert(&self, session: Arc<SessionShared>) {
        self.sessions.lock().insert(session.client_id.clone(), session);
    }

    /// Remove `session` if it is still the one stored under its id.
    pub fn remove(&self, session: &Arc<SessionShared>) {
        let mut map = self.sessions.lock();
        if map.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            map.remove(&session.client_id);
        }
    }

    pub fn all(&self) -> Vec<Arc<SessionShared>> {
        self.sessions.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
