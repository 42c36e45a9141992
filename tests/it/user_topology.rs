//! Library users' supervision trees (`TreeSpec` under the broker's `user` supervisor): each restart strategy
//! restarts what it says, intensity escalates to the parent, the `user` supervisor's own restart brings back
//! the children added at run time, and a pipeline fed by an `Inbox` loses and repeats nothing while its
//! members are killed under QoS 1 traffic from real MQTT clients.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::{ChildSpec, Delivery, Inbox, InboxReader, Publisher, Strategy, SupervisorMsg, Tree, TreeSpec};
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef};
use rumqttc::{Packet, QoS};
use tokio::sync::{mpsc, Semaphore};

/// A child that reports each start by name and fails on any message.
struct Probe;

impl Actor for Probe {
    type Msg = ();
    type State = ();
    type Arguments = (String, mpsc::UnboundedSender<String>);

    async fn pre_start(&self, _: ActorRef<()>, (name, starts): Self::Arguments) -> Result<(), ActorProcessingErr> {
        let _ = starts.send(name);
        Ok(())
    }

    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("asked to fail".into())
    }
}

fn probe(name: &str, starts: &mpsc::UnboundedSender<String>) -> ChildSpec {
    let (name, starts) = (name.to_string(), starts.clone());
    ChildSpec::new(name.clone(), move |sup| {
        let args = (name.clone(), starts.clone());
        async move { Ok(Actor::spawn_linked(None, Probe, args, sup).await?.0.get_cell()) }
    })
}

/// Wait for the next `names.len()` starts and check they are `names`, in that order.
async fn expect_starts(starts: &mut mpsc::UnboundedReceiver<String>, names: &[&str]) {
    let mut got = Vec::new();
    while got.len() < names.len() {
        match tokio::time::timeout(DEADLINE, starts.recv()).await {
            Ok(Some(name)) => got.push(name),
            _ => panic!("expected starts {names:?}, got only {got:?}"),
        }
    }
    assert_eq!(got, names);
}

/// Once `tree`'s supervisor has finished what it was doing (a call it answers after), no start is left
/// unseen.
async fn expect_no_more_starts(tree: &Tree, starts: &mut mpsc::UnboundedReceiver<String>) {
    let supervisor = tree.supervisor().expect("supervisor running");
    ractor::call!(supervisor, SupervisorMsg::Children).unwrap();
    assert_eq!(starts.try_recv().ok(), None, "no other child restarted");
}

fn ids(tree: &Tree, names: &[&str]) -> Vec<ActorId> {
    names.iter().map(|n| tree.cell(n).expect("running").get_id()).collect()
}

/// Start a, b, c under `strategy`, make b fail, and check that exactly `restarted` start again, in order.
async fn fail_b_under(strategy: Strategy, restarted: &[&str]) {
    let broker = start_broker().await;
    let (tx, mut starts) = mpsc::unbounded_channel();
    let spec = TreeSpec::new("abc")
        .strategy(strategy)
        .intensity(10, Duration::from_secs(10))
        .child(probe("a", &tx))
        .child(probe("b", &tx))
        .child(probe("c", &tx));
    let tree = broker.user_tree().start_tree(spec).await.unwrap();
    expect_starts(&mut starts, &["a", "b", "c"]).await;
    let before = ids(&tree, &["a", "b", "c"]);

    tree.actor::<()>("b").unwrap().send_message(()).unwrap();
    expect_starts(&mut starts, restarted).await;
    expect_no_more_starts(&tree, &mut starts).await;
    let after = ids(&tree, &["a", "b", "c"]);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(before[i] != after[i], restarted.contains(name), "{name} restarted");
    }
    assert_eq!(tree.children(), ["a", "b", "c"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    fail_b_under(Strategy::OneForOne, &["b"]).await;
}

#[tokio::test]
async fn one_for_all_restarts_every_child_in_order() {
    fail_b_under(Strategy::OneForAll, &["a", "b", "c"]).await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    fail_b_under(Strategy::RestForOne, &["b", "c"]).await;
}

/// The broker's view of its running tree (what `GET /api/v1/supervision` serves) shows user trees nested, with
/// their strategies and intensities, and counts each child's restarts, those a strategy caused included.
#[tokio::test]
async fn the_supervision_tree_shows_nested_user_trees_and_counts_each_restart() {
    let broker = start_broker().await;
    let (tx, mut starts) = mpsc::unbounded_channel();
    let inner = TreeSpec::new("inner")
        .strategy(Strategy::OneForAll)
        .child(probe("leaf", &tx));
    let spec = TreeSpec::new("pipeline")
        .strategy(Strategy::RestForOne)
        .intensity(5, Duration::from_secs(20))
        .child(probe("parse", &tx))
        .child(probe("store", &tx))
        .subtree(inner);
    let pipeline = broker.user_tree().start_tree(spec).await.unwrap();
    expect_starts(&mut starts, &["parse", "store", "leaf"]).await;
    let find = |node: &ractmq::parts::broker::TreeNode, name: &str| {
        (node.children.iter().find(|c| c.name == name).cloned())
            .unwrap_or_else(|| panic!("no {name} under {}", node.name))
    };

    let tree = broker.view().supervision_tree().await;
    let user = find(&tree, "user");
    let shown = find(&user, "pipeline");
    assert!(shown.supervisor && shown.status == "running");
    assert_eq!(shown.strategy, Some(Strategy::RestForOne));
    let intensity = shown.intensity.expect("answered");
    assert_eq!(
        (intensity.max_restarts(), intensity.window()),
        (5, Duration::from_secs(20))
    );
    let names: Vec<&str> = shown.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["parse", "store", "inner"]);
    let inner = find(&shown, "inner");
    assert_eq!((inner.supervisor, inner.strategy), (true, Some(Strategy::OneForAll)));
    assert_eq!(find(&inner, "leaf").status, "running");
    assert!(!find(&shown, "parse").supervisor);

    // parse fails: rest-for-one restarts it and everything started after it, and counts each.
    pipeline.actor::<()>("parse").unwrap().send_message(()).unwrap();
    expect_starts(&mut starts, &["parse", "store", "leaf"]).await;
    expect_no_more_starts(&pipeline, &mut starts).await;
    let tree = broker.view().supervision_tree().await;
    let shown = find(&find(&tree, "user"), "pipeline");
    let restarts: Vec<u64> = shown.children.iter().map(|c| c.restarts).collect();
    assert_eq!(restarts, [1, 1, 1]);
    assert_eq!(
        find(&find(&shown, "inner"), "leaf").restarts,
        0,
        "started again with inner, not restarted by it"
    );
    assert_eq!(find(&tree, "user").restarts, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn exceeding_the_intensity_escalates_to_the_parent_tree() {
    let broker = start_broker().await;
    let (tx, mut starts) = mpsc::unbounded_channel();
    let inner = TreeSpec::new("inner")
        .intensity(1, Duration::from_secs(60))
        .child(probe("x", &tx))
        .child(probe("y", &tx));
    let outer = TreeSpec::new("outer")
        .intensity(10, Duration::from_secs(10))
        .subtree(inner)
        .child(probe("z", &tx));
    let outer = broker.user_tree().start_tree(outer).await.unwrap();
    let inner = outer.subtree("inner").unwrap();
    expect_starts(&mut starts, &["x", "y", "z"]).await;
    let inner_sup = inner.supervisor().unwrap().get_id();
    let z = outer.cell("z").unwrap().get_id();

    // The first failure is within inner's intensity: x restarts alone.
    inner.actor::<()>("x").unwrap().send_message(()).unwrap();
    expect_starts(&mut starts, &["x"]).await;
    expect_no_more_starts(&inner, &mut starts).await;
    // The second is not: inner fails, and outer (one-for-one) restarts it with both its children.
    inner.actor::<()>("x").unwrap().send_message(()).unwrap();
    expect_starts(&mut starts, &["x", "y"]).await;
    expect_no_more_starts(&outer, &mut starts).await;
    assert_ne!(
        inner.supervisor().unwrap().get_id(),
        inner_sup,
        "inner restarted by outer"
    );
    assert_eq!(outer.cell("z").unwrap().get_id(), z, "z untouched");
    broker.shutdown().await;
}

#[tokio::test]
async fn restarting_the_user_supervisor_starts_children_added_at_run_time_again_in_order() {
    let broker = start_broker().await;
    let (tx, mut starts) = mpsc::unbounded_channel();
    broker.supervise(probe("first", &tx)).await.unwrap();
    let tree = TreeSpec::new("tree")
        .child(probe("second", &tx))
        .child(probe("third", &tx));
    broker.user_tree().start_tree(tree).await.unwrap();
    broker.supervise(probe("fourth", &tx)).await.unwrap();
    expect_starts(&mut starts, &["first", "second", "third", "fourth"]).await;
    let refused = broker.supervise(probe("first", &tx)).await;
    assert!(refused.unwrap_err().contains("already has a child named first"));

    let restarts = Metrics::get(&broker.metrics().other_restarts);
    broker.user_tree().supervisor().unwrap().kill();
    expect_starts(&mut starts, &["first", "second", "third", "fourth"]).await;
    eventually("root restarted user", || {
        Metrics::get(&broker.metrics().other_restarts) == restarts + 1
    })
    .await;
    // The handle follows the new supervisor.
    broker.supervise(probe("fifth", &tx)).await.unwrap();
    expect_starts(&mut starts, &["fifth"]).await;
    let tree = broker.user_tree().subtree("tree").unwrap();
    assert!(tree.cell("second").is_some() && tree.cell("third").is_some());
    assert_eq!(broker.user_tree().children(), ["first", "tree", "fourth", "fifth"]);
    broker.shutdown().await;
}

// The pipeline: source (inbox reader) -> transform -> republish, under rest-for-one with the downstream
// stages first, as in examples/topology.rs (which says why).

/// What transform hands to republish: inbox delivery id, topic, payload.
struct Out(u64, String, Vec<u8>);

impl ractor::Message for Out {}

/// Acknowledges and publishes in one step (no await between): each message is published once. It takes a
/// permit from the test's gate first, so that the test decides how much flows and messages are surely in
/// flight inside the pipeline when it kills something.
struct Republish;

impl Actor for Republish {
    type Msg = Out;
    type State = (Publisher, Inbox, Arc<Semaphore>);
    type Arguments = (Publisher, Inbox, Arc<Semaphore>);

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        Out(id, topic, payload): Out,
        (publisher, inbox, gate): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        gate.acquire().await?.forget();
        if inbox.ack(id) {
            publisher
                .publish(&topic, payload, ractmq::QoS::AtLeastOnce, false)
                .await?;
        }
        Ok(())
    }
}

/// in/N -> out/N, payload upper-cased.
struct Transform;

impl Actor for Transform {
    type Msg = Delivery;
    type State = ActorRef<Out>;
    type Arguments = ActorRef<Out>;

    async fn pre_start(&self, _: ActorRef<Delivery>, next: Self::State) -> Result<Self::State, ActorProcessingErr> {
        Ok(next)
    }

    async fn handle(
        &self,
        _: ActorRef<Delivery>,
        d: Delivery,
        next: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let topic = d.message.topic.replacen("in/", "out/", 1);
        next.send_message(Out(d.id, topic, d.message.payload.to_ascii_uppercase()))?;
        Ok(())
    }
}

struct Source;

struct Pull;

impl ractor::Message for Pull {}

impl Actor for Source {
    type Msg = Pull;
    type State = (InboxReader, ActorRef<Delivery>);
    type Arguments = (Inbox, ActorRef<Delivery>);

    async fn pre_start(
        &self,
        me: ActorRef<Pull>,
        (inbox, next): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_message(Pull)?;
        Ok((inbox.reader(), next))
    }

    async fn handle(
        &self,
        me: ActorRef<Pull>,
        _: Pull,
        (reader, next): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // None: the broker stopped (or another reader took over); nothing more to pull.
        if let Some(delivery) = reader.next().await {
            next.send_message(delivery)?;
            me.send_message(Pull)?;
        }
        Ok(())
    }
}

/// A stage's spec: counts its starts and builds its arguments at each start, when the stages after which it
/// was started (the next one, which it sends to) are already running again.
fn stage<A, F>(name: &str, tree: &Tree, actor: fn() -> A, args: F, starts: &Arc<AtomicU32>) -> ChildSpec
where
    A: Actor,
    F: Fn(&Tree) -> Option<A::Arguments> + Send + Sync + 'static,
{
    let (tree, starts) = (tree.clone(), starts.clone());
    ChildSpec::new(name, move |sup| {
        starts.fetch_add(1, Ordering::SeqCst);
        let args = args(&tree);
        async move {
            let args = args.ok_or_else(|| ractor::SpawnErr::StartupFailed("next stage not running".into()))?;
            Ok(Actor::spawn_linked(None, actor(), args, sup).await?.0.get_cell())
        }
    })
}

fn pipeline(publisher: Publisher, inbox: Inbox, gate: Arc<Semaphore>, starts: &Arc<AtomicU32>) -> TreeSpec {
    let spec = TreeSpec::new("pipeline")
        .strategy(Strategy::RestForOne)
        .intensity(100, Duration::from_secs(10));
    let tree = spec.handle();
    let i = inbox.clone();
    spec.child(stage(
        "republish",
        &tree,
        || Republish,
        move |_| Some((publisher.clone(), i.clone(), gate.clone())),
        starts,
    ))
    .child(stage(
        "transform",
        &tree,
        || Transform,
        |t| t.actor("republish"),
        starts,
    ))
    .child(stage(
        "source",
        &tree,
        || Source,
        move |t| Some((inbox.clone(), t.actor("transform")?)),
        starts,
    ))
}

/// The current run of `victim` (a stage, or the pipeline's supervisor).
fn member(pipeline: &Tree, victim: &str) -> Option<ActorCell> {
    match victim {
        "pipeline" => pipeline.supervisor().map(|s| s.get_cell()),
        stage => pipeline.cell(stage),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_whose_members_are_killed_publishes_every_acknowledged_message_exactly_once() {
    const MESSAGES: usize = 400;
    /// Released to the republish stage just before each kill, so that it dies with messages moving.
    const FLOWING: usize = 20;
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    // Large enough that the broker never drops for the inbox, and that the pipeline takes in everything.
    let inbox = Inbox::open(&broker, "in/#", 2 * MESSAGES).await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let starts = Arc::new(AtomicU32::new(0));
    let spec = pipeline(Publisher::new(&broker), inbox.clone(), gate.clone(), &starts);
    let pipeline = broker.user_tree().start_tree(spec).await.unwrap();
    let mut sub = Client::connect(addr, "out-sub").await;
    sub.subscribe("out/#", QoS::AtLeastOnce).await;

    // Every PUBACK the publisher counts is a message the broker (and so the inbox) acknowledged.
    let mut publisher = Client::connect(addr, "in-pub").await;
    let publishing = tokio::spawn(async move {
        for i in 0..MESSAGES {
            publisher
                .publish(&format!("in/{i}"), QoS::AtLeastOnce, false, format!("m{i}"))
                .await;
        }
        let mut acked = 0;
        while acked < MESSAGES {
            publisher
                .expect("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
                .await;
            acked += 1;
        }
        acked
    });
    eventually("the pipeline holds messages", || inbox.unacked() >= MESSAGES / 4).await;

    // Each kill lands with messages in every stage's mailbox or on their way out: the republish stage's
    // (lost if it dies, handed out again by the new intake) and behind it (handed out again while the first
    // copy is still on its way when only the source dies: the republish stage must publish it once).
    let victims = ["transform", "republish", "source", "pipeline", "transform", "source"];
    for victim in victims {
        let before = member(&pipeline, victim).expect("running").get_id();
        assert!(inbox.unacked() > FLOWING, "messages in flight when {victim} is killed");
        gate.add_permits(FLOWING);
        member(&pipeline, victim).unwrap().kill();
        eventually(&format!("{victim} restarted"), || {
            member(&pipeline, victim).is_some_and(|c| c.get_id() != before) && pipeline.cell("source").is_some()
        })
        .await;
    }
    gate.add_permits(Semaphore::MAX_PERMITS / 2);

    let mut seen: BTreeMap<usize, u32> = BTreeMap::new();
    while seen.len() < MESSAGES {
        let p = sub.expect_publish().await;
        let id: usize = p.topic.strip_prefix("out/").unwrap().parse().unwrap();
        assert_eq!(p.payload.as_ref(), format!("M{id}").as_bytes());
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(publishing.await.unwrap(), MESSAGES);
    // A barrier: a duplicate, published before it, would arrive before it.
    broker
        .publish("out/end", "", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    for p in sub.publishes_until("out/end").await {
        *seen
            .entry(p.topic.strip_prefix("out/").unwrap().parse().unwrap())
            .or_default() += 1;
    }

    let not_once: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(not_once.is_empty(), "ids not published exactly once: {not_once:?}");
    assert!(starts.load(Ordering::SeqCst) >= 3 + 10, "stages were restarted");
    assert_eq!(inbox.unacked(), 0);
    assert_eq!(Metrics::get(&broker.metrics().dropped_local_subscriber), 0);
    broker.shutdown().await;
}
