//! Topic name and topic filter validity (MQTT 5.0 section 4.7, 3.1.1 section 4.7).
//!
//! TODO(helper): implement. Rules: non-empty; at most 65,535 bytes; no U+0000; names contain no `+` or `#`;
//! in filters `#` only as the whole last level, `+` only as a whole level. Shared subscription syntax
//! (`$share/...`) is not handled here: the protocol core strips it before calling `valid_filter`.

/// True if `topic` may be used as the topic name of a PUBLISH.
pub fn valid_name(topic: &str) -> bool {
    let _ = topic;
    todo!()
}

/// True if `filter` is a valid subscription filter.
pub fn valid_filter(filter: &str) -> bool {
    let _ = filter;
    todo!()
}
