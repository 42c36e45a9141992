//! The index that answers "which is the first rule whose pattern matches this topic" without trying every rule.
//!
//! One index per action, built once per ACL and shared by every connection. Literal patterns (and `eq`
//! patterns) go in a hash map keyed by the whole topic, so a check costs one lookup however many there are.
//! Patterns with wildcards or placeholders go in a trie of levels. A placeholder level stays a template in
//! the trie and is compared with the checking client's value at check time: the trie is not rebuilt per
//! client, so connecting costs nothing per rule and ten thousand connections share one index.
//!
//! Each trie node lists the rules ending there in rule order. A check walks only the branches the topic can
//! reach (its literal level, `+`, the templates, and `#` at every node on the way), and in each list it stops at
//! the first rule whose other conditions hold (QoS, retain, who), so the answer is the lowest rule index among
//! the matches: first match wins, as if the rules were tried one by one.
//!
//! `ractmq_protocol::trie` is a persistent subscription index that answers "which filters match this name";
//! an ACL also needs "which patterns cover this filter" and per-client placeholders, hence this small one.

use std::collections::HashMap;
use std::str::Split;

use foldhash::fast::RandomState;

use crate::acl::pattern::{starts_with_var, template_matches, Kind, Level, Piece, TopicPattern, Values};

type Map<V> = HashMap<Box<str>, V, RandomState>;

/// The patterns of one action's rules.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Rules with the match-everything pattern.
    all: Vec<u32>,
    /// Literal and `eq` patterns, by their exact text.
    exact: Map<Vec<u32>>,
    /// The trie; `nodes[0]` is the root.
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    literal: Map<u32>,
    plus: Option<u32>,
    templates: Vec<(Box<[Piece]>, u32)>,
    /// Rules whose pattern ends at this node.
    end: Vec<u32>,
    /// Rules whose pattern ends with `#` below this node (so they match this node's level and all below).
    hash: Vec<u32>,
}

/// Add `rule` to a list kept in rule order (rules are inserted in order; a rule's second pattern ending at
/// the same place adds nothing).
fn push(list: &mut Vec<u32>, rule: u32) {
    if list.last() != Some(&rule) {
        list.push(rule);
    }
}

impl Index {
    pub(crate) fn new() -> Index {
        Index {
            nodes: vec![Node::default()],
            ..Index::default()
        }
    }

    /// Index `pattern` for `rule`. Rules must be inserted in increasing order.
    pub(crate) fn insert(&mut self, pattern: &TopicPattern, rule: u32) {
        let levels = match pattern.kind() {
            Kind::All => return push(&mut self.all, rule),
            Kind::Eq(exact) => return push(self.exact.entry(exact.clone()).or_default(), rule),
            Kind::Filter(levels) => levels,
        };
        if levels.iter().all(|l| matches!(l, Level::Literal(_))) {
            return push(self.exact.entry(pattern.as_str().into()).or_default(), rule);
        }
        let mut node = 0usize;
        for level in levels.iter() {
            let next = self.nodes.len() as u32;
            let child = match level {
                Level::Hash => return push(&mut self.nodes[node].hash, rule),
                Level::Literal(text) => *self.nodes[node].literal.entry(text.clone()).or_insert(next),
                Level::Plus => *self.nodes[node].plus.get_or_insert(next),
                Level::Template(pieces) => {
                    let templates = &mut self.nodes[node].templates;
                    match templates.iter().find(|(p, _)| p == pieces) {
                        Some((_, child)) => *child,
                        None => {
                            templates.push((pieces.clone(), next));
                            next
                        }
                    }
                }
            };
            if child == next {
                self.nodes.push(Node::default());
            }
            node = child as usize;
        }
        push(&mut self.nodes[node].end, rule);
    }

    /// The lowest rule whose pattern matches (for a name) or covers (for a filter) `topic` and for which
    /// `accept` holds.
    pub(crate) fn first_match(&self, topic: &str, values: &Values<'_>, accept: &impl Fn(u32) -> bool) -> Option<u32> {
        let mut best = u32::MAX;
        consider(&self.all, &mut best, accept);
        if let Some(list) = self.exact.get(topic) {
            consider(list, &mut best, accept);
        }
        if self.nodes.len() > 1 || !self.nodes[0].hash.is_empty() {
            let walk = Walk {
                index: self,
                values,
                accept,
                dollar: topic.starts_with('$'),
            };
            walk.node(0, topic.split('/'), &mut best);
        }
        (best != u32::MAX).then_some(best)
    }
}

/// Take the first rule of `list` (in rule order) that beats `best` and is accepted.
fn consider(list: &[u32], best: &mut u32, accept: &impl Fn(u32) -> bool) {
    for &rule in list {
        if rule >= *best {
            return;
        }
        if accept(rule) {
            *best = rule;
            return;
        }
    }
}

struct Walk<'a, 'v, F> {
    index: &'a Index,
    values: &'a Values<'v>,
    accept: &'a F,
    /// A `$` topic is not matched by a wildcard (or a placeholder) in the first level.
    dollar: bool,
}

impl<F: Fn(u32) -> bool> Walk<'_, '_, F> {
    fn node(&self, id: usize, mut rest: Split<'_, char>, best: &mut u32) {
        let node = &self.index.nodes[id];
        let guarded = id == 0 && self.dollar;
        if !guarded {
            consider(&node.hash, best, self.accept);
        }
        let Some(level) = rest.next() else {
            consider(&node.end, best, self.accept);
            return;
        };
        // A filter's `#` is covered only by a `#` (considered above); its `+` only by a `+`.
        if level == "#" {
            return;
        }
        if level != "+" {
            if let Some(&child) = node.literal.get(level) {
                self.node(child as usize, rest.clone(), best);
            }
            for (pieces, child) in &node.templates {
                if !(guarded && starts_with_var(pieces)) && template_matches(pieces, level, self.values) {
                    self.node(*child as usize, rest.clone(), best);
                }
            }
        }
        if let (Some(child), false) = (node.plus, guarded) {
            self.node(child as usize, rest, best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::pattern::Syntax;

    const VALUES: Values<'static> = Values {
        username: Some("alice"),
        client_id: Some("c1"),
        peer: Some("10.0.0.1"),
    };

    /// The index must give the same answer as trying every pattern in order with the reference meaning.
    #[test]
    fn agrees_with_a_linear_scan() {
        let patterns = [
            "a/b", "a/+", "a/#", "#", "+/b", "a/+/c", "+/+", "$SYS/#", "eq a/#", "u/%u/#", "u/%u", "c/%c/+", "%u/x",
            "a/b/c", "+/#", "x/pre-%c", "a/+/#", "eq +",
        ];
        let topics = [
            "a",
            "a/b",
            "a/c",
            "a/b/c",
            "b",
            "x/b",
            "$SYS/a",
            "$SYS",
            "a/#",
            "a/+",
            "a/+/c",
            "#",
            "+",
            "+/b",
            "u/alice",
            "u/alice/z",
            "u/bob/z",
            "u/+/z",
            "c/c1/q",
            "c/c1/+",
            "c/c2/q",
            "alice/x",
            "x/pre-c1",
            "x/pre-c2",
            "+/#",
            "a/b/+",
            "a/+/#",
            "/",
            "//",
            "a//b",
        ];
        let parsed: Vec<TopicPattern> = patterns
            .iter()
            .map(|p| TopicPattern::parse(p, Syntax::Native).unwrap())
            .collect();
        // Every rotation, so each pattern is sometimes first.
        for shift in 0..parsed.len() {
            let mut order: Vec<&TopicPattern> = parsed.iter().collect();
            order.rotate_left(shift);
            let mut index = Index::new();
            for (i, p) in order.iter().enumerate() {
                index.insert(p, i as u32);
            }
            for topic in topics {
                let want = order.iter().position(|p| p.covers(&VALUES, topic)).map(|i| i as u32);
                let got = index.first_match(topic, &VALUES, &|_| true);
                assert_eq!(got, want, "topic {topic:?} with order starting at {}", order[0]);
                // With the winner refused, the next match wins.
                if let Some(w) = want {
                    let next = order
                        .iter()
                        .enumerate()
                        .position(|(i, p)| i as u32 != w && p.covers(&VALUES, topic))
                        .map(|i| i as u32);
                    assert_eq!(index.first_match(topic, &VALUES, &|r| r != w), next, "{topic:?}");
                }
            }
        }
    }

    #[test]
    fn a_rule_with_two_patterns_at_one_place_is_listed_once() {
        let mut index = Index::new();
        let p = TopicPattern::parse("a/#", Syntax::Native).unwrap();
        index.insert(&p, 0);
        index.insert(&p, 0);
        assert_eq!(index.nodes[1].hash, vec![0]);
    }
}
