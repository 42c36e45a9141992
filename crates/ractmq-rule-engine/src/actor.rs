//! One actor per rule, under the `rules` supervisor: it retries the rule's failed actions with a doubling
//! backoff and dead-letters what fails past `max_retries`. Rules themselves run inline where messages are
//! published (see `hook.rs`); the actor holds only retries, and a retry lost with it (a crash) is counted as
//! failed by nobody — the rule's state (SQL, counters) lives in the registry and comes back with the restart.

use std::sync::Arc;
use std::time::Duration;

use ractmq_broker::{BrokerView, Congestion};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::actions;
use crate::live::LiveRule;
pub use crate::rule_msg::RuleMsg;
use crate::stats::RuleCounters;

/// The actor of one rule.
pub struct RuleActor;

/// Its arguments.
#[derive(Clone)]
pub struct RuleArgs {
    /// The rule.
    pub rule: Arc<LiveRule>,
    /// The node.
    pub view: BrokerView,
}

impl Actor for RuleActor {
    type Msg = RuleMsg;
    type State = RuleArgs;
    type Arguments = RuleArgs;

    async fn pre_start(&self, myself: ActorRef<RuleMsg>, args: RuleArgs) -> Result<RuleArgs, ActorProcessingErr> {
        args.rule.set_actor(Some(myself));
        Ok(args)
    }

    async fn post_stop(&self, _: ActorRef<RuleMsg>, state: &mut RuleArgs) -> Result<(), ActorProcessingErr> {
        state.rule.set_actor(None);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RuleMsg>,
        msg: RuleMsg,
        state: &mut RuleArgs,
    ) -> Result<(), ActorProcessingErr> {
        let rule = &state.rule.runtime;
        match msg {
            RuleMsg::Retry(retry) => {
                let backoff =
                    Duration::from_millis(rule.config.retry_backoff_ms.saturating_mul(1 << retry.attempt.min(16)));
                myself.send_after(backoff, move || RuleMsg::Attempt(retry));
            }
            RuleMsg::Attempt(mut retry) => {
                let counters = &rule.counters.actions[retry.action];
                RuleCounters::add(&counters.retried);
                let mut congestion = Congestion::default();
                match retry.delivery.deliver(&state.view, &mut congestion) {
                    Ok(()) => {
                        RuleCounters::add(&counters.success);
                        state.rule.retry_done();
                    }
                    Err(why) if retry.attempt + 1 >= rule.config.max_retries => {
                        RuleCounters::add(&counters.failed);
                        let message = retry.delivery.message();
                        let why = format!("{why} (after {} retries)", retry.attempt + 1);
                        actions::dead_letter(
                            &state.view,
                            rule,
                            &message.topic,
                            message.payload.clone(),
                            &why,
                            &mut congestion,
                        );
                        state.rule.retry_done();
                    }
                    Err(_) => {
                        retry.attempt += 1;
                        let _ = myself.cast(RuleMsg::Retry(retry));
                    }
                }
                // A retry's copies are stored before the next retry goes, as a publisher's would be.
                congestion.wait().await;
            }
        }
        Ok(())
    }
}
