//! `ractmq ctl rules test`: what a rule's SQL outputs for one message, without publishing anything, as EMQX's
//! rule test shows it.

use std::time::{SystemTime, UNIX_EPOCH};

use ractmq_rules::{Env, EventKind, Input, Outcome, Rule, Value};
use serde::{Deserialize, Serialize};

/// The message (or event) to test a rule with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestMessage {
    /// Its topic (for an event rule, the filter or topic the event is about).
    #[serde(default)]
    pub topic: String,
    /// Its payload, as text.
    #[serde(default)]
    pub payload: String,
    /// The publisher's client id.
    #[serde(default)]
    pub clientid: Option<String>,
    /// The publisher's user name.
    #[serde(default)]
    pub username: Option<String>,
    /// The QoS.
    #[serde(default)]
    pub qos: u8,
    /// The retain flag.
    #[serde(default)]
    pub retain: bool,
    /// An event topic (`$events/client_connected`...) to test an event rule; a published message otherwise.
    #[serde(default)]
    pub event: Option<String>,
}

/// What the rule output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestOutput {
    /// `rows`, `no_result` or `failed`.
    pub outcome: &'static str,
    /// The output rows (several for FOREACH).
    pub rows: Vec<Value>,
    /// Why the evaluation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Evaluate `sql` on `message` on node `node`.
pub fn test(sql: &str, message: &TestMessage, node: &str) -> Result<TestOutput, String> {
    let rule = Rule::compile(sql).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut input = match &message.event {
        Some(topic) => {
            let kind = EventKind::from_topic(topic).ok_or_else(|| format!("{topic:?} is not an event topic"))?;
            let mut input = Input::event(kind, now);
            input.topic = Some(&message.topic);
            input.payload = Some(message.payload.as_bytes());
            input
        }
        None => Input::message(&message.topic, message.payload.as_bytes(), now),
    };
    input.clientid = message.clientid.as_deref();
    input.username = message.username.as_deref();
    input.qos = Some(message.qos);
    input.retain = Some(message.retain);
    input.publish_received_at = Some(now);
    let env = Env { node, now_ms: now };
    Ok(match rule.evaluate(&input, &env) {
        Outcome::NoResult => TestOutput {
            outcome: "no_result",
            rows: vec![],
            error: None,
        },
        Outcome::Failed(e) => TestOutput {
            outcome: "failed",
            rows: vec![],
            error: Some(e.to_string()),
        },
        Outcome::Rows(rows) => TestOutput {
            outcome: "rows",
            rows: rows.into_iter().map(Value::Object).collect(),
            error: None,
        },
    })
}
