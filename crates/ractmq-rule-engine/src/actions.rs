//! Carrying out a rule's actions for one output row, inline, where the rule ran (the publisher's session
//! actor for a message): a republish or a bridge's copy is routed with the publisher's congestion, so the
//! publisher's PUBACK waits for it like for any of its copies, and nothing a rule produced from an
//! acknowledged message is lost by a crash after it.
//!
//! An action that fails for a reason that may pass (the bridge does not exist yet) is handed to the rule's
//! actor to try again (`actor.rs`); one that cannot succeed (a template names a field the row lacks, a topic
//! is invalid) is dead-lettered at once, on the rule's dead-letter topic with the reason as a user property.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use ractmq_broker::{BrokerView, Congestion};
use ractmq_codec::QoS;
use ractmq_protocol::Message;
use ractmq_rules::{Map, Template, Value};

use crate::compiled::{Action, RuleRuntime};
use crate::stats::RuleCounters;

/// The user property that says why a dead letter failed.
pub const REASON_PROPERTY: &str = "reason";

/// What the row came from.
pub(crate) struct Source<'a> {
    /// The matched message's topic (the event topic for events).
    pub topic: &'a str,
    /// The matched message's QoS (0 for events).
    pub qos: u8,
}

/// An action's message that could not be delivered yet, for the rule's actor to try again.
pub struct Retry {
    /// The action's index in the rule.
    pub action: usize,
    /// What it carries.
    pub delivery: Pending,
    /// Tries so far.
    pub attempt: u32,
}

/// A message an action built, and where it goes.
pub enum Pending {
    /// To route on this node.
    Republish(Message),
    /// To a bridge's buffer.
    Bridge {
        /// The bridge.
        name: String,
        /// The message.
        message: Message,
    },
}

impl Pending {
    /// Deliver now; `Err` says why not.
    pub(crate) fn deliver(&self, view: &BrokerView, congestion: &mut Congestion) -> Result<(), String> {
        match self {
            Pending::Republish(message) => {
                view.route_now(message.clone(), congestion);
                Ok(())
            }
            Pending::Bridge { name, message } => {
                let client = ractmq_bridge::config::local_client_id(name);
                view.deliver_to(&client, message.clone(), congestion)
                    .map_err(|_| format!("no bridge named {name:?} on this node"))
            }
        }
    }

    /// Its message.
    pub(crate) fn message(&self) -> &Message {
        match self {
            Pending::Republish(m) | Pending::Bridge { message: m, .. } => m,
        }
    }
}

fn qos_of(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn render(template: &Template, row: &Map) -> Result<String, String> {
    template.render(row).map_err(|e| e.to_string())
}

/// The payload: the template rendered, or the row as JSON.
fn payload(template: Option<&Template>, row: &Map) -> Result<Bytes, String> {
    match template {
        Some(t) => render(t, row).map(Bytes::from),
        None => Ok(Bytes::from(Value::Object(row.clone()).to_json_string())),
    }
}

fn topic(text: String) -> Result<String, String> {
    if ractmq_codec::topic::valid_name(&text) && !text.starts_with('$') {
        Ok(text)
    } else {
        Err(format!("{text:?} is not a topic a rule may publish to"))
    }
}

/// Build what `action` sends for `row`: `Ok(None)` for an action that sends nothing (log).
fn build(rule: &RuleRuntime, action: &Action, row: &Map, source: &Source<'_>) -> Result<Option<Pending>, String> {
    Ok(Some(match action {
        Action::Republish {
            topic: t,
            payload: p,
            qos,
            retain,
            user_properties,
        } => {
            let mut message = Message::new(
                topic(render(t, row)?)?,
                payload(p.as_ref(), row)?,
                qos_of(qos.unwrap_or(source.qos)),
                *retain,
            );
            for (name, value) in user_properties {
                message
                    .properties
                    .user_properties
                    .push((name.clone(), render(value, row)?));
            }
            message.publisher = Some(rule.publisher.clone());
            Pending::Republish(message)
        }
        Action::Bridge {
            name,
            topic: t,
            payload: p,
            qos,
        } => {
            let topic = match t {
                Some(t) => self::topic(render(t, row)?)?,
                None => source.topic.to_string(),
            };
            let mut message = Message::new(topic, payload(p.as_ref(), row)?, qos_of(*qos), false);
            message.publisher = Some(rule.publisher.clone());
            Pending::Bridge {
                name: name.clone(),
                message,
            }
        }
        Action::Log { message } => {
            let line = match message {
                Some(m) => render(m, row)?,
                None => Value::Object(row.clone()).to_json_string(),
            };
            tracing::info!(rule = %rule.config.name, "{line}");
            return Ok(None);
        }
    }))
}

/// Carry out every action of `rule` for `row`. Failures that may pass go to `retry` (false when the rule's
/// actor cannot take more: the output is dead-lettered then).
pub(crate) fn run(
    view: &BrokerView,
    rule: &RuleRuntime,
    row: &Map,
    source: &Source<'_>,
    congestion: &mut Congestion,
    retry: &dyn Fn(Retry) -> bool,
) {
    for (i, action) in rule.actions.iter().enumerate() {
        let counters = &rule.counters.actions[i];
        match build(rule, action, row, source) {
            Ok(None) => RuleCounters::add(&counters.success),
            Ok(Some(pending)) => match pending.deliver(view, congestion) {
                Ok(()) => RuleCounters::add(&counters.success),
                Err(why) => {
                    let attempt = Retry {
                        action: i,
                        delivery: pending,
                        attempt: 0,
                    };
                    if rule.config.max_retries == 0 || !retry(attempt) {
                        // Handed back only when refused: the actor is down or full.
                        counters.failed.fetch_add(1, Relaxed);
                        dead_letter_row(view, rule, row, source.topic, &why, congestion);
                    }
                }
            },
            Err(why) => {
                counters.failed.fetch_add(1, Relaxed);
                tracing::debug!(rule = %rule.config.name, action = i + 1, "action failed: {why}");
                dead_letter_row(view, rule, row, source.topic, &why, congestion);
            }
        }
    }
}

/// Publish the row that failed on the rule's dead-letter topic, with the reason.
pub(crate) fn dead_letter_row(
    view: &BrokerView,
    rule: &RuleRuntime,
    row: &Map,
    topic: &str,
    why: &str,
    congestion: &mut Congestion,
) {
    let payload = Bytes::from(Value::Object(row.clone()).to_json_string());
    dead_letter(view, rule, topic, payload, why, congestion);
}

/// Publish `payload` on the rule's dead-letter topic for `topic`, with the reason, at QoS 1.
pub(crate) fn dead_letter(
    view: &BrokerView,
    rule: &RuleRuntime,
    topic: &str,
    payload: Bytes,
    why: &str,
    congestion: &mut Congestion,
) {
    let dlq = rule.config.dlq_topic_for(topic.trim_start_matches('$'));
    let mut message = Message::new(dlq, payload, QoS::AtLeastOnce, false);
    message
        .properties
        .user_properties
        .push((REASON_PROPERTY.into(), why.into()));
    message
        .properties
        .user_properties
        .push(("rule".into(), rule.config.name.clone()));
    message.publisher = Some(rule.publisher.clone());
    view.route_now(message, congestion);
}
