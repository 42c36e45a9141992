//! Supervision: a panicking session restarts alone; a shard supervisor that exceeds its restart intensity
//! escalates to the root, which restarts it, and every subscription comes back from the session store.

use crate::common;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::RestartPolicy;
use rumqttc::QoS;

#[tokio::test]
async fn a_panicking_session_restarts_alone_and_its_client_resumes() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut bystander = Client::connect(addr, "bystander").await;
    bystander.subscribe("b", QoS::AtLeastOnce).await;
    let mut o = options(addr, "victim");
    o.set_clean_session(false);
    let mut victim = Client::connect_with(o.clone()).await;
    victim.subscribe("v", QoS::AtLeastOnce).await;

    assert!(broker.chaos().panic_session("victim").await);
    victim.expect_disconnect().await;
    eventually("session restarted", || {
        Metrics::get(&broker.metrics().session_restarts) == 1
    })
    .await;

    broker
        .publish("v", "while down", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    broker
        .publish("b", "unaffected", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(bystander.expect_publish().await.payload.as_ref(), b"unaffected");

    let mut again = Client::start(o);
    assert!(again.expect_connack().await.session_present);
    assert_eq!(again.expect_publish().await.payload.as_ref(), b"while down");
    broker.shutdown().await;
}

#[tokio::test]
async fn shard_restart_intensity_escalates_to_the_root_and_subscriptions_survive() {
    let mut config = test_config();
    config.shard_restarts = RestartPolicy::new(1, 60);
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("s/1", QoS::AtLeastOnce).await;
    let shard = broker.view().shard_of_filter("s/1");

    assert!(broker.chaos().panic_shard(shard).await);
    eventually("first restart by the shard supervisor", || {
        Metrics::get(&broker.metrics().shard_restarts) == 1
    })
    .await;
    eventually("restarted shard registered", || broker.view().subscription_count() == 1).await;
    // Second failure within the window: the shard supervisor gives up and the root restarts it.
    let before = Metrics::get(&broker.metrics().other_restarts);
    let wait_for_new = async {
        loop {
            if broker.chaos().panic_shard(shard).await {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    wait_for_new.await;
    eventually("root restarted the shard supervisor", || {
        Metrics::get(&broker.metrics().other_restarts) == before + 1
    })
    .await;

    broker
        .publish("s/1", "after", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(sub.expect_publish().await.payload.as_ref(), b"after");
    assert_eq!(broker.view().subscription_count(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn library_actors_run_under_the_broker_tree_and_are_restarted() {
    use ractmq::ChildSpec;
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Worker;
    impl Actor for Worker {
        type Msg = ();
        type State = ();
        type Arguments = Arc<AtomicUsize>;
        async fn pre_start(&self, _: ActorRef<()>, starts: Arc<AtomicUsize>) -> Result<(), ActorProcessingErr> {
            starts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
            panic!("worker fails on every message")
        }
    }

    let broker = start_broker().await;
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let spec = ChildSpec::new("worker", move |sup| {
        let s = s.clone();
        async move { Ok(Actor::spawn_linked(None, Worker, s, sup).await?.0.get_cell()) }
    });
    let cell = broker.supervise(spec).await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    ActorRef::<()>::from(cell).send_message(()).unwrap();
    eventually("worker restarted", || starts.load(Ordering::SeqCst) == 2).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn session_restart_intensity_escalates_and_every_session_comes_back_from_the_store() {
    let mut config = test_config();
    config.session_restarts = RestartPolicy::new(1, 60);
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let persistent = |id: &str| {
        let mut o = options(addr, id);
        o.set_clean_session(false);
        o
    };
    let mut clients = Vec::new();
    for id in ["a", "b", "c"] {
        let mut c = Client::connect_with(persistent(id)).await;
        c.subscribe(&format!("to/{id}"), QoS::AtLeastOnce).await;
        clients.push(c);
    }
    // The first panic is restarted alone; the second exceeds 1 restart per minute: the session supervisor
    // fails, the root restarts it, and it restarts every session in the store.
    assert!(broker.chaos().panic_session("a").await);
    clients[0].expect_disconnect().await;
    eventually("a restarted alone", || {
        Metrics::get(&broker.metrics().session_restarts) == 1
    })
    .await;
    let other_restarts = Metrics::get(&broker.metrics().other_restarts);
    assert!(broker.chaos().panic_session("b").await);
    eventually("root restarted the session supervisor", || {
        Metrics::get(&broker.metrics().other_restarts) == other_restarts + 1
    })
    .await;
    clients[1].expect_disconnect().await;
    clients[2].expect_disconnect().await;

    for id in ["a", "b", "c"] {
        broker
            .publish(&format!("to/{id}"), id.to_string(), ractmq::QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    for id in ["a", "b", "c"] {
        let mut again = Client::start(persistent(id));
        assert!(again.expect_connack().await.session_present, "{id} resumes");
        assert_eq!(again.expect_publish().await.payload.as_ref(), id.as_bytes());
    }
    broker.shutdown().await;
}
