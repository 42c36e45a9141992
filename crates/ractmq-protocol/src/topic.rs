//! Topic matching rules: which topic names a filter matches.
//!
//! Validity of names and filters lives in the codec (it must reject a bad PUBLISH before anything else runs);
//! here are the rules that need both a name and a filter: level-by-level wildcard matching and the rule that
//! a topic starting with `$` is not matched by a filter starting with a wildcard.

/// A `$share/{group}/{filter}` subscription split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name.
    pub group: &'a str,
    /// The topic filter after the share name.
    pub filter: &'a str,
}

/// Split a shared subscription filter; `None` if `filter` is not a `$share/` filter.
/// `Some(Err(()))` if it is one but malformed (empty group, wildcard in group, no filter).
pub fn parse_shared(filter: &str) -> Option<Result<SharedFilter<'_>, ()>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(()));
    };
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Some(Err(()));
    }
    Some(Ok(SharedFilter { group, filter: inner }))
}

/// True if the topic name `name` matches the (valid) filter `filter`.
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(nl)) if fl == nl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True if the filter contains a wildcard.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_level_wildcard_matches_the_parent_level() {
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/tennis/player1"));
        assert!(matches("#", "a/b/c"));
        assert!(!matches("sport/#", "sports"));
    }

    #[test]
    fn single_level_wildcard_matches_exactly_one_level() {
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
        assert!(!matches("sport/+", "sport/tennis/player1"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
    }

    #[test]
    fn multibyte_first_characters_are_fine() {
        assert!(matches("ü/+", "ü/x"));
        assert!(!matches("ü/+", "ö/x"));
    }

    #[test]
    fn shared_filters_are_split() {
        assert_eq!(
            parse_shared("$share/g1/a/+"),
            Some(Ok(SharedFilter {
                group: "g1",
                filter: "a/+"
            }))
        );
        assert_eq!(parse_shared("$share/g1"), Some(Err(())));
        assert_eq!(parse_shared("$share//a"), Some(Err(())));
        assert_eq!(parse_shared("$share/g+/a"), Some(Err(())));
        assert_eq!(parse_shared("a/b"), None);
    }
}
