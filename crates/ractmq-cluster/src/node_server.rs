//! Starting ractor_cluster's node server: the listener for other nodes, cookie authentication, and one
//! session per linked node.
//!
//! Its connection mode is isolated: ractor_cluster's transitive mode would dial the listen addresses peers
//! report, bypassing `--cluster-advertise`, and over plain TCP only. The connector dials every member the
//! hellos name instead (see `connector.rs`), which makes the same full mesh. The node server is ractor_cluster's own actor and supervises its listener
//! and sessions itself; ractmq supervises the node server (see `tree.rs`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractmq_broker::Node;
use ractor::{Actor, ActorCell, SpawnErr};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{IncomingEncryptionMode, NodeServer};

use crate::state::Shared;

/// How long a restarted node server waits for its predecessor's listener to free the address.
pub const RESTART_BIND_PATIENCE: Duration = Duration::from_secs(5);

/// The host part of this node's ractor_cluster name and connection string: the listen IP, bracketed if v6,
/// so that `host:port` is an address peers can dial.
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Start the node server linked to `sup`, and publish it in the shared state for the connector.
pub async fn start(shared: Arc<Shared>, broker: Arc<dyn Node>, sup: ActorCell) -> Result<ActorCell, SpawnErr> {
    let config = &shared.config;
    let addr = config.cluster_listen;
    // ractor_cluster's own bind error is wrapped beyond recognition: try the address first, to say plainly
    // what is wrong. (The probe is dropped at once; ractor_cluster binds it again the same way, with
    // SO_REUSEADDR, so a restart is not refused by the previous run's closing connections.) On a restart
    // the previous node server's listener may still be going away (ractor kills linked children after the
    // supervisor hears of the death), so the address gets a few seconds to come free.
    let restarting = shared.node_server.read().is_some();
    let give_up = Instant::now()
        + if restarting {
            RESTART_BIND_PATIENCE
        } else {
            Duration::ZERO
        };
    while let Err(e) = tokio::net::TcpListener::bind(addr).await {
        if Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let line = format!(
            "cannot listen for cluster nodes on {addr}: {e} (is another node running there? pick another address with --cluster-listen)"
        );
        broker.report_start_failure(line.clone());
        return Err(SpawnErr::StartupFailed(line.into()));
    }
    let server = NodeServer::new(
        addr.port(),
        config.cookie.clone(),
        config.node_name.clone(),
        host(addr.ip()),
        shared
            .tls
            .as_ref()
            .map(|t| IncomingEncryptionMode::Tls(t.acceptor.clone())),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(addr.ip());
    let (node_server, _) = Actor::spawn_linked(None, server, (), sup).await?;
    *shared.node_server.write() = Some(node_server.clone());
    tracing::info!("cluster node {} listening for other nodes on {addr}", config.node_name);
    Ok(node_server.get_cell())
}
