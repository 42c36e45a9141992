//! A supervision tree of the program's own actors beside an embedded broker: a pipeline that takes the
//! Celsius readings the broker receives, converts them to Fahrenheit and publishes them again, restarted the
//! OTP way when a stage fails, without losing a reading the broker acknowledged.
//!
//! Run it with `cargo run --example topology`: it publishes 20 readings (one of them not a number), waits
//! until each has come out converted or dead-lettered, prints what happened and stops.
//!
//! ```text
//! user (the broker's)
//! └── pipeline    rest-for-one, at most 5 restarts in 10 s
//!     ├── republish   publishes each result, acknowledging its reading first
//!     ├── convert     Celsius to Fahrenheit; fails on a reading that is not a number
//!     └── intake      takes readings from the inbox (in-process, at-least-once) and hands them to convert
//! ```
//!
//! Why rest-for-one, in that order: each stage takes the `ActorRef` of the next one when it starts, so a
//! stage started again leaves the stages started after it holding a dead one; and what dies in a stage's
//! mailbox can only be handed out again by the intake, which does it each time it starts (a new inbox
//! reader). With the downstream stages first, rest-for-one restarts exactly what must be: convert failing
//! restarts convert and intake, republish failing all three, intake failing only intake. One-for-all would
//! restart republish needlessly; one-for-one would leave intake sending to a dead convert.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractmq::{Broker, BrokerConfig, ChildSpec, Delivery, Inbox, InboxReader, Publisher, QoS, Strategy, Tree, TreeSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};

const READINGS: usize = 20;
/// A reading that still fails on its third attempt goes to the dead letters instead of failing again: a
/// message that always fails would otherwise exhaust the restart intensity and take the tree down.
const MAX_ATTEMPTS: u32 = 3;

/// What convert hands to republish: where to publish what, for which inbox delivery.
struct Out {
    id: u64,
    topic: String,
    payload: String,
}

// Local only (ractor's cluster mode asks every message type to say so).
impl ractor::Message for Out {}

/// The last stage. It acknowledges a reading and publishes the result in one step, with no await between
/// (`Publisher::publish` routes before it first waits), so a kill cannot fall between the two: each reading
/// comes out exactly once, however often it was handed out.
struct Republish;

impl Actor for Republish {
    type Msg = Out;
    type State = (Publisher, Inbox);
    type Arguments = (Publisher, Inbox);

    async fn pre_start(&self, _: ActorRef<Out>, args: Self::Arguments) -> Result<Self::State, ActorProcessingErr> {
        println!("  republish started");
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<Out>,
        out: Out,
        (publisher, inbox): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if inbox.ack(out.id) {
            publisher
                .publish(&out.topic, out.payload, QoS::AtLeastOnce, false)
                .await?;
        }
        Ok(())
    }
}

struct Convert;

impl Actor for Convert {
    type Msg = Delivery;
    type State = ActorRef<Out>;
    type Arguments = ActorRef<Out>;

    async fn pre_start(&self, _: ActorRef<Delivery>, next: ActorRef<Out>) -> Result<ActorRef<Out>, ActorProcessingErr> {
        println!("  convert started");
        Ok(next)
    }

    async fn handle(
        &self,
        _: ActorRef<Delivery>,
        d: Delivery,
        next: &mut ActorRef<Out>,
    ) -> Result<(), ActorProcessingErr> {
        let text = String::from_utf8_lossy(&d.message.payload).into_owned();
        let out = match text.parse::<f64>() {
            Ok(celsius) => Out {
                id: d.id,
                topic: d.message.topic.replace("/celsius", "/fahrenheit"),
                payload: format!("{:.1}", celsius * 9.0 / 5.0 + 32.0),
            },
            Err(_) if d.attempt >= MAX_ATTEMPTS => Out {
                id: d.id,
                topic: format!("dead-letter/{}", d.message.topic),
                payload: text,
            },
            Err(_) => {
                println!("  convert fails on {text:?} (attempt {})", d.attempt);
                return Err(format!("not a temperature: {text:?}").into());
            }
        };
        next.send_message(out)?;
        Ok(())
    }
}

/// Pulls one reading at a time from the inbox; a new run takes a new reader, which hands out again whatever
/// the stages that restarted with it had not finished.
struct Intake;

struct Pull;

impl ractor::Message for Pull {}

impl Actor for Intake {
    type Msg = Pull;
    type State = (InboxReader, ActorRef<Delivery>);
    type Arguments = (Inbox, ActorRef<Delivery>);

    async fn pre_start(
        &self,
        _: ActorRef<Pull>,
        (inbox, next): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        println!("  intake started ({} readings to hand out again)", inbox.unacked());
        Ok((inbox.reader(), next))
    }

    async fn post_start(&self, me: ActorRef<Pull>, _: &mut Self::State) -> Result<(), ActorProcessingErr> {
        Ok(me.send_message(Pull)?)
    }

    async fn handle(
        &self,
        me: ActorRef<Pull>,
        _: Pull,
        (reader, next): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // None: the broker is stopping (or a newer reader took over); there is nothing more to pull.
        if let Some(delivery) = reader.next().await {
            next.send_message(delivery)?;
            me.send_message(Pull)?;
        }
        Ok(())
    }
}

/// The pipeline's spec: downstream stages first, each finding the next through the tree's handle.
fn pipeline(broker: &Broker, inbox: &Inbox, restarts: &Arc<AtomicU32>) -> TreeSpec {
    let spec = TreeSpec::new("pipeline")
        .strategy(Strategy::RestForOne)
        .intensity(5, Duration::from_secs(10));
    let tree = spec.handle();
    let counted = |spec: ChildSpec| {
        let restarts = restarts.clone();
        spec.on_restart(move || {
            restarts.fetch_add(1, Ordering::Relaxed);
        })
    };
    let (p, i) = (Publisher::new(broker), inbox.clone());
    let republish = ChildSpec::new("republish", move |sup| {
        let args = (p.clone(), i.clone());
        async move { Ok(Actor::spawn_linked(None, Republish, args, sup).await?.0.get_cell()) }
    });
    let t = tree.clone();
    let convert = ChildSpec::new("convert", move |sup| {
        let next = next_stage::<Out>(&t, "republish");
        async move { Ok(Actor::spawn_linked(None, Convert, next?, sup).await?.0.get_cell()) }
    });
    let (t, i) = (tree, inbox.clone());
    let intake = ChildSpec::new("intake", move |sup| {
        let args = next_stage::<Delivery>(&t, "convert").map(|next| (i.clone(), next));
        async move { Ok(Actor::spawn_linked(None, Intake, args?, sup).await?.0.get_cell()) }
    });
    spec.child(counted(republish))
        .child(counted(convert))
        .child(counted(intake))
}

/// A sibling started before the caller; its absence fails the start (and so escalates).
fn next_stage<M: ractor::Message>(tree: &Tree, name: &str) -> Result<ActorRef<M>, ractor::SpawnErr> {
    tree.actor(name)
        .ok_or_else(|| ractor::SpawnErr::StartupFailed(format!("{name} is not running").into()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = BrokerConfig {
        mqtt_listen: "127.0.0.1:0".parse()?,
        sys_interval: Duration::ZERO,
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config).await?;
    println!("broker listening on {}", broker.mqtt_addr());

    // The inbox is opened here, outside the tree, so that it outlives every stage that reads it.
    let inbox = Inbox::open(&broker, "sensors/+/celsius", 256).await?;
    let mut converted = broker.subscribe("sensors/+/fahrenheit", 256).await?;
    let mut dead = broker.subscribe("dead-letter/#", 16).await?;
    let restarts = Arc::new(AtomicU32::new(0));
    println!("starting the pipeline:");
    broker
        .user_tree()
        .start_tree(pipeline(&broker, &inbox, &restarts))
        .await?;

    println!("publishing {READINGS} readings, the 8th not a number:");
    for i in 0..READINGS {
        let reading = if i == 7 { "n/a".to_string() } else { format!("{i}.5") };
        let topic = format!("sensors/room{}/celsius", i % 3);
        broker.publish(&topic, reading, QoS::AtLeastOnce, false).await?;
    }

    let (mut outputs, mut dead_letters) = (0, 0);
    while outputs + dead_letters < READINGS {
        tokio::select! {
            Some(m) = converted.recv() => {
                outputs += 1;
                println!("{} = {} F", m.topic, String::from_utf8_lossy(&m.payload));
            }
            Some(m) = dead.recv() => {
                dead_letters += 1;
                println!("dead letter on {}: {:?}", m.topic, String::from_utf8_lossy(&m.payload));
            }
        }
    }
    println!(
        "done: {outputs} converted, {dead_letters} dead-lettered, {} stage restarts (rest-for-one), {} unacknowledged",
        restarts.load(Ordering::Relaxed),
        inbox.unacked()
    );
    broker.shutdown().await;
    Ok(())
}
