//! Embed ractmq in a program: start a broker, publish and subscribe in-process without a socket, and run an
//! actor of your own under the broker's supervision tree.
//!
//! Run it with `cargo run --example embedded`; it also accepts MQTT clients on 127.0.0.1:1884 while it runs.

use std::time::Duration;

use ractmq::{Broker, BrokerConfig, ChildSpec, QoS};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// An application actor: counts temperature readings and fails on a bad one; the broker's `user` supervisor
/// restarts it.
struct Thermometer;

impl Actor for Thermometer {
    type Msg = f64;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<f64>, _: ()) -> Result<u64, ActorProcessingErr> {
        println!("thermometer started");
        Ok(0)
    }

    async fn handle(&self, _me: ActorRef<f64>, reading: f64, count: &mut u64) -> Result<(), ActorProcessingErr> {
        if reading.is_nan() {
            return Err("not a temperature".into());
        }
        *count += 1;
        println!("reading #{count}: {reading}");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = BrokerConfig {
        mqtt_listen: "127.0.0.1:1884".parse()?,
        sys_interval: Duration::ZERO,
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config).await?;
    println!("broker listening on {}", broker.mqtt_addr());

    // Our own actor, supervised by the broker (restarted if it fails).
    let spec = ChildSpec::new("thermometer", |sup| async move {
        let (actor, _) = Actor::spawn_linked(None, Thermometer, (), sup).await?;
        Ok(actor.get_cell())
    });
    let cell = broker.supervise(spec).await?;
    let thermometer: ActorRef<f64> = cell.into();

    // An in-process subscription: a typed handle; the subscription ends when it is dropped.
    let mut readings = broker.subscribe("sensors/+/temperature", 64).await?;
    for (room, value) in [("kitchen", "21.5"), ("garage", "9.0")] {
        broker
            .publish(&format!("sensors/{room}/temperature"), value, QoS::AtLeastOnce, false)
            .await?;
    }
    for _ in 0..2 {
        let message = readings.recv().await.expect("broker running");
        let value: f64 = std::str::from_utf8(&message.payload)?.parse()?;
        println!("{} = {value}", message.topic);
        thermometer.send_message(value)?;
    }
    drop(readings);

    // A bad reading makes the actor fail; the broker's `user` supervisor starts it again ("thermometer started"
    // is printed a second time). The old ActorRef is dead after that, as in Erlang.
    thermometer.send_message(f64::NAN)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.shutdown().await;
    Ok(())
}
