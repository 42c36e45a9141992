//! Supervision trees of a program's own actors beside the broker's: named supervisors with a restart strategy,
//! a restart intensity and ordered children, nested as deep as needed, under the broker's `user` supervisor.
//!
//! It exists so that a program embedding the broker supervises its actors the OTP way without writing a
//! supervisor: [`TreeSpec`] describes one, [`Tree`] is the handle to it once started. The actor behind both
//! is the broker's generic [`Supervisor`]; what this module adds is that a tree's child specs live in its
//! handle, not in the supervisor actor, so a supervisor restarted by its parent (escalation) starts every
//! child again in order, those added at run time included, and the handle finds each child's current actor
//! by name across restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorRef, Message};

use crate::metrics::Metrics;
use crate::restart::RestartPolicy;
use crate::supervisor::{ChildList, ChildSpec, Strategy, Supervisor, SupervisorArgs, SupervisorMsg};

/// Why a child or a tree could not be started at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// The supervisor is not running: it is being restarted (try again) or the broker has stopped.
    Unavailable,
    /// The supervisor refused the child (a sibling has that name) or its start function failed.
    Refused(String),
}

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeError::Unavailable => f.write_str("supervisor unavailable"),
            TreeError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TreeError {}

/// A supervisor to start: its name, [`Strategy`], restart intensity and children in start order.
///
/// Children start one after the other in the order given and are restarted as the strategy says. More than
/// `max_restarts` restarts within `period` make the supervisor fail, and its parent deals with that
/// (escalation). The defaults are OTP's: one-for-one, 1 restart in 5 s.
///
/// ```no_run
/// # async fn run(broker: ractmq_broker::Broker) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use ractmq_broker::{ChildSpec, Strategy, TreeSpec};
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
///
/// struct Stage;
/// impl Actor for Stage {
///     type Msg = String;
///     type State = ();
///     type Arguments = ();
///     async fn pre_start(&self, _: ActorRef<String>, _: ()) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
/// }
/// let stage = |name: &str| {
///     ChildSpec::new(name, |sup| async move { Ok(Actor::spawn_linked(None, Stage, (), sup).await?.0.get_cell()) })
/// };
/// let spec = TreeSpec::new("pipeline")
///     .strategy(Strategy::RestForOne)
///     .intensity(5, Duration::from_secs(10))
///     .child(stage("parse"))
///     .child(stage("store"));
/// let pipeline = broker.user_tree().start_tree(spec).await?;
/// let parse: ActorRef<String> = pipeline.actor("parse").expect("running");
/// parse.send_message("hello".into())?;
/// # Ok(())
/// # }
/// ```
pub struct TreeSpec {
    policy: RestartPolicy,
    strategy: Strategy,
    tree: Tree,
}

impl TreeSpec {
    /// A one-for-one supervisor named `name` with no children yet, allowing 1 restart in 5 s.
    pub fn new(name: impl Into<String>) -> TreeSpec {
        TreeSpec {
            policy: RestartPolicy::new(1, 5),
            strategy: Strategy::OneForOne,
            tree: Tree(Arc::new(TreeInner {
                name: name.into(),
                children: ChildList::default(),
                subtrees: Mutex::new(HashMap::new()),
                supervisor: Mutex::new(None),
            })),
        }
    }

    /// Restart by `strategy` instead of one-for-one.
    pub fn strategy(mut self, strategy: Strategy) -> TreeSpec {
        self.strategy = strategy;
        self
    }

    /// At most `max_restarts` restarts within `period`; one more makes the supervisor fail (escalate).
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> TreeSpec {
        self.policy = RestartPolicy {
            max_restarts,
            window: period,
        };
        self
    }

    /// Add a child, started after those added before it.
    pub fn child(self, spec: ChildSpec) -> TreeSpec {
        self.tree.0.children.push(spec);
        self
    }

    /// Add a nested supervisor as the next child; find its handle with [`Tree::subtree`].
    pub fn subtree(self, spec: TreeSpec) -> TreeSpec {
        let nested = spec.tree.clone();
        self.tree.0.subtrees.lock().insert(nested.name().to_string(), nested);
        self.child(spec.into())
    }

    /// The handle the tree will have once started, for start functions that look up siblings by name
    /// (a child finds those started before it).
    pub fn handle(&self) -> Tree {
        self.tree.clone()
    }
}

impl From<TreeSpec> for ChildSpec {
    /// How its parent starts the tree's supervisor, each time with the same children.
    fn from(spec: TreeSpec) -> ChildSpec {
        let TreeSpec { policy, strategy, tree } = spec;
        ChildSpec::new(tree.name().to_string(), move |parent| {
            let tree = tree.clone();
            async move {
                let args = SupervisorArgs::new(tree.name(), tree.0.children.clone(), policy).strategy(strategy);
                let (actor, _) = Actor::spawn_linked(None, Supervisor, args, parent).await?;
                *tree.0.supervisor.lock() = Some(actor.clone());
                Ok(actor.get_cell())
            }
        })
        .supervisor()
    }
}

/// A running supervision tree (or one about to start): finds its children's current actors by name and
/// starts more children. Cloning it is cheap; every clone sees the same tree, whatever restarted since.
#[derive(Clone)]
pub struct Tree(Arc<TreeInner>);

struct TreeInner {
    name: String,
    /// The specs outlive the supervisor: each of its runs starts from them.
    children: ChildList,
    subtrees: Mutex<HashMap<String, Tree>>,
    supervisor: Mutex<Option<ActorRef<SupervisorMsg>>>,
}

impl Tree {
    /// The name the tree was made with.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current actor of the child `name`, if it is running and takes `M`. An `ActorRef` dies with the
    /// run of the child it was taken from; ask again after a restart.
    pub fn actor<M: Message>(&self, name: &str) -> Option<ActorRef<M>> {
        let cell = self.cell(name)?;
        (cell.is_message_type_of::<M>() != Some(false)).then(|| cell.into())
    }

    /// The current actor of the child `name` (a worker or a nested supervisor), if it is running.
    pub fn cell(&self, name: &str) -> Option<ActorCell> {
        self.0.children.get(name)
    }

    /// The handle of the nested supervisor `name`.
    pub fn subtree(&self, name: &str) -> Option<Tree> {
        self.0.subtrees.lock().get(name).cloned()
    }

    /// Every child's name, in start (and restart) order.
    pub fn children(&self) -> Vec<String> {
        self.0.children.names()
    }

    /// This tree's supervisor actor, if it is running.
    pub fn supervisor(&self) -> Option<ActorRef<SupervisorMsg>> {
        let current = self.0.supervisor.lock().clone()?;
        (current.get_status() < ractor::ActorStatus::Stopping).then_some(current)
    }

    /// Start one more child, after the others. It is kept: when this tree's supervisor is restarted, it is
    /// started again in its place in the order.
    ///
    /// ```no_run
    /// # async fn run(broker: ractmq_broker::Broker) -> Result<(), Box<dyn std::error::Error>> {
    /// use ractmq_broker::ChildSpec;
    /// use ractor::{Actor, ActorProcessingErr, ActorRef};
    ///
    /// struct Worker;
    /// impl Actor for Worker {
    ///     type Msg = u32;
    ///     type State = ();
    ///     type Arguments = ();
    ///     async fn pre_start(&self, _: ActorRef<u32>, _: ()) -> Result<(), ActorProcessingErr> {
    ///         Ok(())
    ///     }
    /// }
    /// let spec = ChildSpec::new("worker", |sup| async move {
    ///     Ok(Actor::spawn_linked(None, Worker, (), sup).await?.0.get_cell())
    /// });
    /// let worker: ActorRef<u32> = broker.user_tree().start_child(spec).await?.into();
    /// worker.send_message(7)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, TreeError> {
        let supervisor = self.supervisor().ok_or(TreeError::Unavailable)?;
        match ractor::call!(supervisor, SupervisorMsg::StartChild, spec) {
            Ok(started) => started.map_err(TreeError::Refused),
            Err(_) => Err(TreeError::Unavailable),
        }
    }

    /// Stop the child `name` and forget it: it is not started again, by this tree's restarts either. False if
    /// the tree has no such child.
    pub async fn stop_child(&self, name: &str) -> Result<bool, TreeError> {
        let supervisor = self.supervisor().ok_or(TreeError::Unavailable)?;
        ractor::call!(supervisor, SupervisorMsg::StopChild, name.to_string()).map_err(|_| TreeError::Unavailable)
    }

    /// Start a nested supervisor with its children, after the other children; returns its handle.
    pub async fn start_tree(&self, spec: TreeSpec) -> Result<Tree, TreeError> {
        let nested = spec.handle();
        self.start_child(spec.into()).await?;
        (self.0.subtrees.lock()).insert(nested.name().to_string(), nested.clone());
        Ok(nested)
    }
}

/// The broker's `user` supervisor (one-for-one, 10 restarts in 10 s, counted as `other_restarts`): its handle
/// and how the root starts it.
pub(crate) fn user_supervisor(metrics: &Arc<Metrics>) -> (Tree, ChildSpec) {
    empty_supervisor("user", metrics)
}

/// An empty one-for-one supervisor of the root (10 restarts in 10 s, counted as `other_restarts`) that
/// children are added to at run time: `user`, `bridges`.
pub(crate) fn empty_supervisor(name: &str, metrics: &Arc<Metrics>) -> (Tree, ChildSpec) {
    let spec = TreeSpec::new(name).intensity(10, Duration::from_secs(10));
    let tree = spec.handle();
    let counter = metrics.clone();
    let child = ChildSpec::from(spec).on_restart(move || Metrics::add(&counter.other_restarts, 1));
    (tree, child)
}
