//! Packets that must not reach the client before the store has committed what they promise: acknowledgements
//! of messages whose copies for persistent sessions are not on disk yet, and QoS 2 deliveries whose packet
//! ids are not (see `durable.rs`).
//!
//! They wait here in order, each part with the ticket it waits for, and everything written after them queues
//! behind, so the client sees its packets in the order the protocol made them. Nothing else waits: the actor
//! keeps reading and routing the client's next publishes meanwhile, so many batches share one group commit
//! instead of each waiting for its own (a publisher's window, and the store's own bound, limit how far ahead it
//! gets).

use super::*;

use ractmq_store::Ticket;

/// What waits for commits, and the one task that waits for the oldest of them.
#[derive(Default)]
pub(super) struct CommitWait {
    parts: VecDeque<(Ticket, BytesMut)>,
    waiter: Option<AbortOnDrop>,
}

impl CommitWait {
    pub(super) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

impl SessionState {
    /// Send `out` to the client once `ticket` is committed (at once with none, unless older packets wait).
    pub(super) fn send_out(&mut self, out: &mut BytesMut, ticket: Option<Ticket>) {
        if out.is_empty() {
            return;
        }
        let Some(online) = self.online.as_ref() else {
            return;
        };
        let wait = &mut self.commit_wait;
        let ticket = match (ticket, wait.parts.back()) {
            (None, None) => return online.io.outbox.push(out),
            // Tickets only grow along the queue: a part never waits for less than the one before it.
            (t, last) => t.unwrap_or(0).max(last.map_or(0, |(l, _)| *l)),
        };
        match wait.parts.back_mut() {
            Some((last, bytes)) if *last == ticket => bytes.extend_from_slice(&out.split()),
            _ => wait.parts.push_back((ticket, out.split())),
        }
        if wait.waiter.is_none() {
            self.wait_for_front();
        }
    }

    /// The store committed more: send every part it covers, and wait for the next.
    pub(super) fn commit_made(&mut self) {
        let Some(disk) = self.kernel.disk.clone() else {
            return;
        };
        self.commit_wait.waiter = None;
        let Some(online) = self.online.as_ref() else {
            return;
        };
        while let Some((ticket, _)) = self.commit_wait.parts.front() {
            if !disk.is_committed(*ticket) {
                break;
            }
            if let Some((_, mut bytes)) = self.commit_wait.parts.pop_front() {
                online.io.outbox.push(&mut bytes);
            }
        }
        if !self.commit_wait.parts.is_empty() {
            self.wait_for_front();
        }
    }

    /// The connection is closing: send what waits for a commit (acknowledgements, and the DISCONNECT queued
    /// behind them) once that commit is made, waiting at most `limit` (a group commit takes milliseconds).
    /// Otherwise a client kicked just after a SUBSCRIBE of its persistent session saw its socket close with
    /// neither the SUBACK nor the DISCONNECT telling it why and where to go. Past `limit` the parts are dropped
    /// with the connection, as before: nothing is acknowledged that the store does not hold.
    pub(super) async fn flush_commit_wait(&mut self, limit: std::time::Duration) {
        let (Some(disk), Some((last, _))) = (self.kernel.disk.clone(), self.commit_wait.parts.back()) else {
            return;
        };
        let last = *last;
        if !matches!(tokio::time::timeout(limit, disk.committed(last)).await, Ok(Ok(()))) {
            return;
        }
        let Some(online) = self.online.as_ref() else {
            return;
        };
        for (_, mut bytes) in std::mem::take(&mut self.commit_wait.parts) {
            online.io.outbox.push(&mut bytes);
        }
    }

    /// The connection is gone: what waited for it is dropped (the client sends its publishes again).
    pub(super) fn forget_commit_wait(&mut self) {
        self.commit_wait = CommitWait::default();
    }

    fn wait_for_front(&mut self) {
        let (Some(disk), Some((ticket, _))) = (self.kernel.disk.clone(), self.commit_wait.parts.front()) else {
            return;
        };
        let (ticket, shared, generation) = (*ticket, self.shared.clone(), self.generation);
        let waiter = tokio::spawn(async move {
            if disk.committed(ticket).await.is_ok() {
                shared.send(SessionMsg::Committed { generation });
            }
        });
        self.commit_wait.waiter = Some(AbortOnDrop::new(waiter));
    }
}
