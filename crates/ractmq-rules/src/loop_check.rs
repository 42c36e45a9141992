//! Refusing republish loops at rule creation: can a topic rendered from the republish template match one of
//! the rule's own FROM filters? Placeholders may render to any text — including `/` and nothing at all — so
//! the answer errs on the side of "yes" (conservative): a `true` may be a false alarm, a `false` is certain.

use crate::template::{Part, Template};

/// One element of either pattern, over topic characters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    Char(char),
    /// Template placeholder: any string.
    Any,
    /// `+`: any run of characters without `/`.
    Level,
    /// `#`: anything to the end.
    Rest,
}

/// Whether a message republished to a topic rendered from `topic` could match one of `filters`
/// (`$events/...` entries are ignored: they are not topics messages are published to).
pub fn republish_may_loop(filters: &[&str], topic: &Template) -> bool {
    let mut t = Vec::new();
    for part in &topic.parts {
        match part {
            Part::Text(s) => t.extend(s.chars().map(P::Char)),
            Part::Field { .. } => {
                if t.last() != Some(&P::Any) {
                    t.push(P::Any);
                }
            }
        }
    }
    filters
        .iter()
        .filter(|f| !f.starts_with("$events/"))
        .any(|f| filter_patterns(f).iter().any(|fp| intersects(&t, fp)))
}

/// A filter as character patterns; `a/#` also matches `a` itself, hence two patterns.
fn filter_patterns(f: &str) -> Vec<Vec<P>> {
    let mut p = Vec::new();
    for (i, level) in f.split('/').enumerate() {
        if i > 0 {
            p.push(P::Char('/'));
        }
        match level {
            "+" => p.push(P::Level),
            "#" => p.push(P::Rest),
            l => p.extend(l.chars().map(P::Char)),
        }
    }
    let mut out = vec![p.clone()];
    if f == "#" {
        return out;
    }
    if let Some(parent) = f.strip_suffix("/#") {
        out.push(filter_patterns(parent).remove(0));
    }
    out
}

/// Is there a string both patterns accept? Breadth-first search over (template position, filter position).
fn intersects(t: &[P], f: &[P]) -> bool {
    let (n, m) = (t.len(), f.len());
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let k = i * (m + 1) + j;
        if seen[k] {
            continue;
        }
        seen[k] = true;
        if i == n && j == m {
            return true;
        }
        let (ti, fj) = (t.get(i).copied(), f.get(j).copied());
        // Stars may match the empty string.
        if ti == Some(P::Any) {
            stack.push((i + 1, j));
        }
        if matches!(fj, Some(P::Level | P::Rest)) {
            stack.push((i, j + 1));
        }
        // Consume one character that both sides accept, moving at least one side forward.
        match (ti, fj) {
            (Some(P::Char(a)), Some(P::Char(b))) if a == b => stack.push((i + 1, j + 1)),
            (Some(P::Char(a)), Some(P::Level)) if a != '/' => stack.push((i + 1, j)),
            (Some(P::Char(_)), Some(P::Rest)) => stack.push((i + 1, j)),
            (Some(P::Any), Some(P::Char(_))) => stack.push((i, j + 1)),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loops(filters: &[&str], t: &str) -> bool {
        republish_may_loop(filters, &Template::parse(t).unwrap())
    }

    #[test]
    fn literal_topics() {
        assert!(loops(&["sensors/#"], "sensors/out"));
        assert!(loops(&["sensors/#"], "sensors"));
        assert!(!loops(&["sensors/#"], "alerts/out"));
        assert!(loops(&["a/+/c"], "a/b/c"));
        assert!(!loops(&["a/+/c"], "a/b/x/c"));
        assert!(loops(&["#"], "anything"));
        assert!(!loops(&["a/b"], "a/bc"));
    }

    #[test]
    fn placeholders_are_wildcards() {
        assert!(loops(&["sensors/#"], "sensors/${clientid}"));
        assert!(loops(&["sensors/+/temp"], "sensors/${clientid}/temp"));
        // A placeholder may contain '/', so it can span levels.
        assert!(loops(&["a/b/c"], "a/${x}"));
        assert!(loops(&["a/b/c"], "${x}"));
        assert!(!loops(&["sensors/#"], "alerts/${clientid}"));
        assert!(!loops(&["a/+"], "b/${x}"));
        assert!(loops(&["a/+/x"], "a/${x}/x"));
        assert!(!loops(&["a/b"], "a/b/${x}/z"));
        assert!(!loops(&["$events/client_connected"], "${x}"));
    }
}
