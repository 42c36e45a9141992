//! The session supervisor: registry of session actors by client id, and their one-for-one restarts.
//!
//! Every CONNECT that passed its checks comes here, so this is the one place that decides whether a client id
//! starts a new session, resumes one, or takes one over; serialising those decisions in one actor is what makes
//! a client id unique. When a session actor fails or is killed it is restarted on the same `SessionShared`
//! (from the session store) without a connection; the client reconnects and resumes. More restarts than the
//! intensity allows make this supervisor fail: the root restarts it, and its `pre_start` brings every session in
//! the store back the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::restart::RestartBudget;
use crate::session_actor::{open_hibernated, SessionActor, SessionArgs};
use crate::session_msg::{Attach, SessionActors, SessionMsg, SessionSupMsg};
use crate::session_store::SessionShared;

pub struct SessionSup;

/// A session of this node and its actor (`None` while the session hibernates).
type Registered = (Arc<SessionShared>, Option<ActorRef<SessionMsg>>);

pub struct SessionSupState {
    kernel: Arc<Kernel>,
    sessions: HashMap<Arc<str>, Registered>,
    by_actor: HashMap<ActorId, Arc<str>>,
    budget: RestartBudget,
}

impl Actor for SessionSup {
    type Msg = SessionSupMsg;
    type State = SessionSupState;
    type Arguments = Arc<Kernel>;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionSupMsg>,
        kernel: Arc<Kernel>,
    ) -> Result<SessionSupState, ActorProcessingErr> {
        let mut state = SessionSupState {
            budget: RestartBudget::new(kernel.config.session_restarts),
            kernel,
            sessions: HashMap::new(),
            by_actor: HashMap::new(),
        };
        // After our own restart: every stored session gets an actor again (their connections died with us).
        for shared in state.kernel.store.all() {
            state.spawn(&myself, shared, SessionMsg::Recover).await?;
        }
        *state.kernel.session_sup.write() = Some(myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionSupMsg>,
        msg: SessionSupMsg,
        state: &mut SessionSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionSupMsg::Attach(attach) => state.attach(&myself, attach).await?,
            SessionSupMsg::Hibernated { client_id, actor } => {
                if let Some((shared, current)) = state.sessions.get_mut(&client_id) {
                    if current.as_ref().is_some_and(|a| a.get_id() == actor) {
                        *current = None;
                        state.by_actor.remove(&actor);
                        if shared.wants_waking() {
                            let shared = shared.clone();
                            state.spawn(&myself, shared, SessionMsg::Unpark).await?;
                        }
                    }
                }
            }
            SessionSupMsg::Wake(client_id) => {
                if let Some((shared, None)) = state.sessions.get(&client_id) {
                    if shared.wants_waking() {
                        let shared = shared.clone();
                        state.spawn(&myself, shared, SessionMsg::Unpark).await?;
                    }
                }
            }
            SessionSupMsg::SessionEnded { client_id, actor } => {
                if let Some((shared, Some(current))) = state.sessions.get(&client_id) {
                    if current.get_id() == actor {
                        state.kernel.store.remove(shared);
                        state.by_actor.remove(&actor);
                        let _ = current.send_message(SessionMsg::Stop);
                        state.sessions.remove(&client_id);
                    }
                }
            }
            SessionSupMsg::Send { client_id, msg, reply } => {
                let sent = state
                    .sessions
                    .get(client_id.as_str())
                    .is_some_and(|(shared, _)| shared.send(msg));
                let _ = reply.send(sent);
            }
            SessionSupMsg::Kill { client_id, reply } => {
                let found = match state.sessions.get(client_id.as_str()) {
                    Some((_, Some(actor))) => {
                        actor.kill();
                        true
                    }
                    // Hibernated: what killing its actor would do is close the connection and restart.
                    Some((shared, None)) => {
                        let shared = shared.clone();
                        state.sessions.remove(client_id.as_str());
                        state.restart(&myself, shared, "was killed while hibernated").await?;
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            SessionSupMsg::List(reply) => {
                let _ = reply.send(state.sessions.keys().cloned().collect());
            }
            SessionSupMsg::Describe(limit, reply) => {
                let _ = reply.send(state.describe(limit));
            }
            SessionSupMsg::HandOver {
                client_id,
                clean_start,
                to,
                reply,
            } => {
                // To the live actor, or through the gate of a hibernated session (which wakes it). With no
                // actor at all (between a failure and its restart) the port drops, and the asking node goes on
                // as if there were no session.
                if let Some((shared, _)) = state.sessions.get(client_id.as_str()) {
                    let _ = shared.try_send(SessionMsg::HandOver { clean_start, to, reply });
                } else {
                    let _ = reply.send(None);
                }
            }
            SessionSupMsg::Import {
                client_id,
                handover,
                reply,
            } => {
                if state.sessions.contains_key(&client_id) {
                    let _ = reply.send(None);
                } else {
                    let shared = SessionShared::new(
                        client_id,
                        &state.kernel.limits,
                        state.kernel.session_sup.clone(),
                        state.kernel.metrics.clone(),
                        state.kernel.disk.clone(),
                    );
                    shared.import(*handover, &state.kernel.metrics);
                    state.kernel.store.insert(shared.clone());
                    state.sessions.insert(shared.client_id.clone(), (shared.clone(), None));
                    let _ = reply.send(Some(shared));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SessionSupMsg>,
        event: SupervisionEvent,
        state: &mut SessionSupState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) if reason.as_deref() == Some("killed") => {
                (cell, "was killed".into())
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                // Stopped by us after its session ended.
                state.by_actor.remove(&cell.get_id());
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(client_id) = state.by_actor.remove(&cell.get_id()) else {
            return Ok(());
        };
        let Some((shared, _)) = state.sessions.remove(&client_id) else {
            return Ok(());
        };
        state.restart(&myself, shared, &why).await
    }
}

/// However this supervisor ends (stopped, killed with the tree at shutdown, failed), its session actors end
/// with it; hibernated sessions have no actor, so their parked connections are closed here.
impl Drop for SessionSupState {
    fn drop(&mut self) {
        for (shared, _) in self.sessions.values() {
            shared.close_parked();
        }
    }
}

impl SessionSupState {
    /// The awake session actors, the first `limit` by start order (actor ids grow as actors start), without
    /// sorting them all: a node may have a hundred thousand.
    fn describe(&self, limit: usize) -> SessionActors {
        let mut awake: Vec<_> = (self.sessions.iter())
            .filter_map(|(id, (shared, actor))| actor.as_ref().map(|a| (a.get_id().pid(), id, shared, a)))
            .collect();
        let count = awake.len();
        if count > limit {
            if limit == 0 {
                awake.clear();
            } else {
                awake.select_nth_unstable_by_key(limit - 1, |a| a.0);
                awake.truncate(limit);
            }
        }
        awake.sort_unstable_by_key(|a| a.0);
        SessionActors {
            awake: count,
            hibernated: self.sessions.len() - count,
            listed: (awake.into_iter())
                .map(|(_, id, shared, actor)| (id.clone(), actor.get_cell(), Metrics::get(&shared.restarts)))
                .collect(),
        }
    }

    /// The session's actor is gone (`why`): its connection goes with it, and a new actor starts on the stored
    /// session, within the restart intensity.
    async fn restart(
        &mut self,
        myself: &ActorRef<SessionSupMsg>,
        shared: Arc<SessionShared>,
        why: &str,
    ) -> Result<(), ActorProcessingErr> {
        let client_id = shared.client_id.clone();
        shared.set_owner(None);
        if !self.budget.allow(Instant::now()) {
            tracing::error!(client = %client_id, "session actor {why}; session restart intensity exceeded, escalating");
            return Err("session restart intensity exceeded".into());
        }
        tracing::warn!(client = %client_id, "session actor {why}; restarting it from the session store");
        Metrics::add(&self.kernel.metrics.session_restarts, 1);
        Metrics::add(&shared.restarts, 1);
        self.spawn(myself, shared, SessionMsg::Recover).await
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SessionSupMsg>,
        shared: Arc<SessionShared>,
        first: SessionMsg,
    ) -> Result<(), ActorProcessingErr> {
        let args = SessionArgs {
            shared: shared.clone(),
            kernel: self.kernel.clone(),
            first,
        };
        let (actor, _) = Actor::spawn_linked(None, SessionActor, args, myself.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), shared.client_id.clone());
        self.sessions.insert(shared.client_id.clone(), (shared, Some(actor)));
        Ok(())
    }

    async fn attach(
        &mut self,
        myself: &ActorRef<SessionSupMsg>,
        mut attach: Box<Attach>,
    ) -> Result<(), ActorProcessingErr> {
        let client_id = attach.accepted.client_id.clone();
        if let Some((shared, _)) = self.sessions.get(&client_id) {
            attach.session_present = !attach.accepted.clean_start;
            // To the live actor, or through the gate of a hibernated session, which wakes it.
            match shared.try_send(SessionMsg::Attach(attach)) {
                Ok(()) => return Ok(()),
                Err(SessionMsg::Attach(back)) => {
                    // The actor died and its supervision event is not handled yet: restart it with this connection.
                    attach = back;
                    if let Some((shared, old)) = self.sessions.remove(&client_id) {
                        if let Some(old) = old {
                            self.by_actor.remove(&old.get_id());
                        }
                        return self.spawn(myself, shared, SessionMsg::Attach(attach)).await;
                    }
                }
                Err(_) => return Ok(()),
            }
        }
        attach.session_present = false;
        let shared = SessionShared::new(
            client_id,
            &self.kernel.limits,
            self.kernel.session_sup.clone(),
            self.kernel.metrics.clone(),
            self.kernel.disk.clone(),
        );
        self.kernel.store.insert(shared.clone());
        if self.kernel.config.hibernate_after.is_zero() {
            return self.spawn(myself, shared, SessionMsg::Attach(attach)).await;
        }
        // A new session has nothing to do until its client speaks: it starts hibernated.
        open_hibernated(&shared, &self.kernel, *attach);
        self.sessions.insert(shared.client_id.clone(), (shared, None));
        Ok(())
    }
}
