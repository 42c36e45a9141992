//! The guardian above the root supervisor: it starts the root, and when the root gives up (its restart
//! intensity exceeded) it records why, in one line, so that the program can say so and exit with a failure
//! instead of running on with a dead broker. OTP's application controller does this for a top supervisor.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::kernel::Kernel;
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};

pub struct Guardian;

pub struct GuardianArgs {
    pub kernel: Arc<Kernel>,
    pub root: SupervisorArgs,
}

pub struct GuardianState {
    kernel: Arc<Kernel>,
    pub root: ActorRef<SupervisorMsg>,
}

/// The guardian takes no messages: it only watches the root.
pub enum GuardianMsg {}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for GuardianMsg {}

impl Actor for Guardian {
    type Msg = GuardianMsg;
    type State = GuardianState;
    type Arguments = GuardianArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GuardianMsg>,
        args: GuardianArgs,
    ) -> Result<GuardianState, ActorProcessingErr> {
        let (root, _) = Actor::spawn_linked(None, Supervisor, args.root, myself.get_cell()).await?;
        args.kernel.set_root(root.clone());
        Ok(GuardianState {
            kernel: args.kernel,
            root,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<GuardianMsg>,
        event: SupervisionEvent,
        state: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) if cell.get_id() == state.root.get_id() => {
                let line = format!("the broker stopped: {error} (the log above shows each failure that led to it)");
                tracing::error!("{line}");
                state.kernel.report_down(line);
                myself.stop(None);
            }
            SupervisionEvent::ActorTerminated(cell, _, _) if cell.get_id() == state.root.get_id() => {
                myself.stop(None);
            }
            _ => {}
        }
        Ok(())
    }
}
