//! Hibernation: an idle session parks its connection in its gate and its actor stops; the first message for it
//! starts a new actor that takes the connection back. New sessions start this way.

use super::*;

/// Connect a brand-new session without starting an actor for it: it begins hibernated, and its first packet
/// or delivery wakes it. A connect storm (every device of a fleet after a restart) then costs no actor per
/// client until the client does something, and leaves no actor-sized holes in the heap once they go idle.
pub fn open_hibernated(shared: &Arc<SessionShared>, kernel: &Kernel, attach: Attach) {
    // The gate takes messages before the reader starts, so the first packet already finds it.
    shared.begin_hibernate();
    let (online, _) = open(shared, kernel, 1, attach);
    shared.park_new(Box::new(Parked { online, generation: 1 }));
    Metrics::add(&kernel.metrics.sessions_hibernated, 1);
}

impl SessionState {
    /// Check for idleness in `hibernate_after`; activity from now on keeps the session awake.
    pub(super) fn schedule_idle_check(&mut self, myself: &ActorRef<SessionMsg>) {
        self.idle_mark = self.handled;
        let after = self.kernel.config.hibernate_after;
        if after.is_zero() || self.online.is_none() {
            return;
        }
        let generation = self.generation;
        myself.send_after(after, move || SessionMsg::IdleCheck { generation });
    }

    /// Hibernate if nothing but this check happened since the last one and nothing waits to be sent; otherwise
    /// look again later.
    pub(super) fn idle_check(&mut self, myself: &ActorRef<SessionMsg>, generation: u64) {
        let busy = self.handled != self.idle_mark + 1 || self.hold.is_some() || !self.commit_wait.is_empty();
        let quiet = !busy
            && self.shared.lock_mailbox().queue.is_empty()
            && self.online.as_ref().is_some_and(|o| o.io.outbox.is_idle());
        if !quiet {
            self.schedule_idle_check(myself);
            return;
        }
        // From here on messages for the session wait in its gate; those already in our mailbox are handled
        // before the Hibernate message, so none is lost.
        self.shared.begin_hibernate();
        if myself.send_message(SessionMsg::Hibernate { generation }).is_err() {
            self.shared.wake(myself.clone());
        }
    }

    pub(super) async fn hibernate(&mut self, myself: &ActorRef<SessionMsg>, generation: u64) {
        let quiet = self.is_current(generation)
            && self.shared.lock_mailbox().queue.is_empty()
            && self.online.as_ref().is_some_and(|o| o.io.outbox.is_idle());
        // Only a quiet connection is parked; taking it out first would drop a busy one.
        if let Some(online) = quiet.then(|| self.online.take()).flatten() {
            let parked = Box::new(Parked {
                online,
                generation: self.generation,
            });
            match self.shared.park(parked) {
                Ok(()) => {
                    Metrics::add(&self.kernel.metrics.sessions_hibernated, 1);
                    if let Some(sup) = self.kernel.session_sup() {
                        let _ = sup.send_message(SessionSupMsg::Hibernated {
                            client_id: self.shared.client_id.clone(),
                            actor: myself.get_id(),
                        });
                    }
                    myself.stop(Some(HIBERNATED.into()));
                    return;
                }
                Err(parked) => self.online = Some(parked.online),
            }
        }
        // Something arrived: stay awake, and handle what waited in the gate before anything newer.
        let (_, pending) = self.shared.wake(myself.clone());
        for msg in pending {
            Box::pin(self.handle(myself, msg)).await;
        }
        self.schedule_idle_check(myself);
    }

    /// Started to wake a hibernated session: take its parked connection, then what arrived while it slept.
    pub(super) async fn unpark(&mut self, myself: &ActorRef<SessionMsg>) {
        let (parked, pending) = self.shared.wake(myself.clone());
        let Some(parked) = parked else {
            // The connection went while we were being started (the supervisor restarted): recover instead.
            return self.recover(myself).await;
        };
        self.online = Some(parked.online);
        self.generation = parked.generation;
        Metrics::add(&self.kernel.metrics.sessions_woken, 1);
        for msg in pending {
            Box::pin(self.handle(myself, msg)).await;
        }
        self.drain();
        self.schedule_idle_check(myself);
    }
}
