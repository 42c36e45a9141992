//! A topic shard: the one writer of one partition of the subscription index.
//!
//! Writers are serialised through this actor so that each change builds on the previous version; readers never
//! come here (they load the snapshot the shard publishes, see `router`). On start, including every restart,
//! the shard rebuilds its partition from the session store and the in-process subscriptions, so a shard that
//! dies loses nothing; while it is down, publishes keep matching its last snapshot.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::index::{Index, Route};
use crate::router::Router;

/// One change: `route` Some subscribes or replaces, None unsubscribes.
pub struct ShardOp {
    pub filter: String,
    pub key: Arc<str>,
    pub route: Option<Route>,
}

pub enum ShardMsg {
    /// Apply the changes, publish the new snapshot, then reply whether this node gained a route.
    Apply(Arc<Vec<ShardOp>>, Option<RpcReplyPort<bool>>),
    /// Fail on purpose (chaos testing of the supervision tree).
    Crash,
}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for ShardMsg {}

pub struct Shard;

pub struct ShardArgs {
    pub index: usize,
    pub router: Arc<Router>,
}

pub struct ShardState {
    index: usize,
    router: Arc<Router>,
    current: Index,
}

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(&self, myself: ActorRef<ShardMsg>, args: ShardArgs) -> Result<ShardState, ActorProcessingErr> {
        let (current, routes) = args.router.rebuild_index(args.index);
        let slot = &args.router.shards[args.index];
        slot.snapshot.store(Arc::new(current.clone()));
        // Routes this shard announced before it died and that the rebuild does not have (or the reverse)
        // are corrected for the other nodes.
        let changes = {
            let mut announced = slot.routes.lock();
            let changes = announced.diff(&routes);
            *announced = routes;
            changes
        };
        if let (false, Some(remote)) = (changes.is_empty(), args.router.remote()) {
            remote.routes_changed(changes);
        }
        *slot.actor.write() = Some(myself);
        tracing::debug!(shard = args.index, subscriptions = current.len(), "topic shard started");
        Ok(ShardState {
            index: args.index,
            router: args.router,
            current,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Apply(ops, reply) => {
                let slot = &state.router.shards[state.index];
                let mut changes = Vec::new();
                {
                    let mut routes = slot.routes.lock();
                    for op in ops.iter() {
                        let change = match &op.route {
                            Some(route) => {
                                let added = state.current.insert(&op.filter, op.key.clone(), route.clone());
                                added.then(|| routes.added(&op.filter, &op.key, route)).flatten()
                            }
                            None => state
                                .current
                                .remove(&op.filter, &op.key)
                                .and_then(|old| routes.removed(&op.filter, &op.key, &old)),
                        };
                        changes.extend(change.map(|key| (key, op.route.is_some())));
                    }
                }
                slot.snapshot.store(Arc::new(state.current.clone()));
                let new_routes = changes.iter().any(|(_, added)| *added);
                if let (false, Some(remote)) = (changes.is_empty(), state.router.remote()) {
                    remote.routes_changed(changes);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(new_routes);
                }
            }
            ShardMsg::Crash => panic!("topic shard {} crashed on request", state.index),
        }
        Ok(())
    }
}
