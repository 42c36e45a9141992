//! The agent: this node's one remotable actor, and its voice in the cluster.
//!
//! Every node runs exactly one agent, joined to the process group [`GROUP`], which ractor_cluster mirrors to
//! every connected node; an agent reaches its peers through the remote members of that group. Every
//! heartbeat interval it sends each peer a hello (who it is, where it listens, whom it sees) and sweeps the
//! membership for peers silent for `down_after` (the failure detector). It is also where membership changes
//! are announced: one log line each, the change channel, and `$SYS/brokers`.
//!
//! The agent holds no state of its own: the membership lives in the cluster's shared state, so a restarted
//! agent carries on where the last one stopped.

use std::sync::Arc;
use std::time::Instant;

use ractmq_broker::Node;
use ractor::pg::{self, GroupChangeMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorClusterMessage;

use crate::membership::MemberEvent;
use crate::replicated;
use crate::state::Shared;
use crate::wire::{self, Wire};

/// The process group of the agents, one per node.
pub const GROUP: &str = "ractmq.agents";

/// What an agent receives. Both variants may come from another node, as ractor_cluster serialises every
/// variant of a remotable actor's message type: a peer sending `Tick` only makes this node heartbeat early.
#[derive(RactorClusterMessage)]
pub enum AgentMsg {
    /// Heartbeat: say hello to every peer, then sweep for silent ones.
    Tick,
    /// A peer's message: a [`Wire`] value, bincode-encoded (see `wire.rs`).
    Peer(Vec<u8>),
}

pub struct Agent;

pub struct AgentArgs {
    pub shared: Arc<Shared>,
    pub broker: Arc<dyn Node>,
}

pub struct AgentState {
    shared: Arc<Shared>,
    broker: Arc<dyn Node>,
    /// An unreadable message was reported already (further ones are logged at debug level).
    reported_unreadable: bool,
}

impl Actor for Agent {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(&self, myself: ActorRef<AgentMsg>, args: AgentArgs) -> Result<AgentState, ActorProcessingErr> {
        pg::join(GROUP.to_string(), vec![myself.get_cell()]);
        pg::monitor(GROUP.to_string(), myself.get_cell());
        myself.send_message(AgentMsg::Tick)?;
        myself.send_interval(args.shared.config.heartbeat_interval, || AgentMsg::Tick);
        Ok(AgentState {
            shared: args.shared,
            broker: args.broker,
            reported_unreadable: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<AgentMsg>,
        msg: AgentMsg,
        state: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Tick => {
                let mqtt_addr = state.broker.mqtt_addr();
                let (events, hello) = {
                    let mut membership = state.shared.membership.write();
                    membership.set_own_mqtt_addr(mqtt_addr);
                    (membership.sweep(Instant::now()), state.shared.hello(&membership))
                };
                state.announce(events);
                send(
                    &wire::encode(&Wire::Hello(hello)),
                    remote_agents(pg::get_members(&GROUP.to_string())),
                );
            }
            AgentMsg::Peer(bytes) => match wire::decode(&bytes) {
                Ok(Wire::Hello(hello)) => {
                    let heard = state.shared.membership.write().heard(&hello, Instant::now());
                    for line in heard.warnings {
                        tracing::warn!("{line}");
                    }
                    state.announce(heard.events);
                    // Anti-entropy for the replicated map: whoever hears a digest unlike its own sends its whole
                    // map, so both sides merge and agree within a round trip (a peer just met, back from a
                    // partition or a restart, or one that missed a change).
                    if hello.map_digest != state.shared.rules.digest() {
                        replicated::send_all(&state.shared, &hello.name);
                    }
                }
                // Routing and replicated maps go to the forwarder; a peer sends them here only by mistake.
                Ok(_) => {}
                Err(e) if !state.reported_unreadable => {
                    state.reported_unreadable = true;
                    tracing::warn!("{e}; further ones are logged at debug level");
                }
                Err(e) => tracing::debug!("{e}"),
            },
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<AgentMsg>,
        event: SupervisionEvent,
        state: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        // A peer's agent appeared (a link came up, or it restarted): greet it now rather than at the next
        // heartbeat, so that a join shows within a round trip.
        if let SupervisionEvent::ProcessGroupChanged(GroupChangeMessage::Join(_, group, cells)) = event {
            if group == GROUP {
                let hello = state.shared.hello(&state.shared.membership.read());
                send(&wire::encode(&Wire::Hello(hello)), remote_agents(cells));
            }
        }
        Ok(())
    }
}

impl AgentState {
    /// Tell everyone about membership changes: the log (one line each), the change channel, `$SYS/brokers`.
    fn announce(&self, events: Vec<MemberEvent>) {
        if events.is_empty() {
            return;
        }
        for event in events {
            tracing::info!("{event}");
            // No subscriber is fine: routing will subscribe later.
            let _ = self.shared.events.send(event);
        }
        self.broker.publish_brokers();
    }
}

/// The agents of other nodes among `cells` (ours is the only local member of the group).
fn remote_agents(cells: Vec<ActorCell>) -> impl Iterator<Item = ActorRef<AgentMsg>> {
    cells.into_iter().filter(|c| !c.get_id().is_local()).map(ActorRef::from)
}

fn send(bytes: &[u8], to: impl Iterator<Item = ActorRef<AgentMsg>>) {
    for agent in to {
        // A peer whose link just closed cannot be reached; its silence is the failure detector's business.
        let _ = agent.send_message(AgentMsg::Peer(bytes.to_vec()));
    }
}
