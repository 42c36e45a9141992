//! Topic name and topic filter validity (MQTT 5.0 section 4.7, 3.1.1 section 4.7).
//!
//! Rules: non-empty; at most 65,535 bytes; no U+0000; names contain no `+` or `#`; in filters `#` only as
//! the whole last level, `+` only as a whole level. Shared subscription syntax (`$share/...`) is not
//! handled here: the protocol core strips it before calling `valid_filter`. mqttbytes gets several of these
//! wrong (it accepts `a/b+/c`, `+a` and the empty topic), hence this module.

const MAX_LEN: usize = 65_535;

fn valid_string(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LEN && !s.contains('\0')
}

/// True if `topic` may be used as the topic name of a PUBLISH.
pub fn valid_name(topic: &str) -> bool {
    valid_string(topic) && !topic.contains(['+', '#'])
}

/// True if `filter` is a valid subscription filter.
pub fn valid_filter(filter: &str) -> bool {
    if !valid_string(filter) {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if is_last => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "a/b", "/", "a//b", "$SYS/x", "ü/é", " "] {
            assert!(valid_name(ok), "{ok:?} should be valid");
        }
        for bad in ["", "a/+", "#", "a/b#", "+", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn filters() {
        for ok in [
            "a", "#", "+", "a/#", "a/+/c", "+/+", "/#", "+/", "a//#", "$SYS/#", "ü/+/#",
        ] {
            assert!(valid_filter(ok), "{ok:?} should be valid");
        }
        // `a/b+/c` and `+a` are the mqttbytes 0.6 false accepts.
        for bad in [
            "", "a/b+/c", "+a", "a+", "#/a", "a/#/b", "a#", "a/b#", "##", "++", "a\0",
        ] {
            assert!(!valid_filter(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn length_limit() {
        let max = "a".repeat(MAX_LEN);
        assert!(valid_name(&max));
        assert!(valid_filter(&max));
        let over = "a".repeat(MAX_LEN + 1);
        assert!(!valid_name(&over));
        assert!(!valid_filter(&over));
    }
}
