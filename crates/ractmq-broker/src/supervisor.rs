//! A supervisor for a fixed or growing list of children, with a restart strategy and restart intensity.
//!
//! ractor links actors but restarts nothing: a supervisor must spawn the child again itself. This actor holds
//! a start function per child and calls it again when that child fails or is killed; the [`Strategy`] says
//! which of its siblings go with it (OTP's one-for-one, one-for-all, rest-for-one). A child that stops
//! normally is not restarted (OTP's `transient`). More restarts than the policy allows make the supervisor
//! fail, which its own supervisor sees and handles: the escalation OTP calls intensity.
//!
//! The children's specs live in a [`ChildList`] that whoever creates the supervisor hands it. A list made for
//! each start dies with the supervisor; a list kept by the supervisor's own start function outlives its
//! restarts, so children added at run time come back too, in their order.
//!
//! The broker's root, the topic-shard supervisor, the cluster supervisor and library users' supervisors
//! (`user_tree.rs`) are all this actor; only sessions have their own (they are many, dynamic and keyed by
//! client id).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SpawnErr, SupervisionEvent};

use crate::restart::{RestartBudget, RestartPolicy};

pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// How long a sibling taken down by one-for-all or rest-for-one may take to die before the restart goes on.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// How to start (and restart) one child. The function receives the supervisor to link the child to.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) name: String,
    pub(crate) start: Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>,
    /// Called after every restart (not the first start), e.g. to count restarts by kind.
    pub(crate) on_restart: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Times this child was restarted; shared by the spec's clones, so it survives its supervisor's restarts
    /// (which start from clones of the same specs), for the supervision tree operators read.
    pub(crate) restarts: Arc<AtomicU64>,
    /// The child is a supervisor: what the supervision tree shows for it while it is not running.
    pub(crate) supervises: bool,
}

impl ChildSpec {
    /// A child named `name`, started (and restarted) by `start`, which receives the supervisor to
    /// link to.
    pub fn new<F, Fut>(name: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        ChildSpec {
            name: name.into(),
            start: Arc::new(move |sup| Box::pin(start(sup))),
            on_restart: None,
            restarts: Arc::default(),
            supervises: false,
        }
    }

    /// Say that this child is a supervisor, so that the supervision tree shows it as one while it is not
    /// running (a running one is recognised by its messages).
    pub fn supervisor(mut self) -> Self {
        self.supervises = true;
        self
    }

    /// Call `f` after every restart of this child (not the first start).
    pub fn on_restart(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_restart = Some(Arc::new(f));
        self
    }
}

/// Which children a supervisor restarts when one of them fails or is killed (OTP's restart strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that failed: the children are independent.
    #[default]
    OneForOne,
    /// Every child, in start order, the others killed first: each depends on all the others.
    OneForAll,
    /// The child that failed and every child started after it: later children depend on earlier ones.
    RestForOne,
}

impl Strategy {
    /// OTP's name for it, with dashes: `one-for-one`, `one-for-all`, `rest-for-one`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one-for-one",
            Strategy::OneForAll => "one-for-all",
            Strategy::RestForOne => "rest-for-one",
        }
    }
}

/// One child of a supervisor as [`SupervisorMsg::Describe`] answers it.
#[derive(Clone)]
pub struct ChildInfo {
    /// Its name in the supervisor.
    pub name: String,
    /// Its actor now; `None` while it is not running (being restarted, or its start failed).
    pub cell: Option<ActorCell>,
    /// Times its supervisor restarted it.
    pub restarts: u64,
    /// Its spec says it is a supervisor (see [`ChildSpec::supervisor`]).
    pub supervisor: bool,
}

/// A supervisor as [`SupervisorMsg::Describe`] answers it: how it restarts, and its first children.
#[derive(Clone)]
pub struct SupervisorInfo {
    /// Its restart strategy.
    pub strategy: Strategy,
    /// Its restart intensity.
    pub policy: RestartPolicy,
    /// How many children it has, running or not.
    pub children_count: usize,
    /// Its first children in start order, as many as were asked for.
    pub children: Vec<ChildInfo>,
}

/// A supervisor's children in start order, each with its running actor (none until started).
///
/// Shared (cloning shares it) and updated by the supervisor as it starts and restarts children, so that
/// whoever holds it finds the current actor of a child by name without asking the supervisor, which may be
/// busy restarting; a child starting can look up siblings started before it.
#[derive(Clone, Default)]
pub struct ChildList(Arc<Mutex<Vec<Entry>>>);

struct Entry {
    spec: ChildSpec,
    cell: Option<ActorCell>,
}

impl ChildList {
    /// The running actor of the child `name`; `None` if it is not running (or is being restarted).
    pub fn get(&self, name: &str) -> Option<ActorCell> {
        let entries = self.0.lock();
        let cell = entries.iter().find(|e| e.spec.name == name)?.cell.clone()?;
        (cell.get_status() < ActorStatus::Stopping).then_some(cell)
    }

    /// The running children by name, in start order.
    pub fn running(&self) -> Vec<(String, ActorCell)> {
        let entries = self.0.lock();
        let alive = |c: &&ActorCell| c.get_status() < ActorStatus::Stopping;
        (entries.iter())
            .filter_map(|e| e.cell.as_ref().filter(alive).map(|c| (e.spec.name.clone(), c.clone())))
            .collect()
    }

    /// Every child's name, in start order, running or not.
    pub fn names(&self) -> Vec<String> {
        self.0.lock().iter().map(|e| e.spec.name.clone()).collect()
    }

    /// Add a child, to be started by the supervisor this list is given to (when it starts).
    pub(crate) fn push(&self, spec: ChildSpec) {
        self.0.lock().push(Entry { spec, cell: None });
    }

    fn push_running(&self, spec: ChildSpec, cell: ActorCell) {
        self.0.lock().push(Entry { spec, cell: Some(cell) });
    }

    /// The first `limit` children in start order, running or not.
    fn describe(&self, limit: usize) -> (usize, Vec<ChildInfo>) {
        let entries = self.0.lock();
        let alive = |c: &&ActorCell| c.get_status() < ActorStatus::Stopping;
        let listed = (entries.iter().take(limit))
            .map(|e| ChildInfo {
                name: e.spec.name.clone(),
                cell: e.cell.as_ref().filter(alive).cloned(),
                restarts: e.spec.restarts.load(Ordering::Relaxed),
                supervisor: e.spec.supervises,
            })
            .collect();
        (entries.len(), listed)
    }

    fn specs(&self) -> Vec<ChildSpec> {
        self.0.lock().iter().map(|e| e.spec.clone()).collect()
    }

    fn position(&self, cell: &ActorCell) -> Option<usize> {
        let entries = self.0.lock();
        entries
            .iter()
            .position(|e| e.cell.as_ref().is_some_and(|c| c.get_id() == cell.get_id()))
    }

    fn set_cell(&self, index: usize, cell: ActorCell) {
        self.0.lock()[index].cell = Some(cell);
    }

    fn cell_at(&self, index: usize) -> Option<ActorCell> {
        self.0.lock().get(index).and_then(|e| e.cell.clone())
    }
}

impl From<Vec<ChildSpec>> for ChildList {
    fn from(specs: Vec<ChildSpec>) -> Self {
        let list = ChildList::default();
        for spec in specs {
            list.push(spec);
        }
        list
    }
}

/// The supervisor actor (see the module doc); spawn it with [`SupervisorArgs`].
pub struct Supervisor;

/// What a [`Supervisor`] is spawned with: its name, children, restart policy and strategy.
pub struct SupervisorArgs {
    pub(crate) name: String,
    pub(crate) children: ChildList,
    pub(crate) policy: RestartPolicy,
    pub(crate) strategy: Strategy,
}

impl SupervisorArgs {
    /// A one-for-one supervisor of `children`; a `Vec<ChildSpec>` gives it a list of its own, which dies
    /// with it.
    pub fn new(name: impl Into<String>, children: impl Into<ChildList>, policy: RestartPolicy) -> Self {
        SupervisorArgs {
            name: name.into(),
            children: children.into(),
            policy,
            strategy: Strategy::OneForOne,
        }
    }

    /// Restart by `strategy` instead of one-for-one.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
}

/// What a [`Supervisor`] can be asked.
pub enum SupervisorMsg {
    /// Start one more child under this supervisor, after the others. Refused if a child has that name.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, String>>),
    /// The running children by name.
    Children(RpcReplyPort<Vec<(String, ActorCell)>>),
    /// Stop the child of this name and forget it (it is not started again); false if there is none.
    StopChild(String, RpcReplyPort<bool>),
    /// How this supervisor restarts, and its first `limit` children (running or not) in start order.
    Describe(usize, RpcReplyPort<SupervisorInfo>),
}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for SupervisorMsg {}

pub struct SupervisorState {
    name: String,
    children: ChildList,
    strategy: Strategy,
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
        // One at a time and in order, each recorded before the next starts, so a child can find the siblings
        // started before it in the list.
        for (index, spec) in args.children.specs().into_iter().enumerate() {
            let cell = (spec.start)(myself.get_cell()).await?;
            args.children.set_cell(index, cell);
        }
        Ok(SupervisorState {
            name: args.name,
            children: args.children,
            strategy: args.strategy,
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
            SupervisorMsg::StopChild(name, reply) => {
                let removed = {
                    let mut entries = state.children.0.lock();
                    let index = entries.iter().position(|e| e.spec.name == name);
                    index.map(|i| entries.remove(i))
                };
                if let Some(cell) = removed.as_ref().and_then(|e| e.cell.clone()) {
                    let _ = cell.stop_and_wait(Some("stopped".into()), Some(SHUTDOWN_WAIT)).await;
                }
                let _ = reply.send(removed.is_some());
            }
            SupervisorMsg::StartChild(spec, reply) => {
                let answer = if state.children.names().contains(&spec.name) {
                    Err(format!("{} already has a child named {}", state.name, spec.name))
                } else {
                    match (spec.start)(myself.get_cell()).await {
                        // Recorded only once started: a caller told of a failure knows it was not kept.
                        Ok(cell) => {
                            state.children.push_running(spec, cell.clone());
                            Ok(cell)
                        }
                        Err(e) => Err(e.to_string()),
                    }
                };
                let _ = reply.send(answer);
            }
            SupervisorMsg::Children(reply) => {
                let _ = reply.send(state.children.running());
            }
            SupervisorMsg::Describe(limit, reply) => {
                let (children_count, children) = state.children.describe(limit);
                let _ = reply.send(SupervisorInfo {
                    strategy: state.strategy,
                    policy: state.budget.policy(),
                    children_count,
                    children,
                });
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
                // A normal stop: the child is done and is not restarted, now or when this supervisor is.
                let mut entries = state.children.0.lock();
                entries.retain(|e| e.cell.as_ref().is_none_or(|c| c.get_id() != cell.get_id()));
                return Ok(());
            }
            _ => return Ok(()),
        };
        // Not found: an earlier run of a child, taken down by this supervisor for a restart already done.
        let Some(pos) = state.children.position(&cell) else {
            return Ok(());
        };
        let specs = state.children.specs();
        let failed = &specs[pos].name;
        if !state.budget.allow(Instant::now()) {
            tracing::error!(supervisor = %state.name, child = %failed, "child {why}; restart intensity exceeded, escalating");
            return Err(format!("{}: restart intensity exceeded by {failed}", state.name).into());
        }
        let restart = match state.strategy {
            Strategy::OneForOne => pos..pos + 1,
            Strategy::OneForAll => 0..specs.len(),
            Strategy::RestForOne => pos..specs.len(),
        };
        tracing::warn!(supervisor = %state.name, child = %failed, strategy = ?state.strategy, "child {why}; restarting");
        // Siblings go down in reverse start order and are gone before anything starts again, as in OTP, so
        // that no old and new run of a child overlap.
        for index in restart.clone().rev().filter(|&i| i != pos) {
            if let Some(sibling) = state.children.cell_at(index) {
                let _ = sibling.kill_and_wait(Some(SHUTDOWN_WAIT)).await;
            }
        }
        for index in restart {
            let spec = &specs[index];
            let cell = (spec.start)(myself.get_cell()).await?;
            state.children.set_cell(index, cell);
            spec.restarts.fetch_add(1, Ordering::Relaxed);
            if let Some(count) = &spec.on_restart {
                count();
            }
        }
        Ok(())
    }
}
