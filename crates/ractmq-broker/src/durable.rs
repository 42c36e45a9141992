//! What a node that keeps sessions on disk writes to its store, and when; and bringing it all back at start.
//!
//! Which change must be stored before which packet leaves is the protocol core's rule (its journal, see
//! `ractmq_protocol::journal`); the store's group commits are `ractmq_store`'s. This file connects the two to
//! the session records: a persistent session's record is written when a client attaches, when its
//! subscriptions change and when its connection ends; its copies as they are queued (`session_store.rs`); its
//! journal as the actor applies its effects; and everything is forgotten when the session ends. A node on
//! `Durability::Memory` has no store and none of this runs: clean sessions never touch it either.

use std::sync::Arc;
use std::time::Instant;

use ractmq_protocol::session::InflightState;
use ractmq_protocol::{Delivery, Journal, Session};
use ractmq_store::{Op, Recovered, SessionRecord, Store, Ticket};

use crate::kernel::Kernel;
use crate::session_store::SessionShared;

/// A session the store keeps: one that outlives its connection.
fn keeps(kernel: &Kernel, session: &Session) -> bool {
    kernel.disk.is_some() && session.expiry_interval > 0
}

fn record(session: &Session, connected: bool) -> Op {
    let mut snapshot = session.snapshot([], Instant::now());
    // Stored one by one, as they change.
    snapshot.inflight.clear();
    snapshot.awaiting_rel.clear();
    Op::Session {
        client: session.client_id.clone(),
        record: Box::new(SessionRecord {
            session: snapshot,
            connected,
        }),
    }
}

/// A client attached to `shared` (its `session` locked by the caller): a session that did not carry on is
/// forgotten, and one the store keeps is written, with anything it holds that the store does not have yet (a
/// session taken over from another node).
pub(crate) fn attached(kernel: &Kernel, shared: &SessionShared, session: &mut Session, session_present: bool) {
    let Some(disk) = &kernel.disk else {
        return;
    };
    let keep = keeps(kernel, session);
    if shared.is_persistent() && (!session_present || !keep) {
        disk.submit(Op::EndSession {
            client: shared.client_id.clone(),
        });
    }
    session.persistent = keep;
    shared.set_persistent(keep);
    if keep {
        disk.submit(record(session, true));
        adopt(disk, shared, session);
    }
}

/// Hand the store the copies `shared` holds that it has no number for.
fn adopt(disk: &Store, shared: &SessionShared, session: &mut Session) {
    let client = &shared.client_id;
    let mut ops = Vec::new();
    let number = |d: &mut Delivery, ops: &mut Vec<Op>| {
        let stored = disk.next_copy();
        d.stored = Some(stored);
        ops.push(Op::Copy {
            client: client.clone(),
            stored,
            delivery: d.clone(),
        });
        stored
    };
    for entry in session.inflight.iter_mut().filter(|e| e.delivery.stored.is_none()) {
        let stored = number(&mut entry.delivery, &mut ops);
        let exactly_once = entry.state != InflightState::AwaitingPuback;
        ops.push(journal_op(
            client,
            Journal::Sent {
                stored,
                pkid: entry.pkid,
                exactly_once,
            },
        ));
        if entry.state == InflightState::AwaitingPubcomp {
            ops.push(journal_op(client, Journal::Received { stored }));
        }
    }
    for pkid in &session.awaiting_rel {
        ops.push(journal_op(client, Journal::AwaitingRelease { pkid: *pkid }));
    }
    shared.number_queued(|d| {
        if d.stored.is_none() {
            number(d, &mut ops);
        }
    });
    disk.submit_all(ops);
}

fn journal_op(client: &Arc<str>, entry: Journal) -> Op {
    Op::Journal {
        client: client.clone(),
        entry,
    }
}

/// The session's record changed (subscriptions, a connection ended): write it again. The ticket is what a
/// SUBACK waits for.
pub(crate) fn changed(kernel: &Kernel, shared: &SessionShared, connected: bool) -> Option<Ticket> {
    let disk = kernel.disk.as_ref().filter(|_| shared.is_persistent())?;
    let op = record(&shared.state.lock(), connected);
    Some(disk.submit(op))
}

/// The session ended here (expired, replaced, moved to another node): the store forgets it.
pub(crate) fn ended(kernel: &Kernel, shared: &SessionShared) {
    if let Some(disk) = kernel.disk.as_ref().filter(|_| shared.is_persistent()) {
        disk.submit(Op::EndSession {
            client: shared.client_id.clone(),
        });
    }
    shared.set_persistent(false);
}

/// Hand the store what the session's protocol core journalled; the ticket of the last entry.
pub(crate) fn journal(kernel: &Kernel, client: &Arc<str>, entries: &mut Vec<Journal>) -> Option<Ticket> {
    let disk = kernel.disk.as_ref()?;
    if entries.is_empty() {
        return None;
    }
    disk.submit_all(entries.drain(..).map(|entry| journal_op(client, entry)))
}

/// Bring back what the store held, before any actor starts: retained messages into the router, sessions into
/// the session store (the session supervisor then starts each in recovery mode, as after its own restart), bans
/// into security.
pub(crate) fn restore(kernel: &Arc<Kernel>, recovered: Recovered) {
    let started = Instant::now();
    let now = Instant::now();
    let (sessions, retained) = (recovered.sessions.len(), recovered.retained.len());
    let mut messages = 0;
    if let Some(disk) = &kernel.disk {
        kernel
            .security
            .restore_bans(disk, recovered.space(crate::security::BANS));
    }
    *kernel.stored_state.lock() = (recovered.operator.iter())
        .filter(|(space, _, _)| space != crate::security::BANS)
        .cloned()
        .collect();
    {
        let mut store = kernel.router.retained.write();
        for message in recovered.retained {
            store.set(Arc::new(message.into_message(now)), kernel.config.limits.max_retained);
        }
    }
    for saved in recovered.sessions {
        let client: Arc<str> = saved.session.client_id.as_str().into();
        let shared = SessionShared::new(
            client,
            &kernel.limits,
            kernel.session_sup.clone(),
            kernel.metrics.clone(),
            kernel.disk.clone(),
        );
        let (mut session, queued) = saved.session.restore(now);
        for (entry, stored) in session.inflight.iter_mut().zip(saved.inflight_numbers) {
            entry.delivery.stored = Some(stored);
        }
        session.persistent = true;
        messages += session.inflight.len() + queued.len();
        *shared.state.lock() = session;
        shared.set_persistent(true);
        shared.restore_queue(queued.into_iter().zip(saved.queued_numbers).map(|(mut d, stored)| {
            d.stored = Some(stored);
            d
        }));
        shared.mark_restored();
        kernel.store.insert(shared);
    }
    if sessions + retained == 0 {
        return;
    }
    tracing::info!(
        sessions,
        messages,
        retained,
        expired = recovered.expired,
        took_ms = started.elapsed().as_millis() as u64,
        "restored from the data dir"
    );
}
