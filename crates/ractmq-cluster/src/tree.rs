//! Where the cluster's actors sit in the broker's supervision tree, and how they are restarted.
//!
//! ```text
//! root (the broker's)
//! └── cluster          Supervisor, one-for-one, 10 restarts in 10 s, then it fails and the root restarts it
//!     ├── node-server  ractor_cluster's NodeServer (listener + one session per linked node)
//!     ├── agent        the remotable agent: hellos, failure detector, announcements
//!     ├── forwarder    the remotable forwarder: routes in and out, forwarded messages in; one pump task
//!     │                per other node sending that node's queue
//!     └── connector    dials every member without a link, with backoff
//! ```
//!
//! They start in that order: the agent is in its process group before the first link syncs the groups, and
//! the connector dials through a node server that exists. Restarts are counted as the broker's
//! `other_restarts`. What each gets back after a restart is in docs/clustering.md.

use std::sync::Arc;

use ractmq_broker::{ChildSpec, ClusterHook, Metrics, Node, RestartPolicy, Supervisor, SupervisorArgs};
use ractor::Actor;

use crate::agent::{Agent, AgentArgs};
use crate::connector::Connector;
use crate::forwarder::{Forwarder, ForwarderArgs};
use crate::node_server;
use crate::replicated;
use crate::routing::Routing;
use crate::sessions::Sessions;
use crate::state::Shared;

/// Restarts the cluster supervisor allows before it fails (and the root restarts the whole cluster subtree).
pub const CLUSTER_RESTARTS: RestartPolicy = RestartPolicy::new(10, 10);

/// The broker's view of the cluster: its child, and which nodes are up.
pub struct Hook(pub Arc<Shared>);

impl ClusterHook for Hook {
    fn child_spec(&self, broker: &Arc<dyn Node>) -> ChildSpec {
        // The replicated rules are read from the store before any actor of the cluster runs, so this node's
        // first hello carries what it kept (a delete made while it was down then meets its own older copy).
        self.0.rules.load(broker.clone());
        self.0.rules.set_sender(replicated::sender(Arc::downgrade(&self.0)));
        broker.router().set_remote(Arc::new(Routing {
            shared: self.0.clone(),
            metrics: broker.metrics().clone(),
        }));
        broker.set_remote_sessions(Arc::new(Sessions {
            shared: self.0.clone(),
            broker: Arc::downgrade(broker),
        }));
        let children = vec![
            counted(node_server_spec(self.0.clone(), broker.clone()), broker),
            counted(agent_spec(self.0.clone(), broker.clone()), broker),
            counted(forwarder_spec(self.0.clone(), broker.clone()), broker),
            counted(connector_spec(self.0.clone()), broker),
        ];
        let shared = self.0.clone();
        let spec = ChildSpec::new("cluster", move |sup| {
            let args = SupervisorArgs::new("cluster", children.clone(), CLUSTER_RESTARTS);
            let shared = shared.clone();
            async move {
                let (actor, _) = Actor::spawn_linked(None, Supervisor, args, sup).await?;
                *shared.supervisor.write() = Some(actor.clone());
                Ok(actor.get_cell())
            }
        })
        .supervisor();
        counted(spec, broker)
    }

    fn nodes_up(&self) -> Vec<String> {
        self.0.membership.read().nodes_up()
    }
}

fn counted(spec: ChildSpec, broker: &Arc<dyn Node>) -> ChildSpec {
    let metrics = broker.metrics().clone();
    spec.on_restart(move || Metrics::add(&metrics.other_restarts, 1))
}

fn node_server_spec(shared: Arc<Shared>, broker: Arc<dyn Node>) -> ChildSpec {
    ChildSpec::new("node-server", move |sup| {
        node_server::start(shared.clone(), broker.clone(), sup)
    })
}

fn agent_spec(shared: Arc<Shared>, broker: Arc<dyn Node>) -> ChildSpec {
    ChildSpec::new("agent", move |sup| {
        let args = AgentArgs {
            shared: shared.clone(),
            broker: broker.clone(),
        };
        async move {
            let (actor, _) = Actor::spawn_linked(None, Agent, args, sup).await?;
            Ok(actor.get_cell())
        }
    })
}

fn forwarder_spec(shared: Arc<Shared>, broker: Arc<dyn Node>) -> ChildSpec {
    ChildSpec::new("forwarder", move |sup| {
        let args = ForwarderArgs {
            shared: shared.clone(),
            broker: broker.clone(),
        };
        async move {
            let (actor, _) = Actor::spawn_linked(None, Forwarder, args, sup).await?;
            Ok(actor.get_cell())
        }
    })
}

fn connector_spec(shared: Arc<Shared>) -> ChildSpec {
    ChildSpec::new("connector", move |sup| {
        let shared = shared.clone();
        async move {
            let (actor, _) = Actor::spawn_linked(None, Connector, shared, sup).await?;
            Ok(actor.get_cell())
        }
    })
}
