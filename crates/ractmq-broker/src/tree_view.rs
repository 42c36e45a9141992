//! The live supervision tree of a node, walked from the root for operators (`GET /api/v1/supervision`): who
//! supervises whom now, how each supervisor restarts, and how often each actor was restarted.
//!
//! It exists so that the tree of supervision.md can be seen running rather than read. Each supervisor is asked
//! for its children ([`SupervisorMsg::Describe`], [`SessionSupMsg::Describe`]); siblings are asked at once and
//! every question shares one deadline, so a supervisor busy restarting its children (which cannot answer)
//! costs the walk at most that deadline and shows with no children, and an actor that dies during the walk is
//! shown as it was found. At most [`MAX_LISTED`] children are listed per supervisor (a node may have a hundred
//! thousand sessions); the count says how many there are.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::join_all;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, ActorStatus, Message, RpcReplyPort};
use tokio::time::Instant;

use crate::kernel::Kernel;
use crate::restart::RestartPolicy;
use crate::session_msg::SessionSupMsg;
use crate::supervisor::{Strategy, SupervisorMsg};

/// The most children listed per supervisor.
pub const MAX_LISTED: usize = 50;

/// How long a whole walk may wait for answers: an operator's page must not hang on a busy supervisor.
const BUDGET: Duration = Duration::from_millis(900);

/// One actor of the tree, with the part of the tree below it.
#[derive(Debug, Clone)]
pub struct TreeNode {
    /// Its name in its supervisor (`root`, `shards`, `shard-0`, a client id, a bridge's name...).
    pub name: String,
    /// It is a supervisor (else a worker).
    pub supervisor: bool,
    /// `running`, `starting`, `stopping` or `stopped` (a child with no actor now).
    pub status: &'static str,
    /// How it restarts its children, when it is a supervisor that answered.
    pub strategy: Option<Strategy>,
    /// Its restart intensity, when it is a supervisor that answered.
    pub intensity: Option<RestartPolicy>,
    /// Times its supervisor restarted it since the node started.
    pub restarts: u64,
    /// How many children it has, listed or not (0 for a supervisor that did not answer in time).
    pub children_count: usize,
    /// Its first children in start order, at most [`MAX_LISTED`].
    pub children: Vec<TreeNode>,
    /// For the session supervisor: sessions with no actor now (hibernated).
    pub hibernated: Option<usize>,
}

impl TreeNode {
    /// An actor as the walk first finds it: no children, no strategy, until it answers for them.
    fn found(name: String, supervisor: bool, status: &'static str, restarts: u64) -> TreeNode {
        TreeNode {
            name,
            supervisor,
            status,
            strategy: None,
            intensity: None,
            restarts,
            children_count: 0,
            children: Vec::new(),
            hibernated: None,
        }
    }
}

type Walk<'a> = Pin<Box<dyn Future<Output = TreeNode> + Send + 'a>>;

/// The tree from the root supervisor down, as it is now.
pub(crate) async fn walk(kernel: &Kernel) -> TreeNode {
    let deadline = Instant::now() + BUDGET;
    let root = kernel.root().map(|r| r.get_cell());
    node(kernel, "root".into(), root, 0, true, deadline).await
}

/// The node of `cell` (`None`: a child not running now), its children asked for before `deadline`.
fn node(
    kernel: &Kernel,
    name: String,
    cell: Option<ActorCell>,
    restarts: u64,
    supervisor: bool,
    deadline: Instant,
) -> Walk<'_> {
    Box::pin(async move {
        let found = cell.as_ref().map_or("stopped", |c| status(c.get_status()));
        let mut node = TreeNode::found(name, supervisor, found, restarts);
        let Some(cell) = cell else {
            return node;
        };
        if cell.is_message_type_of::<SupervisorMsg>() == Some(true) {
            node.supervisor = true;
            let asked = ask(cell.into(), |r| SupervisorMsg::Describe(MAX_LISTED, r), deadline).await;
            if let Some(info) = asked {
                node.strategy = Some(info.strategy);
                node.intensity = Some(info.policy);
                node.children_count = info.children_count;
                let children = (info.children.into_iter())
                    .map(|c| self::node(kernel, c.name, c.cell, c.restarts, c.supervisor, deadline));
                node.children = join_all(children).await;
            }
        } else if cell.is_message_type_of::<SessionSupMsg>() == Some(true) {
            // The session supervisor restarts each session alone, within the node's session intensity.
            node.supervisor = true;
            node.strategy = Some(Strategy::OneForOne);
            node.intensity = Some(kernel.config.session_restarts);
            node.hibernated = Some(0);
            let asked = ask(cell.into(), |r| SessionSupMsg::Describe(MAX_LISTED, r), deadline).await;
            if let Some(sessions) = asked {
                node.children_count = sessions.awake;
                node.hibernated = Some(sessions.hibernated);
                node.children = (sessions.listed.into_iter())
                    .map(|(client_id, cell, restarts)| {
                        TreeNode::found(client_id.to_string(), false, status(cell.get_status()), restarts)
                    })
                    .collect();
            }
        }
        node
    })
}

/// `actor`'s answer, or `None` if it is not running or does not answer before `deadline`.
async fn ask<M: Message, T: Send + 'static>(
    actor: ActorRef<M>,
    message: impl FnOnce(RpcReplyPort<T>) -> M,
    deadline: Instant,
) -> Option<T> {
    if actor.get_status() != ActorStatus::Running {
        return None;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    match actor.call(message, Some(left)).await {
        Ok(CallResult::Success(answer)) => Some(answer),
        _ => None,
    }
}

/// ractor's status in the four words operators read.
fn status(status: ActorStatus) -> &'static str {
    match status {
        ActorStatus::Unstarted | ActorStatus::Starting => "starting",
        ActorStatus::Running | ActorStatus::Upgrading => "running",
        ActorStatus::Draining | ActorStatus::Stopping => "stopping",
        ActorStatus::Stopped => "stopped",
    }
}
