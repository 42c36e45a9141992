//! What a rule is, as the configuration file (`[[rules]]`), REST and `ractmq ctl rules create` give it: its
//! SQL, its actions and how failed actions are retried and dead-lettered. Only the shape and names are
//! checked here; `compiled.rs` checks the SQL and templates.

use serde::{Deserialize, Serialize};

/// Every rule of the configuration file, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RulesConfig(pub Vec<RuleConfig>);

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Its name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The rule's SQL: `SELECT ... FROM "filter" [WHERE ...]` or `FOREACH ... FROM ...`.
    pub sql: String,
    /// What to do with each output row, in order.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    /// Whether the rule runs.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A note for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Times a failed action is tried again before its output is dead-lettered.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// The wait before the first retry, doubled for each next one.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    /// Where an output goes that failed past its retries (`{rule}` and `{topic}` are filled in).
    #[serde(default = "default_dlq")]
    pub dlq_topic: String,
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionConfig {
    /// Publish a message built from the row on this node.
    Republish(RepublishConfig),
    /// Hand a message built from the row to a bridge's buffer.
    Bridge(BridgeActionConfig),
    /// Write the row to the node's log.
    Log(LogConfig),
}

/// A republish: every field is a template with `${field}` placeholders over the output row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepublishConfig {
    /// The topic to publish to.
    pub topic: String,
    /// The payload; by default the whole row as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// 0, 1 or 2; by default the QoS of the message the rule matched (0 for events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    /// Publish retained.
    #[serde(default)]
    pub retain: bool,
    /// MQTT 5 user properties: names and value templates.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub user_properties: std::collections::BTreeMap<String, String>,
}

/// Sending rows to a bridge (one of the node's `[bridges]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeActionConfig {
    /// The bridge's name.
    pub name: String,
    /// The topic the bridge sees the message on (its own topic mapping and templates apply next); by default
    /// the topic of the message the rule matched (the event topic for events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The payload; by default the whole row as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// 0, 1 or 2; by default 1, so the bridge's buffer keeps it until its remote has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
}

/// Logging rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The line to log (a template); by default the row as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> u64 {
    500
}
fn default_dlq() -> String {
    "$dlq/$rule/{rule}/{topic}".into()
}

/// A rule name: what REST paths, ctl, metric labels and dead-letter topics carry.
pub fn check_name(name: &str) -> Result<(), String> {
    ractmq_bridge::config::check_name_of("rule", name)
}

impl RuleConfig {
    /// A rule with `sql` and `actions`, every other setting at its default.
    pub fn new(name: &str, sql: &str, actions: Vec<ActionConfig>) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            sql: sql.into(),
            actions,
            enabled: true,
            description: String::new(),
            max_retries: default_retries(),
            retry_backoff_ms: default_backoff(),
            dlq_topic: default_dlq(),
        }
    }

    /// Read a rule from JSON (REST, ctl).
    pub fn from_json(value: serde_json::Value) -> Result<RuleConfig, String> {
        serde_json::from_value(value).map_err(|e| format!("rule: {e}"))
    }

    /// The dead-letter topic of an output of the message on `topic`.
    pub fn dlq_topic_for(&self, topic: &str) -> String {
        self.dlq_topic.replace("{rule}", &self.name).replace("{topic}", topic)
    }
}

impl RulesConfig {
    /// Names are valid and unique (the SQL and templates are checked when the rules start).
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for rule in &self.0 {
            check_name(&rule.name)?;
            if !seen.insert(rule.name.as_str()) {
                return Err(format!(
                    "rules: two rules are named {:?}; give each its own name",
                    rule.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_reads_from_toml() {
        #[derive(Deserialize)]
        struct File {
            rules: RulesConfig,
        }
        let file: File = toml::from_str(
            r#"
            [[rules]]
            name = "hot"
            sql = 'SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30'
            actions = [{ republish = { topic = "alerts/${clientid}", payload = '{"t": ${t}}', qos = 1 } }]
            "#,
        )
        .unwrap();
        let rule = &file.rules.0[0];
        assert_eq!(rule.name, "hot");
        assert!(rule.enabled);
        assert_eq!(
            rule.actions,
            vec![ActionConfig::Republish(RepublishConfig {
                topic: "alerts/${clientid}".into(),
                payload: Some(r#"{"t": ${t}}"#.into()),
                qos: Some(1),
                retain: false,
                user_properties: Default::default(),
            })]
        );
        assert_eq!(rule.dlq_topic_for("a/b"), "$dlq/$rule/hot/a/b");
    }

    #[test]
    fn a_misspelt_key_is_refused() {
        let e = RuleConfig::from_json(serde_json::json!({"name": "x", "sql": "SELECT * FROM \"a\"", "actoins": []}));
        assert!(e.unwrap_err().contains("actoins"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("hot-1.a_b").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
    }
}
