//! A read-only view of one broker for operators and programs: the clients, their subscriptions, the routes,
//! the retained messages, the listeners, the counters and health, and the few actions an operator takes (kick,
//! publish, clear a retained message, trace a client, and the chaos kills).
//!
//! The admin crate and embedding programs see the broker only through [`BrokerView`]: everything it returns is
//! a copy, read from the session store, the router and the counters, which outlive the actors, so an answer
//! never waits on a busy session and nobody outside holds a broker lock. Acting on a client goes through its
//! session supervisor like any other message to a session.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ractmq_codec::{reason, Protocol, QoS};
use ractmq_protocol::Message;
use tokio::sync::mpsc;

use crate::flow::Congestion;
use crate::health::{self, Health};
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::routes::RouteKey;
use crate::session_msg::{SessionMsg, SessionSupMsg};
use crate::session_store::SessionShared;
use ractmq_auth::banned::{Ban, BanTarget};
use ractmq_auth::user_db::UserSummary;

/// The broker as operators and programs may read it; cheap to clone. Get one from [`crate::Broker::view`].
#[derive(Clone)]
pub struct BrokerView {
    kernel: Arc<Kernel>,
}

impl std::fmt::Debug for BrokerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerView").finish_non_exhaustive()
    }
}

/// One listener: where it was asked to listen, where it is bound, and its open connections.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    /// `mqtt:tcp`, `mqtt:tls`, `mqtt:ws` or `mqtt:wss`.
    pub name: String,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub transport: &'static str,
    /// The address from the configuration.
    pub configured: String,
    /// The address it is bound to, while it runs.
    pub bound: Option<SocketAddr>,
    /// The HTTP path of a WebSocket listener.
    pub websocket_path: Option<String>,
    /// Client connections open on it.
    pub connections: u64,
}

/// One client session as an operator sees it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client identifier.
    pub client_id: String,
    /// Whether a connection is attached to the session now.
    pub connected: bool,
    /// The peer address of the connection, when connected.
    pub peer: Option<String>,
    /// `3.1`, `3.1.1` or `5.0`, when connected.
    pub protocol: Option<&'static str>,
    /// The keep alive the connection uses, in seconds, when connected.
    pub keep_alive: Option<u16>,
    /// The user name the connection authenticated as, if any.
    pub username: Option<String>,
    /// Seconds since the Unix epoch, when connected.
    pub connected_at: Option<u64>,
    /// How many subscriptions the session has.
    pub subscriptions: usize,
    /// Messages queued for the client, and sent but not yet acknowledged.
    pub queued: usize,
    /// Bytes queued for the client, as its byte bound counts them.
    pub queued_bytes: usize,
    /// QoS 1 and 2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// The session expiry interval, in seconds.
    pub expiry_interval: u32,
    /// Whether the session actor is asleep (its state kept in the store, see supervision.md).
    pub hibernating: bool,
    /// Messages its queue dropped by its overflow policy since the node started.
    pub dropped: u64,
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "3.1",
        Protocol::V3_1_1 => "3.1.1",
        Protocol::V5 => "5.0",
    }
}

fn client_info(session: &SessionShared) -> ClientInfo {
    let conn = session.conn.lock().clone();
    let (subscriptions, inflight, expiry_interval) = {
        let state = session.state.lock();
        (state.subscriptions.len(), state.inflight.len(), state.expiry_interval)
    };
    let (queued, queued_bytes) = session.queued();
    ClientInfo {
        client_id: session.client_id.to_string(),
        connected: conn.is_some(),
        peer: conn.as_ref().map(|c| c.peer.to_string()),
        protocol: conn.as_ref().map(|c| protocol_name(c.protocol)),
        keep_alive: conn.as_ref().map(|c| c.keep_alive),
        username: conn.as_ref().and_then(|c| c.username.clone()),
        connected_at: conn.as_ref().and_then(|c| {
            c.connected_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        }),
        subscriptions,
        queued,
        queued_bytes,
        inflight,
        expiry_interval,
        hibernating: session.is_hibernating(),
        dropped: session.dropped.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// One subscription of one client.
#[derive(Debug, Clone)]
pub struct SubscriptionInfo {
    /// The subscriber.
    pub client_id: String,
    /// The topic filter, with `$share/GROUP/` for a shared subscription.
    pub filter: String,
    /// The maximum QoS granted.
    pub qos: u8,
    /// MQTT 5 No Local.
    pub no_local: bool,
    /// MQTT 5 Retain As Published.
    pub retain_as_published: bool,
    /// MQTT 5 Subscription Identifier.
    pub subscription_id: Option<u32>,
}

impl BrokerView {
    pub(crate) fn new(kernel: Arc<Kernel>) -> BrokerView {
        BrokerView { kernel }
    }

    /// What the node's store held in `space` when the node started, as (key, value): state that parts of the
    /// node outside the broker keep with [`BrokerView::keep_state`]. Empty without a store.
    pub fn stored_state(&self, space: &str) -> Vec<(String, Vec<u8>)> {
        stored_state(&self.kernel, space)
    }

    /// Keep `value` under `key` in `space` of the node's store (or forget the key, with `None`); returns once
    /// it is committed. Nothing happens without a store (`--durability memory`). `space` must not be one the
    /// broker uses itself (`bans`).
    pub async fn keep_state(&self, space: &'static str, key: &str, value: Option<Vec<u8>>) -> Result<(), String> {
        keep_state(&self.kernel, space, key, value).await
    }

    /// The queue of the in-process client `client_id` holds `max_len` messages (the node's byte bound applies
    /// too) and then applies `overflow`; `stall_timeout` replaces the node's when given. Applies from the
    /// client's next connection.
    pub fn set_in_process_queue(
        &self,
        client_id: &str,
        max_len: usize,
        overflow: ractmq_protocol::OverflowPolicy,
        stall_timeout: Option<Duration>,
    ) {
        let mut policy = self.kernel.config.limits.online_queue();
        policy.max_len = max_len;
        policy.overflow = overflow;
        if let Some(stall) = stall_timeout {
            policy.stall_timeout = stall;
        }
        self.kernel
            .in_process_queues
            .lock()
            .insert(client_id.to_string(), policy);
    }

    /// An MQTT connection to this node inside the process: the caller is the client at the other end of the
    /// returned byte stream, and speaks MQTT on it from its CONNECT on, as over a socket. Bridges reach the
    /// node this way. The connection is the node's own: not authenticated, allowed everything a superuser is,
    /// not counted on client limits, and only such connections may use client ids starting with `$`.
    /// `buffer` bounds the bytes in the pipe each way.
    pub fn connect_in_process(&self, buffer: usize) -> tokio::io::DuplexStream {
        let (ours, theirs) = tokio::io::duplex(buffer.max(1024));
        tokio::spawn(crate::listener::in_process_handshake(ours, self.kernel.clone()));
        theirs
    }

    /// The node's counters (atomics: reading them takes no lock).
    pub fn metrics(&self) -> &Metrics {
        &self.kernel.metrics
    }

    /// How long the broker has run.
    pub fn uptime(&self) -> Duration {
        self.kernel.started_at.elapsed()
    }

    /// Where the plain MQTT listener is bound, while it runs.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        *self.kernel.mqtt_addr.lock()
    }

    /// The node-wide connection limit, over all listeners.
    pub fn max_connections(&self) -> usize {
        self.kernel.config.max_connections
    }

    /// Every listener: the plain TCP one, then the TLS and WebSocket ones in configuration order.
    pub fn listeners(&self) -> Vec<ListenerInfo> {
        let k = &self.kernel;
        let open = |i: usize| k.listener_connections[i].load(Ordering::Relaxed);
        let mut all = vec![ListenerInfo {
            name: "mqtt:tcp".into(),
            transport: "tcp",
            configured: k.config.mqtt_listen.to_string(),
            bound: *k.mqtt_addr.lock(),
            websocket_path: None,
            connections: open(0),
        }];
        let bound = k.listener_addrs.lock().clone();
        for (i, (spec, bound)) in k.config.listeners.iter().zip(bound).enumerate() {
            all.push(ListenerInfo {
                name: format!("mqtt:{}", spec.kind()),
                transport: spec.kind(),
                configured: spec.listen.to_string(),
                bound,
                websocket_path: spec.websocket_path.clone(),
                connections: open(i + 1),
            });
        }
        all
    }

    /// Sockets accepted and waiting for their CONNECT to be handled.
    pub fn waiting_for_connect(&self) -> usize {
        self.kernel.waiting.total()
    }

    /// Sessions on this node, connected or not.
    pub fn session_count(&self) -> usize {
        self.kernel.store.len()
    }

    /// Subscriptions in this node's index.
    pub fn subscription_count(&self) -> usize {
        self.kernel.router.subscription_count()
    }

    /// What the node's store holds on disk, and how its commits go; `None` on a node without one
    /// (`Durability::Memory`).
    pub fn data_stats(&self) -> Option<ractmq_store::StoreStats> {
        self.kernel.disk.as_ref().map(|d| d.stats())
    }

    /// Retained messages on this node (every node keeps all of them).
    pub fn retained_count(&self) -> usize {
        self.kernel.router.retained.read().len()
    }

    /// Messages and bytes queued, summed over sessions (each read without its lock).
    pub fn queued(&self) -> (u64, u64) {
        self.kernel
            .store
            .all()
            .iter()
            .map(|s| s.queued())
            .fold((0, 0), |a, q| (a.0 + q.0 as u64, a.1 + q.1 as u64))
    }

    /// Every session of this node, by client id.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = self.kernel.store.all().iter().map(|s| client_info(s)).collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all
    }

    /// `client_id`'s session, if it has one on this node.
    pub fn client(&self, client_id: &str) -> Option<ClientInfo> {
        self.kernel.store.get(client_id).map(|s| client_info(&s))
    }

    /// The messages queued for `client_id` and not yet sent, oldest first; None if it has no session here.
    pub fn queued_messages(&self, client_id: &str) -> Option<Vec<Arc<Message>>> {
        let session = self.kernel.store.get(client_id)?;
        let mailbox = session.lock_mailbox();
        Some(mailbox.queue.iter().map(|d| d.message.clone()).collect())
    }

    /// The QoS 1 and 2 messages sent to `client_id` and not yet acknowledged, oldest first; None if it has no
    /// session here.
    pub fn inflight_messages(&self, client_id: &str) -> Option<Vec<Arc<Message>>> {
        let session = self.kernel.store.get(client_id)?;
        let state = session.state.lock();
        Some(state.inflight.iter().map(|f| f.delivery.message.clone()).collect())
    }

    /// Every subscription of this node's sessions, by client id then filter.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let mut all = Vec::new();
        for session in self.kernel.store.all() {
            let state = session.state.lock();
            for (filter, o) in &state.subscriptions {
                all.push(SubscriptionInfo {
                    client_id: session.client_id.to_string(),
                    filter: filter.clone(),
                    qos: o.qos as u8,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    subscription_id: o.subscription_id,
                });
            }
        }
        all.sort_by(|a, b| (&a.client_id, &a.filter).cmp(&(&b.client_id, &b.filter)));
        all
    }

    /// The filters `client_id`'s session is subscribed to (`$share/GROUP/` included), in no order; `None` if it
    /// has no session here.
    pub fn subscription_filters(&self, client_id: &str) -> Option<Vec<String>> {
        let session = self.kernel.store.get(client_id)?;
        let state = session.state.lock();
        Some(state.subscriptions.keys().cloned().collect())
    }

    /// This node's routes (filters with at least one subscriber here, members of shared groups).
    pub fn local_routes(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .kernel
            .router
            .local_routes()
            .into_iter()
            .map(|r| match r {
                RouteKey::Filter(f) => f.to_string(),
                RouteKey::Shared { group, .. } => group.to_string(),
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Close `client_id`'s connection with 0x98 (Administrative action); its session stays. False if it has no
    /// session here.
    pub async fn kick(&self, client_id: &str) -> bool {
        self.send_session(
            client_id,
            SessionMsg::Kick {
                code: reason::ADMINISTRATIVE_ACTION,
                server_reference: None,
            },
        )
        .await
    }

    /// Disconnect `client_id`'s connection with the 5.0 reason `code`, naming another server when
    /// `server_reference` is set (3.x clients see the socket close); the session stays. False if it has no
    /// session here. See [`crate::Broker::disconnect_client`].
    pub async fn disconnect(&self, client_id: &str, code: u8, server_reference: Option<String>) -> bool {
        self.send_session(client_id, SessionMsg::Kick { code, server_reference })
            .await
    }

    /// The client ids connected to this node over a listener (the node's own in-process connections, a
    /// bridge's, are left out), sorted.
    pub fn connected_client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .kernel
            .store
            .all()
            .iter()
            .filter(|s| s.conn.lock().as_ref().is_some_and(|c| !c.in_process))
            .map(|s| s.client_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Refuse new clients (CONNACK 0x88 Server unavailable) and report the node not ready, or stop doing so:
    /// an operator's evacuation. Connected clients are not touched here.
    pub fn set_evacuating(&self, on: bool) {
        self.kernel.evacuating.store(on, std::sync::atomic::Ordering::Release);
    }

    /// Whether the node is evacuated (see [`BrokerView::set_evacuating`]).
    pub fn is_evacuating(&self) -> bool {
        self.kernel.is_evacuating()
    }

    pub(crate) async fn send_session(&self, client_id: &str, msg: SessionMsg) -> bool {
        let Some(sup) = self.kernel.session_sup() else {
            return false;
        };
        ractor::call!(sup, |reply| SessionSupMsg::Send {
            client_id: client_id.to_string(),
            msg,
            reply
        })
        .unwrap_or(false)
    }

    /// The retained messages of this node, by topic (every node keeps all of them, see the cluster crate).
    pub fn retained(&self) -> Vec<Arc<Message>> {
        let mut all = self.kernel.router.retained.read().all();
        all.sort_by(|a, b| a.topic.cmp(&b.topic));
        all
    }

    /// The retained message of `topic`, if there is one.
    pub fn retained_message(&self, topic: &str) -> Option<Arc<Message>> {
        self.kernel.router.retained.read().get(topic).cloned()
    }

    /// Clear `topic`'s retained message everywhere, as a client publishing an empty retained message does
    /// (subscribers see that empty message). False if there was none here.
    pub async fn delete_retained(&self, topic: &str) -> bool {
        if self.retained_message(topic).is_none() {
            return false;
        }
        let mut congestion = Congestion::default();
        let clear = Arc::new(Message::new(topic, Bytes::new(), QoS::AtMostOnce, true));
        self.kernel.router.route_reporting(clear, &mut congestion);
        // Done once the store has it too (subscriber queues are not waited for: a clear delivers nothing).
        let _ = self.stored().await;
        true
    }

    /// Publish `message` as the broker itself (no client id: No Local does not apply). Returns the subscribers
    /// it reached once it is queued for each, and the queues it filled have drained to half, as a client's
    /// PUBACK waits (see docs/flow-control.md).
    pub async fn publish(&self, message: Message) -> usize {
        Metrics::add(&self.kernel.metrics.messages_received, 1);
        let mut congestion = Congestion::default();
        let delivered = self.kernel.router.route_reporting(Arc::new(message), &mut congestion);
        congestion.wait().await;
        delivered
    }

    /// Route `message` now, as part of the routing that called a [`crate::Hooks`]: the queues it fills and the
    /// copies it stores are added to `congestion`, so the original publisher's acknowledgement waits for them.
    /// Returns the subscribers (and nodes) it reached.
    pub fn route_now(&self, message: Message, congestion: &mut Congestion) -> usize {
        Metrics::add(&self.kernel.metrics.messages_received, 1);
        self.kernel.router.route_reporting(Arc::new(message), congestion)
    }

    /// Queue `message` for the session of `client_id` alone, at the message's QoS, as if it had subscribed to
    /// it (a bridge's buffer fed by a rule). Like a routed copy, a persistent session's copy is stored first
    /// and a full queue holds the publisher, through `congestion`. Fails if there is no such session.
    pub fn deliver_to(&self, client_id: &str, message: Message, congestion: &mut Congestion) -> Result<(), String> {
        let session =
            (self.kernel.store.get(client_id)).ok_or_else(|| format!("no session {client_id:?} on this node"))?;
        self.kernel
            .router
            .deliver_direct(&session, Arc::new(message), congestion);
        Ok(())
    }

    /// The user name, peer address and protocol of `client_id`'s connection, if it is connected here.
    pub fn connection_of(&self, client_id: &str) -> Option<(Option<String>, SocketAddr, Protocol)> {
        let session = self.kernel.store.get(client_id)?;
        let conn = session.conn.lock();
        conn.as_ref().map(|c| (c.username.clone(), c.peer, c.protocol))
    }

    /// This node's name in its cluster (`local` alone).
    pub fn node_name(&self) -> &str {
        &self.kernel.config.node_name
    }

    /// Tell `hooks` about the messages published on this node and its clients' events from now on. False if
    /// the node has hooks already (one per node).
    pub fn set_hooks(&self, hooks: Arc<dyn crate::Hooks>) -> bool {
        self.kernel.router.set_hooks(hooks)
    }

    /// Follow `client_id`'s packets as they pass, one line each, until the receiver is dropped.
    pub fn trace(&self, client_id: &str) -> mpsc::Receiver<String> {
        self.kernel.traces.start(client_id)
    }

    /// The supervision tree as it runs now, from the root down (see `tree_view.rs`): answered within about a
    /// second however busy its supervisors are.
    pub async fn supervision_tree(&self) -> crate::tree_view::TreeNode {
        crate::tree_view::walk(&self.kernel).await
    }

    /// Is the node live and ready (see `health.rs`)?
    pub async fn health(&self) -> Health {
        health::check(&self.kernel).await
    }

    /// Why the broker stopped by itself, if it did.
    pub fn down(&self) -> Option<String> {
        self.kernel.down()
    }

    /// The users of the built-in database, by name.
    pub fn users(&self) -> Vec<UserSummary> {
        self.kernel.security.users().list()
    }

    /// Whether users added at run time are kept on disk (a user database file is configured).
    pub fn users_persisted(&self) -> bool {
        self.kernel.security.users().path().is_some()
    }

    /// Add a user to the built-in database (argon2id hash and SCRAM keys derived now, off the reactor; written
    /// to the database file before this returns). Error if the name exists.
    pub async fn add_user(&self, name: &str, password: &str, superuser: bool) -> Result<(), String> {
        let users = self.kernel.security.users().clone();
        let (name, password) = (name.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || users.add(&name, password.as_bytes(), superuser))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Change a user's password (its connected clients stay connected).
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), String> {
        let users = self.kernel.security.users().clone();
        let (name, password) = (name.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || users.set_password(&name, password.as_bytes()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Remove a user from the built-in database (its connected clients stay connected until they reconnect).
    pub fn delete_user(&self, name: &str) -> Result<(), String> {
        self.kernel.security.users().delete(name).map_err(|e| e.to_string())
    }

    /// The bans in force.
    pub fn bans(&self) -> Vec<Ban> {
        self.kernel.security.bans()
    }

    /// Ban `value` as `kind` (`clientid`, `username` or `peerhost`, an address or CIDR network) for
    /// `duration` (`None`: until lifted), replacing a ban of the same target. Its clients connected now are
    /// disconnected (0x98 Administrative action); new CONNECTs get 0x8A Banned.
    pub async fn ban(&self, kind: &str, value: &str, duration: Option<Duration>, reason: &str) -> Result<Ban, String> {
        let target = BanTarget::named(kind, value)?;
        let ban = self
            .kernel
            .security
            .ban(target, duration, reason.to_string(), "operator".into())
            .map_err(|e| e.to_string())?;
        self.stored().await?;
        for client in self.clients().into_iter().filter(|c| c.connected) {
            let peer = client.peer.as_deref().and_then(|p| p.parse::<SocketAddr>().ok());
            if ban
                .who
                .covers(&client.client_id, client.username.as_deref(), peer.map(|a| a.ip()))
            {
                self.kick(&client.client_id).await;
            }
        }
        Ok(ban)
    }

    /// Lift the ban of `value` as `kind`; false if there was none.
    pub async fn unban(&self, kind: &str, value: &str) -> Result<bool, String> {
        let lifted = self.kernel.security.unban(&BanTarget::named(kind, value)?);
        self.stored().await?;
        Ok(lifted)
    }

    /// On a node with a store, wait until every change made so far is committed: an operator's "done" holds
    /// across a crash.
    /// Wait until everything submitted to the node's store so far is committed (at once on a node without
    /// one): what an operator's "done" waits for after writes it did not wait for one by one.
    pub async fn flush_store(&self) -> Result<(), String> {
        self.stored().await
    }

    async fn stored(&self) -> Result<(), String> {
        match &self.kernel.disk {
            Some(disk) => disk.flush().await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The ACL in force: its file, the format it was read as, its rules, and whether an HTTP service or JWT
    /// claims authorize clients too.
    pub fn acl(&self) -> crate::security::AclInForce {
        self.kernel.security.acl_in_force()
    }

    /// Flapping detection's settings and the client ids it counts now; `None` when it is off.
    pub fn flapping(&self) -> Option<(ractmq_auth::flapping::FlappingConfig, usize)> {
        self.kernel.security.flapping()
    }

    /// Read the ACL file and the password file again (what `ractmq ctl acl reload` and SIGHUP do): connected
    /// clients get the new rules on their next request, nobody is disconnected. A file with an error leaves
    /// the old rules in force and the error is returned. Says what was reloaded.
    pub fn reload_security(&self) -> Result<String, String> {
        self.kernel.security.reload()
    }

    /// Resident memory in bytes above which the node sheds load (0: off), and whether it is above it now.
    pub fn memory_high_watermark(&self) -> (u64, bool) {
        let o = &self.kernel.overload;
        (o.watermark(), o.is_overloaded())
    }

    /// Change the memory high watermark (0: off); applied at the next check, within a second.
    pub fn set_memory_high_watermark(&self, bytes: u64) {
        self.kernel.overload.set_watermark(bytes);
    }

    /// Chaos: kill the session actor of `client_id`. False if there is none.
    pub async fn kill_session(&self, client_id: &str) -> bool {
        let Some(sup) = self.kernel.session_sup() else {
            return false;
        };
        ractor::call!(sup, |reply| SessionSupMsg::Kill {
            client_id: client_id.to_string(),
            reply
        })
        .unwrap_or(false)
    }

    /// Chaos: kill topic shard `index`. False if there is no such shard running.
    pub fn kill_shard(&self, index: usize) -> bool {
        self.kernel.router.shards_actor(index).is_some_and(|actor| {
            actor.kill();
            true
        })
    }

    /// The topic shard that indexes `filter` (for chaos tests that kill the shard holding a route).
    pub fn shard_of_filter(&self, filter: &str) -> usize {
        self.kernel.router.shard_of_filter(filter)
    }
}

/// What the store held in `space` at start (see [`BrokerView::stored_state`]); also the cluster's, through
/// `Node`.
pub(crate) fn stored_state(kernel: &Kernel, space: &str) -> Vec<(String, Vec<u8>)> {
    (kernel.stored_state.lock().iter())
        .filter(|(s, _, _)| s == space)
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Submit a write of operator state now, and return the wait for its commit. The write is queued before this
/// returns, so writes to one key land in the order of the calls even when their waits are polled in another
/// order (the cluster's replicated map relies on it).
pub(crate) fn keep_state(
    kernel: &Kernel,
    space: &'static str,
    key: &str,
    value: Option<Vec<u8>>,
) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
    let submitted = kernel.disk.as_ref().map(|disk| {
        let key = key.to_string();
        let ticket = match value {
            Some(value) => disk.submit(ractmq_store::Op::Put { space, key, value }),
            None => disk.submit(ractmq_store::Op::Delete { space, key }),
        };
        (disk.clone(), ticket)
    });
    async move {
        match submitted {
            Some((disk, ticket)) => disk.committed(ticket).await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}
