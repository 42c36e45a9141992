//! A rule ready to run: its SQL compiled, its actions' templates parsed, checked once when the rule is
//! created so that a typo is an error then, not a failure on every message. Refuses a republish onto the
//! rule's own source topics, which would feed the rule its own output forever.

use std::sync::Arc;

use ractmq_rules::{CompiledRule, EventKind, Rule, Template};

use crate::config::{ActionConfig, RuleConfig};
use crate::stats::RuleCounters;

/// One rule, compiled, with its counters.
pub struct RuleRuntime {
    /// As configured.
    pub config: Arc<RuleConfig>,
    /// The SQL.
    pub sql: CompiledRule,
    /// Its actions, in order.
    pub actions: Vec<Action>,
    /// Its counters (shared with the entry that outlives this runtime's rebuilds).
    pub counters: Arc<RuleCounters>,
    /// The topic filters of FROM that are MQTT filters.
    pub filters: Vec<String>,
    /// The events of FROM.
    pub events: Vec<EventKind>,
    /// The publisher of what its actions send, `$rule/NAME`: what subscribers' No Local never matches, and
    /// how its own message events are told apart (see `hook.rs`).
    pub publisher: Arc<str>,
}

/// An action with its templates parsed.
pub enum Action {
    /// See [`crate::config::RepublishConfig`].
    Republish {
        /// The topic template.
        topic: Template,
        /// The payload template; the row as JSON when `None`.
        payload: Option<Template>,
        /// The QoS, or the matched message's.
        qos: Option<u8>,
        /// Publish retained.
        retain: bool,
        /// User property names and value templates.
        user_properties: Vec<(String, Template)>,
    },
    /// See [`crate::config::BridgeActionConfig`].
    Bridge {
        /// The bridge.
        name: String,
        /// The topic template, or the matched message's topic.
        topic: Option<Template>,
        /// The payload template; the row as JSON when `None`.
        payload: Option<Template>,
        /// The QoS.
        qos: u8,
    },
    /// See [`crate::config::LogConfig`].
    Log {
        /// The line template; the row as JSON when `None`.
        message: Option<Template>,
    },
}

impl Action {
    /// `republish`, `bridge` or `log`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Republish { .. } => "republish",
            Action::Bridge { .. } => "bridge",
            Action::Log { .. } => "log",
        }
    }
}

fn template(sql: &CompiledRule, what: &str, text: &str) -> Result<Template, String> {
    let template = Template::parse(text).map_err(|e| format!("{what} {text:?}: {e}"))?;
    check_fields(sql, what, &template)?;
    Ok(template)
}

/// A template may name only fields the rule outputs, when the SQL says which (not for `SELECT *`).
fn check_fields(sql: &CompiledRule, what: &str, template: &Template) -> Result<(), String> {
    let Some(outputs) = sql.output_fields() else {
        return Ok(());
    };
    match template
        .root_fields()
        .into_iter()
        .find(|f| !outputs.iter().any(|o| o == f))
    {
        Some(missing) => Err(format!(
            "{what}: ${{{missing}}} names a field the rule does not output (it outputs {}); select it in the SQL",
            if outputs.is_empty() {
                "nothing".to_string()
            } else {
                outputs.join(", ")
            }
        )),
        None => Ok(()),
    }
}

fn qos(what: &str, qos: Option<u8>) -> Result<Option<u8>, String> {
    match qos {
        Some(q) if q > 2 => Err(format!("{what}: qos {q} is not 0, 1 or 2")),
        other => Ok(other),
    }
}

impl RuleRuntime {
    /// Compile `config`, keeping `counters` (a rule edited or re-enabled keeps counting).
    pub fn compile(config: Arc<RuleConfig>, counters: Option<Arc<RuleCounters>>) -> Result<RuleRuntime, String> {
        crate::config::check_name(&config.name)?;
        let name = &config.name;
        let sql = Rule::compile(&config.sql).map_err(|e| format!("rule {name}: {e}"))?;
        let (mut filters, mut events) = (Vec::new(), Vec::new());
        for topic in sql.topics() {
            match EventKind::from_topic(topic) {
                Some(event) => events.push(event),
                None => filters.push(topic.to_string()),
            }
        }
        let mut actions = Vec::with_capacity(config.actions.len());
        for (i, action) in config.actions.iter().enumerate() {
            let what = format!("rule {name}, action {}", i + 1);
            actions.push(match action {
                ActionConfig::Republish(r) => {
                    let topic = template(&sql, &format!("{what}: topic"), &r.topic)?;
                    if sql.republish_may_loop(&topic) {
                        return Err(format!(
                            "{what}: republishing to {:?} would feed the rule its own output (it matches the rule's FROM); \
                             republish to a topic outside the rule's filters",
                            r.topic
                        ));
                    }
                    Action::Republish {
                        topic,
                        payload: (r.payload.as_deref()).map(|p| template(&sql, &format!("{what}: payload"), p)).transpose()?,
                        qos: qos(&what, r.qos)?,
                        retain: r.retain,
                        user_properties: (r.user_properties.iter())
                            .map(|(k, v)| Ok((k.clone(), template(&sql, &format!("{what}: user property {k}"), v)?)))
                            .collect::<Result<_, String>>()?,
                    }
                }
                ActionConfig::Bridge(b) => Action::Bridge {
                    name: b.name.clone(),
                    topic: (b.topic.as_deref()).map(|t| template(&sql, &format!("{what}: topic"), t)).transpose()?,
                    payload: (b.payload.as_deref()).map(|p| template(&sql, &format!("{what}: payload"), p)).transpose()?,
                    qos: qos(&what, b.qos)?.unwrap_or(1),
                },
                ActionConfig::Log(l) => Action::Log {
                    message: (l.message.as_deref()).map(|m| template(&sql, &format!("{what}: message"), m)).transpose()?,
                },
            });
        }
        let counters = counters
            .filter(|c| c.actions.len() == actions.len())
            .unwrap_or_else(|| Arc::new(RuleCounters::new(actions.len())));
        Ok(RuleRuntime {
            publisher: format!("$rule/{}", config.name).into(),
            config,
            sql,
            actions,
            counters,
            filters,
            events,
        })
    }

    /// The kinds of its actions, in order.
    pub fn action_kinds(&self) -> Vec<&'static str> {
        self.actions.iter().map(Action::kind).collect()
    }
}

/// Check every rule of `config` as a node would when it starts: names, SQL and templates (for `ractmq config
/// check` and the settings' build). The error is one line naming the rule.
pub fn check(config: &crate::RulesConfig) -> Result<(), String> {
    config.validate()?;
    for rule in &config.0 {
        RuleRuntime::compile(Arc::new(rule.clone()), None)?;
    }
    Ok(())
}
