//! The supervised actor of one bridge. It owns the bridge's pump task and fails when the pump does, so that
//! the `bridges` supervisor restarts it; a kill aborts the pump with it. Its state is nothing the bridge needs
//! back: the messages are in its local session (in the session store, and the node's store with durability),
//! its counters in the registry, its configuration in the child spec.

use std::sync::Arc;

use ractmq_broker::BrokerView;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::BridgeConfig;
use crate::mqtt_pump::{Control, Pump};
use crate::sink_pump::SinkPump;
use crate::stats::Counters;

/// What a bridge actor starts from: the same on every restart.
#[derive(Clone)]
pub(crate) struct BridgeArgs {
    pub(crate) config: Arc<BridgeConfig>,
    pub(crate) view: BrokerView,
    pub(crate) stats: Arc<Counters>,
}

pub(crate) struct BridgeActor;

pub(crate) enum BridgeMsg {
    /// The pump ended: `Err` fails the actor (and restarts it).
    PumpEnded(Result<(), String>),
}

// Local only (ractor's cluster mode asks every message type to say so).
impl ractor::Message for BridgeMsg {}

pub(crate) struct BridgeState {
    pump: Option<JoinHandle<()>>,
    control: mpsc::Sender<Control>,
}

impl Drop for BridgeState {
    /// A killed actor's state is dropped without `post_stop`: the pump goes with it.
    fn drop(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
    }
}

impl Actor for BridgeActor {
    type Msg = BridgeMsg;
    type State = BridgeState;
    type Arguments = BridgeArgs;

    async fn pre_start(&self, me: ActorRef<BridgeMsg>, args: BridgeArgs) -> Result<BridgeState, ActorProcessingErr> {
        let (control, commands) = mpsc::channel(1);
        let task = match &*args.config {
            BridgeConfig::Mqtt(config) => {
                let pump = Pump::new(Arc::new(config.clone()), &args.view, args.stats.clone());
                tokio::spawn(async move {
                    let ended = pump.run(commands).await;
                    let _ = me.send_message(BridgeMsg::PumpEnded(ended));
                })
            }
            sink => {
                let pump = SinkPump::new(sink, &args.view, args.stats.clone())?;
                tokio::spawn(async move {
                    let ended = pump.run(commands).await;
                    let _ = me.send_message(BridgeMsg::PumpEnded(ended));
                })
            }
        };
        Ok(BridgeState {
            pump: Some(task),
            control,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<BridgeMsg>,
        msg: BridgeMsg,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BridgeMsg::PumpEnded(Ok(())) => {
                state.pump = None;
                me.stop(Some("stopped".into()));
                Ok(())
            }
            BridgeMsg::PumpEnded(Err(why)) => {
                state.pump = None;
                Err(why.into())
            }
        }
    }

    async fn post_stop(&self, _me: ActorRef<BridgeMsg>, state: &mut BridgeState) -> Result<(), ActorProcessingErr> {
        // A stop asked for: the pump says goodbye to both brokers (their sessions stay) before it goes.
        if let Some(mut pump) = state.pump.take() {
            let _ = state.control.try_send(Control::Stop);
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut pump)
                .await
                .is_err()
            {
                pump.abort();
            }
        }
        Ok(())
    }
}
