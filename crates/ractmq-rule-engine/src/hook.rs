//! The rules' hook into the broker: which rules a published message or a client event reaches, found through
//! the same topic trie as subscriptions (never by scanning every rule), and their evaluation, inline.
//!
//! The set of enabled rules is an immutable snapshot behind an `ArcSwap`, rebuilt by the registry on every
//! change, as the router's shards are. A node with no rule on an event pays one atomic load for it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ractmq_broker::{BrokerView, ClientEvent, ClientRef, Congestion, HookKind, Hooks};
use ractmq_codec::Protocol;
use ractmq_protocol::trie::SubscriptionTrie;
use ractmq_protocol::Message;
use ractmq_rules::{Env, EventKind, Input, Map, Outcome, Value};

use crate::actions::{self, Source};
use crate::live::LiveRule;
use crate::stats::RuleCounters;

/// How deep rules may feed rules (a republish matched by another rule, and so on) before the chain is cut.
pub const MAX_CHAIN: u8 = 8;

thread_local! {
    /// The depth of rule evaluations on this thread now: a republish routes inline, and its rules run inside.
    static DEPTH: Cell<u8> = const { Cell::new(0) };
}

/// The enabled rules, indexed.
#[derive(Default)]
pub struct RuleSet {
    by_filter: SubscriptionTrie<Arc<str>, Arc<LiveRule>>,
    by_event: [Vec<Arc<LiveRule>>; 8],
    mask: u32,
}

impl RuleSet {
    /// Index `rules`.
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a Arc<LiveRule>>) -> RuleSet {
        let mut set = RuleSet::default();
        for rule in rules {
            let name: Arc<str> = rule.runtime.config.name.as_str().into();
            for filter in &rule.runtime.filters {
                set.by_filter.insert(filter, name.clone(), rule.clone());
                set.mask |= HookKind::Published.bit();
            }
            for event in &rule.runtime.events {
                let kind = hook_kind(*event);
                set.by_event[kind as usize].push(rule.clone());
                set.mask |= kind.bit();
            }
        }
        set
    }
}

fn hook_kind(event: EventKind) -> HookKind {
    match event {
        EventKind::MessagePublish => HookKind::Published,
        EventKind::ClientConnected => HookKind::ClientConnected,
        EventKind::ClientDisconnected => HookKind::ClientDisconnected,
        EventKind::SessionSubscribed => HookKind::SessionSubscribed,
        EventKind::SessionUnsubscribed => HookKind::SessionUnsubscribed,
        EventKind::MessageDelivered => HookKind::MessageDelivered,
        EventKind::MessageAcked => HookKind::MessageAcked,
        EventKind::MessageDropped => HookKind::MessageDropped,
    }
}

/// The hook a node's rules run through.
pub struct RuleHook {
    view: BrokerView,
    set: ArcSwap<RuleSet>,
    mask: AtomicU32,
    /// Evaluations cut because rules fed each other deeper than [`MAX_CHAIN`].
    pub chain_cut: AtomicU64,
    ids: AtomicU64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn proto_ver(p: Protocol) -> u8 {
    match p {
        Protocol::V3_1 => 3,
        Protocol::V3_1_1 => 4,
        Protocol::V5 => 5,
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "MQIsdp",
        _ => "MQTT",
    }
}

/// The MQTT 5 properties of `message` as the `pub_props` column, when it has any.
fn pub_props(message: &Message) -> Option<Value> {
    let p = &message.properties;
    if p.is_empty() {
        return None;
    }
    let mut props = Map::new();
    if !p.user_properties.is_empty() {
        let users: Map = (p.user_properties.iter())
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect();
        props.insert("User-Property".into(), Value::Object(users));
    }
    if let Some(v) = p.payload_format_indicator {
        props.insert("Payload-Format-Indicator".into(), Value::Int(v.into()));
    }
    if let Some(v) = p.message_expiry_interval {
        props.insert("Message-Expiry-Interval".into(), Value::Int(v.into()));
    }
    if let Some(v) = &p.response_topic {
        props.insert("Response-Topic".into(), Value::Str(v.clone()));
    }
    if let Some(v) = &p.correlation_data {
        props.insert(
            "Correlation-Data".into(),
            Value::Str(String::from_utf8_lossy(v).into_owned()),
        );
    }
    if let Some(v) = &p.content_type {
        props.insert("Content-Type".into(), Value::Str(v.clone()));
    }
    Some(Value::Object(props))
}

/// Leaves the chain of rule evaluations when dropped.
struct Depth;

impl Depth {
    fn enter() -> Option<Depth> {
        DEPTH.with(|d| {
            let now = d.get();
            (now < MAX_CHAIN).then(|| {
                d.set(now + 1);
                Depth
            })
        })
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The strings of a client's connection, owned for the time of one evaluation.
struct Peer {
    host: Option<String>,
    name: Option<String>,
}

impl Peer {
    fn of(addr: Option<std::net::SocketAddr>) -> Peer {
        Peer {
            host: addr.map(|a| a.ip().to_string()),
            name: addr.map(|a| a.to_string()),
        }
    }
}

impl RuleHook {
    /// A hook with no rules, for `view`'s node.
    pub fn new(view: BrokerView) -> Arc<RuleHook> {
        Arc::new(RuleHook {
            view,
            set: ArcSwap::from_pointee(RuleSet::default()),
            mask: AtomicU32::new(0),
            chain_cut: AtomicU64::new(0),
            ids: AtomicU64::new(0),
        })
    }

    /// Run `set` from now on.
    pub fn install(&self, set: RuleSet) {
        let mask = set.mask;
        self.set.store(Arc::new(set));
        self.mask.store(mask, Relaxed);
    }

    fn next_id(&self, now: i64) -> String {
        format!("{:012x}{:08x}", now, self.ids.fetch_add(1, Relaxed) as u32)
    }

    /// Evaluate `rule` on `input` and carry out its actions for every row.
    fn run(&self, rule: &LiveRule, input: &Input<'_>, env: &Env<'_>, source: &Source<'_>, congestion: &mut Congestion) {
        let runtime = &rule.runtime;
        let counters = &runtime.counters;
        RuleCounters::add(&counters.matched);
        match runtime.sql.evaluate(input, env) {
            Outcome::NoResult => RuleCounters::add(&counters.no_result),
            Outcome::Failed(e) => {
                RuleCounters::add(&counters.failed);
                tracing::debug!(rule = %runtime.config.name, "rule failed: {e}");
            }
            Outcome::Rows(rows) => {
                RuleCounters::add(&counters.passed);
                for row in &rows {
                    actions::run(&self.view, runtime, row, source, congestion, &|r| rule.retry(r));
                }
            }
        }
    }

    fn event_input<'a>(&self, event: &ClientEvent<'a>, client: &ClientRef<'a>, peer: &'a Peer, now: i64) -> Input<'a> {
        let mut input = Input::event(event_kind(event), now);
        input.clientid = Some(client.client_id);
        input.username = client.username;
        input.peerhost = peer.host.as_deref();
        input.peername = peer.name.as_deref();
        input.proto_ver = client.protocol.map(proto_ver);
        input.proto_name = client.protocol.map(proto_name);
        input
    }
}

impl Hooks for RuleHook {
    fn wants(&self, kind: HookKind) -> bool {
        self.mask.load(Relaxed) & kind.bit() != 0
    }

    fn published(&self, message: &Arc<Message>, congestion: &mut Congestion) {
        let set = self.set.load();
        let mut hits: Vec<&Arc<LiveRule>> = Vec::new();
        set.by_filter.for_each_match(&message.topic, |_, rule| {
            // A rule with two filters that both match runs once.
            if !hits.iter().any(|h| Arc::ptr_eq(h, rule)) {
                hits.push(rule);
            }
        });
        if hits.is_empty() {
            return;
        }
        let Some(_depth) = Depth::enter() else {
            self.chain_cut.fetch_add(1, Relaxed);
            return;
        };
        let now = now_ms();
        let conn = (message.publisher.as_deref()).and_then(|c| self.view.connection_of(c));
        let peer = Peer::of(conn.as_ref().map(|c| c.1));
        let props = pub_props(message);
        let id = self.next_id(now);
        let mut input = Input::message(&message.topic, &message.payload, now);
        input.id = Some(&id);
        input.clientid = message.publisher.as_deref();
        input.username = conn.as_ref().and_then(|c| c.0.as_deref());
        input.qos = Some(message.qos as u8);
        input.retain = Some(message.retain);
        input.dup = Some(false);
        input.peerhost = peer.host.as_deref();
        input.peername = peer.name.as_deref();
        input.pub_props = props.as_ref();
        input.publish_received_at = Some(now);
        input.proto_ver = conn.as_ref().map(|c| proto_ver(c.2));
        input.proto_name = conn.as_ref().map(|c| proto_name(c.2));
        let env = Env {
            node: self.view.node_name(),
            now_ms: now,
        };
        let source = Source {
            topic: &message.topic,
            qos: message.qos as u8,
        };
        for rule in hits {
            self.run(rule, &input, &env, &source, congestion);
        }
    }

    fn event(&self, event: &ClientEvent<'_>) {
        let set = self.set.load();
        let rules = &set.by_event[event.kind() as usize];
        if rules.is_empty() {
            return;
        }
        let Some(_depth) = Depth::enter() else {
            self.chain_cut.fetch_add(1, Relaxed);
            return;
        };
        let now = now_ms();
        let anonymous = ClientRef {
            client_id: "",
            username: None,
            peer: None,
            protocol: None,
        };
        let client = match event {
            ClientEvent::Connected { client, .. }
            | ClientEvent::Disconnected { client, .. }
            | ClientEvent::Subscribed { client, .. }
            | ClientEvent::Unsubscribed { client, .. } => *client,
            ClientEvent::Delivered { to, .. } | ClientEvent::Acked { to, .. } => *to,
            ClientEvent::Dropped { to, .. } => to.unwrap_or(anonymous),
        };
        let peer = Peer::of(client.peer);
        let mut input = self.event_input(event, &client, &peer, now);
        let topic_name = event_topic(event);
        let mut message_props = None;
        let from_conn;
        match event {
            ClientEvent::Connected {
                keep_alive,
                clean_start,
                expiry_interval,
                ..
            } => {
                input.keepalive = Some(*keep_alive);
                input.clean_start = Some(*clean_start);
                input.expiry_interval = Some(*expiry_interval);
                input.connected_at = Some(now);
            }
            ClientEvent::Disconnected { reason, .. } => {
                input.reason = Some(reason);
                input.disconnected_at = Some(now);
            }
            ClientEvent::Subscribed { filter, qos, .. } => {
                input.topic = Some(filter);
                input.qos = Some(*qos as u8);
            }
            ClientEvent::Unsubscribed { filter, .. } => input.topic = Some(filter),
            ClientEvent::Delivered { message, .. }
            | ClientEvent::Acked { message, .. }
            | ClientEvent::Dropped { message, .. } => {
                message_props = pub_props(message);
                input.topic = Some(&message.topic);
                input.payload = Some(&message.payload);
                input.qos = Some(match event {
                    ClientEvent::Delivered { qos, .. } => *qos as u8,
                    _ => message.qos as u8,
                });
                input.retain = Some(message.retain);
                input.from_clientid = message.publisher.as_deref();
                from_conn = (message.publisher.as_deref()).and_then(|c| self.view.connection_of(c));
                input.from_username = from_conn.as_ref().and_then(|c| c.0.as_deref());
                if let ClientEvent::Dropped { reason, to, .. } = event {
                    input.reason = Some(reason);
                    if to.is_none() {
                        input.clientid = None;
                    }
                }
            }
        }
        input.pub_props = message_props.as_ref();
        let env = Env {
            node: self.view.node_name(),
            now_ms: now,
        };
        let source = Source {
            topic: topic_name,
            qos: 0,
        };
        // A rule's own messages do not feed its message events: a rule on `message_delivered` that republishes
        // would otherwise be told of its own output's delivery, and so on without end.
        let own = match event {
            ClientEvent::Delivered { message, .. }
            | ClientEvent::Acked { message, .. }
            | ClientEvent::Dropped { message, .. } => message.publisher.as_deref(),
            _ => None,
        };
        // Nobody waits for an event: what its rules route is queued, and full queues are not waited for.
        let mut congestion = Congestion::default();
        for rule in rules.iter().filter(|r| own != Some(&*r.runtime.publisher)) {
            self.run(rule, &input, &env, &source, &mut congestion);
        }
    }
}

/// The rules' name for `event`.
fn event_kind(event: &ClientEvent<'_>) -> EventKind {
    match event {
        ClientEvent::Connected { .. } => EventKind::ClientConnected,
        ClientEvent::Disconnected { .. } => EventKind::ClientDisconnected,
        ClientEvent::Subscribed { .. } => EventKind::SessionSubscribed,
        ClientEvent::Unsubscribed { .. } => EventKind::SessionUnsubscribed,
        ClientEvent::Delivered { .. } => EventKind::MessageDelivered,
        ClientEvent::Acked { .. } => EventKind::MessageAcked,
        ClientEvent::Dropped { .. } => EventKind::MessageDropped,
    }
}

/// The `$events/...` topic of `event`.
fn event_topic(event: &ClientEvent<'_>) -> &'static str {
    event_kind(event).topic().unwrap_or("$events/unknown")
}
