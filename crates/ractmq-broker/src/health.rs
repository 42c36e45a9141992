//! Health, for load balancers and Kubernetes probes: a node is *live* while its root supervisor runs (if not,
//! restarting the process is the fix), and *ready* while every supervisor and listener under the root runs and
//! it is not draining (if not, send clients elsewhere for now).

use std::time::Duration;

use ractor::{ActorCell, ActorRef, ActorStatus};

use crate::kernel::Kernel;
use crate::supervisor::SupervisorMsg;

/// How long a supervisor may take to list its children; one busy restarting them is not ready.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The children whose own children are checked too.
const NESTED: &[&str] = &["shards", "user", "cluster"];

/// A node's health, as [`Broker::health`](crate::Broker::health) checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The root supervisor runs (if not, restart the process).
    pub live: bool,
    /// Every supervisor and listener under the root runs and the node is not draining (if not, send
    /// clients elsewhere for now).
    pub ready: bool,
    /// Each actor checked, by its place in the tree (`root/shards/shard-0`), and whether it runs; plus
    /// `accepting` (false while the node drains).
    pub checks: Vec<(String, bool)>,
    /// Why the broker stopped by itself, if it did.
    pub down: Option<String>,
}

/// Check the tree now.
pub async fn check(kernel: &Kernel) -> Health {
    let down = kernel.down();
    let root = kernel.root().filter(|r| r.get_status() == ActorStatus::Running);
    let mut checks = vec![("root".to_string(), root.is_some())];
    if let Some(root) = root {
        match children(root).await {
            Some(list) => {
                for (name, cell) in list {
                    let path = format!("root/{name}");
                    checks.push((path.clone(), running(&cell)));
                    if NESTED.contains(&name.as_str()) && running(&cell) {
                        match children(&ActorRef::from(cell)).await {
                            Some(nested) => {
                                checks.extend(nested.into_iter().map(|(n, c)| (format!("{path}/{n}"), running(&c))))
                            }
                            None => checks.push((format!("{path}/*"), false)),
                        }
                    }
                }
            }
            None => checks.push(("root/*".into(), false)),
        }
    }
    checks.push(("accepting".into(), !kernel.is_draining()));
    // Evacuated by an operator: clients go to the other nodes.
    checks.push(("evacuating".into(), !kernel.is_evacuating()));
    // Above the memory high watermark the node refuses new clients: send them elsewhere.
    checks.push(("memory".into(), !kernel.overload.is_overloaded()));
    let live = down.is_none() && checks[0].1;
    let ready = live && checks.iter().all(|(_, up)| *up);
    Health {
        live,
        ready,
        checks,
        down,
    }
}

async fn children(sup: &ActorRef<SupervisorMsg>) -> Option<Vec<(String, ActorCell)>> {
    ractor::call_t!(sup, SupervisorMsg::Children, ASK_TIMEOUT.as_millis() as u64).ok()
}

fn running(cell: &ActorCell) -> bool {
    cell.get_status() == ActorStatus::Running
}
