//! A one-for-one supervisor for a fixed or growing list of children, with restart intensity.
//!
//! ractor links actors but restarts nothing: a supervisor must spawn the child again itself. This actor holds
//! a start function per child and calls it again when that child fails or is killed. A child that stops
//! normally is not restarted (OTP's `transient`). More restarts than the policy allows make the supervisor
//! fail, which its own supervisor sees and handles: the escalation OTP calls intensity.
//!
//! The broker's root, the topic-shard supervisor and the supervisor for library users' actors are all this
//! actor; only sessions have their own (they are many, dynamic and keyed by client id).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};

use crate::restart::{RestartBudget, RestartPolicy};

pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// How to start (and restart) one child. The function receives the supervisor to link the child to.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub start: Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>,
    /// Called after every restart (not the first start), e.g. to count restarts by kind.
    pub on_restart: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl ChildSpec {
    pub fn new<F, Fut>(name: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        ChildSpec {
            name: name.into(),
            start: Arc::new(move |sup| Box::pin(start(sup))),
            on_restart: None,
        }
    }

    pub fn on_restart(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_restart = Some(Arc::new(f));
        self
    }
}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub name: String,
    pub children: Vec<ChildSpec>,
    pub policy: RestartPolicy,
}

pub enum SupervisorMsg {
    /// Start one more child under this supervisor.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, String>>),
    /// The running children by name.
    Children(RpcReplyPort<Vec<(String, ActorCell)>>),
}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for SupervisorMsg {}

pub struct SupervisorState {
    name: String,
    children: Vec<(ChildSpec, ActorCell)>,
    budget: RestartBudget,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(args.children.len());
        for spec in args.children {
            let cell = (spec.start)(myself.get_cell()).await?;
            children.push((spec, cell));
        }
        Ok(SupervisorState {
            name: args.name,
            children,
            budget: RestartBudget::new(args.policy),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let started = (spec.start)(myself.get_cell()).await;
                let answer = match started {
                    Ok(cell) => {
                        state.children.push((spec, cell.clone()));
                        Ok(cell)
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(answer);
            }
            SupervisorMsg::Children(reply) => {
                let list = state
                    .children
                    .iter()
                    .map(|(s, c)| (s.name.clone(), c.clone()))
                    .collect();
                let _ = reply.send(list);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) if reason.as_deref() == Some("killed") => {
                (cell, "was killed".to_string())
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                // A normal stop: the child is done and is not restarted.
                state.children.retain(|(_, c)| c.get_id() != cell.get_id());
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(pos) = state.children.iter().position(|(_, c)| c.get_id() == cell.get_id()) else {
            return Ok(());
        };
        let spec = state.children[pos].0.clone();
        if !state.budget.allow(Instant::now()) {
            tracing::error!(supervisor = %state.name, child = %spec.name, "child {why}; restart intensity exceeded, escalating");
            return Err(format!("{}: restart intensity exceeded by {}", state.name, spec.name).into());
        }
        tracing::warn!(supervisor = %state.name, child = %spec.name, "child {why}; restarting it");
        let cell = (spec.start)(myself.get_cell()).await?;
        if let Some(count) = &spec.on_restart {
            count();
        }
        state.children[pos].1 = cell;
        Ok(())
    }
}
