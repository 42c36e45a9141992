//! How connections and sessions end: a socket closed or a client refused, a takeover here or by another node,
//! a restart after a crash, and what the session core then asks for (the will, the session's end, a timer).

use super::*;

/// Messages still on their way here for `shared` follow it to `node`: a relay takes over its routes in one
/// index change (so they are never withdrawn meanwhile), for `RELAY_FOR`; what reaches the session itself
/// after it packed up is relayed by the router too (see `moving.rs`).
async fn relay_to(kernel: &Kernel, shared: &SessionShared, node: Arc<str>) {
    let filters: Vec<String> = shared.state.lock().subscriptions.keys().cloned().collect();
    let router = kernel.router.clone();
    let client = shared.client_id.clone();
    let (generation, changes) = router.relays.start(&client, node, &filters);
    router.apply(changes).await;
    tokio::spawn(async move {
        tokio::time::sleep(RELAY_FOR).await;
        let changes = router.relays.stop(&client, generation);
        if !changes.is_empty() {
            router.apply(changes).await;
        }
    });
}

/// Publish a will the session core handed over.
pub(super) fn route_will(kernel: &Kernel, will: Message) {
    tracing::debug!(client = ?will.publisher, topic = %will.topic, "publishing will");
    Metrics::add(&kernel.metrics.messages_received, 1);
    kernel.router.route(Arc::new(will));
}

impl SessionState {
    /// Tell the hooks this client's connection ended, if they want to know; `conn` described it.
    fn disconnected_event(&self, conn: Option<&ConnInfo>, reason: &str) {
        if let Some(hooks) = self.kernel.router.hooks_for(HookKind::ClientDisconnected) {
            hooks.event(&ClientEvent::Disconnected {
                client: client_ref(&self.shared.client_id, conn),
                reason,
            });
        }
    }

    /// Another connection took this session: close the old one with 0x8E.
    pub(super) fn takeover(&mut self, mut old: Online) {
        self.disconnected_event(self.shared.conn.lock().clone().as_ref(), "takenover");
        let mut fx = Effects::default();
        old.channel
            .close_with(reason::SESSION_TAKEN_OVER, true, "session taken over".into(), &mut fx);
        old.io.outbox.push(&mut fx.out);
        tracing::info!(client = %self.shared.client_id, peer = %old.peer, "connection closed: session taken over by a new connection");
        // Its will is the session's business: `Session::attach` publishes or cancels it.
        old.io.close();
    }

    /// A connection on another node took this session: close ours as a takeover here would (0x8E, the will
    /// unless delayed), then give the session away and end it here.
    pub(super) async fn hand_over(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        clean_start: bool,
        to: Arc<str>,
        reply: RpcReplyPort<Option<SessionHandover>>,
    ) {
        if self.ending {
            let _ = reply.send(None);
            return;
        }
        // Timers armed for the last connection (expiry, a delayed will) no longer apply.
        self.generation += 1;
        self.hold = None;
        if let Some(old) = self.online.take() {
            self.takeover(old);
            self.shared.conn.lock().take();
            self.shared.set_online(None, &self.kernel.limits, &self.kernel.metrics);
        }
        let will = self
            .shared
            .state
            .lock()
            .take_will_on_takeover(!clean_start, Instant::now());
        if let Some(will) = will {
            route_will(&self.kernel, will);
        }
        let handover = match clean_start {
            true => None,
            false => {
                relay_to(&self.kernel, &self.shared, to.clone()).await;
                Some(self.shared.export(to))
            }
        };
        tracing::info!(client = %self.shared.client_id, resumed = !clean_start, "session handed over to another node");
        self.end_session(myself).await;
        let _ = reply.send(handover);
    }

    pub(super) async fn recover(&mut self, myself: &ActorRef<SessionMsg>) {
        if self.shared.take_restored() {
            tracing::debug!(client = %self.shared.client_id, "session restored from the data dir");
        } else {
            tracing::warn!(client = %self.shared.client_id, "session restarted after a failure; its connection was closed");
        }
        *self.shared.conn.lock() = None;
        self.shared.set_online(None, &self.kernel.limits, &self.kernel.metrics);
        // A session that was offline keeps its deadlines; one that had a connection lost it.
        self.hand_off_shared(None);
        let lapse = self.shared.state.lock().recovered(Instant::now());
        self.lapse(myself, lapse).await;
    }

    pub(super) async fn reader_closed(&mut self, myself: &ActorRef<SessionMsg>, error: Option<DecodeError>) {
        match error {
            None => {
                let close = Close {
                    reason: reason::UNSPECIFIED_ERROR,
                    publish_will: true,
                    why: "connection lost".into(),
                };
                self.end_connection(myself, close).await;
            }
            Some(e) => {
                Metrics::add(&self.kernel.metrics.protocol_errors, 1);
                self.close_by_server(myself, e.reason_code(), &e.to_string()).await;
            }
        }
    }

    /// The broker closes the connection: 5.0 clients are told why first; the will is published.
    pub(super) async fn close_by_server(&mut self, myself: &ActorRef<SessionMsg>, code: u8, why: &str) {
        let Some(online) = self.online.as_mut() else {
            return;
        };
        let mut fx = Effects::default();
        online.channel.close_with(code, true, why.to_string(), &mut fx);
        self.apply_effects(myself, fx).await;
    }

    /// The connection is over: flush and close the socket, then keep or end the session.
    pub(super) async fn end_connection(&mut self, myself: &ActorRef<SessionMsg>, close: Close) {
        let Some(online) = self.online.take() else {
            return;
        };
        self.hold = None;
        self.forget_commit_wait();
        self.generation += 1;
        let reason = format!("0x{:02X}", close.reason);
        if close.publish_will || close.reason >= 0x80 {
            tracing::info!(client = %self.shared.client_id, peer = %online.peer, reason, "connection closed: {}", close.why);
        } else {
            tracing::debug!(client = %self.shared.client_id, peer = %online.peer, reason, "connection closed: {}", close.why);
        }
        online.io.close();
        let conn = self.shared.conn.lock().take();
        // EMQX's names where they apply: `normal` for a DISCONNECT without error.
        let why = if close.reason == 0 {
            "normal"
        } else {
            close.why.as_str()
        };
        self.disconnected_event(conn.as_ref(), why);
        self.shared.set_online(None, &self.kernel.limits, &self.kernel.metrics);
        self.after_disconnect(myself, close.publish_will).await;
    }

    /// No connection any more: the session core decides about the will and the session's end.
    pub(super) async fn after_disconnect(&mut self, myself: &ActorRef<SessionMsg>, publish_will: bool) {
        // A disconnected member does not hold up its shared groups.
        self.hand_off_shared(None);
        let lapse = self.shared.state.lock().disconnected(publish_will, Instant::now());
        self.lapse(myself, lapse).await;
    }

    /// Do what the session core asked (publish the will, end the session), then arm its next deadline.
    pub(super) async fn lapse(&mut self, myself: &ActorRef<SessionMsg>, lapse: Lapse) {
        if let Some(will) = lapse.will {
            route_will(&self.kernel, will);
        }
        if lapse.ended {
            return self.end_session(myself).await;
        }
        // What the store keeps of the session now: no connection, its deadlines.
        crate::durable::changed(&self.kernel, &self.shared, false);
        let due = self.shared.state.lock().poll_timeout();
        if let Some(due) = due {
            let generation = self.generation;
            let after = due.saturating_duration_since(Instant::now());
            myself.send_after(after, move || SessionMsg::Timeout { generation });
        }
    }

    /// Remove every trace of the session, then ask the supervisor to stop this actor.
    pub(super) async fn end_session(&mut self, myself: &ActorRef<SessionMsg>) {
        self.ending = true;
        self.hand_off_shared(None);
        let filters: Vec<String> = {
            let mut session = self.shared.state.lock();
            let filters = session.subscriptions.keys().cloned().collect();
            session.clear();
            filters
        };
        self.unroute(filters).await;
        crate::durable::ended(&self.kernel, &self.shared);
        self.shared.lock_mailbox().queue.clear();
        match self.kernel.session_sup() {
            Some(sup) => {
                let _ = sup.send_message(SessionSupMsg::SessionEnded {
                    client_id: self.shared.client_id.clone(),
                    actor: myself.get_id(),
                });
            }
            None => myself.stop(None),
        }
    }
}
