//! The FROM clause's sources: MQTT topic filters (validated like a SUBSCRIBE would be) and EMQX's
//! `$events/...` event topics (unknown event names are refused when the rule is compiled).

use crate::input::EventKind;

/// One entry of a rule's FROM clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Messages published to topics matching this filter.
    Topic(String),
    /// A client or session event.
    Event(EventKind),
}

/// Checks one FROM entry; the error text says what is wrong.
pub(crate) fn parse_source(text: &str) -> Result<Source, String> {
    if let Some(name) = text.strip_prefix("$events/") {
        return EventKind::from_topic(text).map(Source::Event).ok_or_else(|| {
            let known: Vec<&str> = EventKind::EVENTS.iter().filter_map(|e| e.topic()).collect();
            format!("unknown event \"$events/{name}\" (known: {})", known.join(", "))
        });
    }
    validate_filter(text)?;
    Ok(Source::Topic(text.to_owned()))
}

/// MQTT topic filter rules: not empty, at most 65535 bytes, no NUL, `+` and `#` only as whole levels and
/// `#` only last.
pub fn validate_filter(f: &str) -> Result<(), String> {
    if f.is_empty() {
        return Err("empty topic filter".into());
    }
    if f.len() > 65_535 {
        return Err("topic filter longer than 65535 bytes".into());
    }
    if f.contains('\0') {
        return Err("topic filter contains NUL".into());
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "invalid topic filter \"{f}\": '#' must be the whole last level"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("invalid topic filter \"{f}\": '+' must be a whole level"));
        }
    }
    Ok(())
}
