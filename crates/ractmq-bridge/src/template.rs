//! Templates: text with `${field}` placeholders, filled from a [`Record`], for HTTP bodies and URLs, Kafka
//! topics and keys, and the values of a PostgreSQL INSERT.
//!
//! The fields are `topic`, `payload`, `qos`, `retain`, `timestamp` (milliseconds since the Unix epoch),
//! `payload.a.b` (a field of a JSON payload; empty when the payload is not JSON or has no such field) and
//! `user_property.key`. A template is parsed once, when the bridge is configured, so a typo is an error
//! then, not a silent empty string on every message.

use crate::Record;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A piece of a template: text as written, or a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as it is.
    Text(String),
    /// A placeholder.
    Field(Field),
}

/// A field a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `${topic}`.
    Topic,
    /// `${payload}`: the payload as UTF-8 (invalid sequences replaced).
    Payload,
    /// `${qos}`.
    Qos,
    /// `${retain}`.
    Retain,
    /// `${timestamp}`.
    Timestamp,
    /// `${payload.a.b}`: the path into a JSON payload.
    PayloadPath(Vec<String>),
    /// `${user_property.key}`.
    UserProperty(String),
}

/// A field's value, typed, for sinks that keep types (SQL parameters).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// An integer (qos, timestamp, a JSON integer).
    Int(i64),
    /// A float (a JSON number that is not an integer).
    Float(f64),
    /// A boolean (retain, a JSON boolean).
    Bool(bool),
    /// Nothing there (a missing JSON field or user property).
    Null,
}

impl Template {
    /// Parse `text`. Errors name what is wrong: an unclosed `${` or an unknown field.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("template {text:?}: `${{` without a closing `}}`"))?;
            parts.push(Part::Field(
                Field::parse(after[..end].trim()).map_err(|e| format!("template {text:?}: {e}"))?,
            ));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The template filled from `record`.
    pub fn render(&self, record: &Record) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => field.value(record).write_text(&mut out),
            }
        }
        out
    }

    /// True when the template has no placeholder (the same text for every record).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

impl Field {
    fn parse(name: &str) -> Result<Field, String> {
        Ok(match name {
            "topic" => Field::Topic,
            "payload" => Field::Payload,
            "qos" => Field::Qos,
            "retain" => Field::Retain,
            "timestamp" => Field::Timestamp,
            _ => {
                if let Some(path) = name.strip_prefix("payload.") {
                    let keys: Vec<String> = path.split('.').map(str::to_string).collect();
                    if keys.iter().any(String::is_empty) {
                        return Err(format!("`${{{name}}}` has an empty path segment"));
                    }
                    Field::PayloadPath(keys)
                } else if let Some(key) = name.strip_prefix("user_property.").filter(|k| !k.is_empty()) {
                    Field::UserProperty(key.to_string())
                } else {
                    return Err(format!(
                        "unknown field `${{{name}}}` (known: topic, payload, qos, retain, timestamp, payload.PATH, user_property.KEY)"
                    ));
                }
            }
        })
    }

    /// This field of `record`.
    pub fn value(&self, record: &Record) -> Value {
        match self {
            Field::Topic => Value::Text(record.topic.to_string()),
            Field::Payload => Value::Text(String::from_utf8_lossy(&record.payload).into_owned()),
            Field::Qos => Value::Int(record.qos as i64),
            Field::Retain => Value::Bool(record.retain),
            Field::Timestamp => Value::Int(record.timestamp_ms as i64),
            Field::PayloadPath(path) => {
                let Ok(json) = serde_json::from_slice::<serde_json::Value>(&record.payload) else {
                    return Value::Null;
                };
                let found = path.iter().try_fold(&json, |v, key| v.get(key));
                match found {
                    None | Some(serde_json::Value::Null) => Value::Null,
                    Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
                    Some(serde_json::Value::Number(n)) => match n.as_i64() {
                        Some(i) => Value::Int(i),
                        None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Some(serde_json::Value::String(s)) => Value::Text(s.clone()),
                    Some(other) => Value::Text(other.to_string()),
                }
            }
            Field::UserProperty(key) => record
                .user_properties
                .iter()
                .find(|(k, _)| k == key)
                .map_or(Value::Null, |(_, v)| Value::Text(v.clone())),
        }
    }
}

impl Value {
    /// The value as text (`Null` writes nothing).
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            Value::Text(s) => {
                out.push_str(s);
                Ok(())
            }
            Value::Int(i) => write!(out, "{i}"),
            Value::Float(f) => write!(out, "{f}"),
            Value::Bool(b) => write!(out, "{b}"),
            Value::Null => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_codec::QoS;

    fn record(payload: &str) -> Record {
        Record {
            topic: "sensors/1".into(),
            payload: payload.to_string().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            user_properties: vec![("site".into(), "north".into())],
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn fills_every_field() {
        let t =
            Template::parse("${topic}|${payload}|${qos}|${retain}|${timestamp}|${payload.t.c}|${user_property.site}")
                .unwrap();
        assert_eq!(
            t.render(&record(r#"{"t":{"c":21.5}}"#)),
            r#"sensors/1|{"t":{"c":21.5}}|1|false|1700000000000|21.5|north"#
        );
    }

    #[test]
    fn missing_json_fields_are_empty_and_null() {
        let t = Template::parse("[${payload.x}]").unwrap();
        assert_eq!(t.render(&record("not json")), "[]");
        assert_eq!(Field::PayloadPath(vec!["x".into()]).value(&record("{}")), Value::Null);
    }

    #[test]
    fn mistakes_are_refused_when_parsed() {
        assert!(Template::parse("${topic").unwrap_err().contains("closing"));
        assert!(Template::parse("${topik}")
            .unwrap_err()
            .contains("unknown field `${topik}`"));
        assert!(Template::parse("${payload..x}").is_err());
        assert!(Template::parse("plain").unwrap().is_constant());
    }
}
