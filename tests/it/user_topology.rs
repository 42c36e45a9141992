//! Library users' supervision trees (`TreeSpec` under the broker's `user` supervisor): each restart strategy
//! restarts what it says, intensity escalates to the parent, and the `user` supervisor's own restart brings
//! back the children added at run time.

use crate::common;

use std::time::Duration;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::{ChildSpec, Strategy, SupervisorMsg, Tree, TreeSpec};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

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
