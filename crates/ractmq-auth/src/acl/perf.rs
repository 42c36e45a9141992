//! How long a check takes with 10,000 placeholder rules: the budget is 10% of fan-in throughput.
//!
//! Run with `cargo test -p ractmq-auth --release -- --ignored --nocapture acl_check_cost`. It prints ns per
//! check for a repeated topic (the cache answers), for rotating topics (the index answers), for the same
//! with one rule (the floor), for trying the rules one by one (what the index saves), and the cost of
//! `Acl::for_client` at CONNECT.
//!
//! On the 2-vCPU development machine, with other builds running (load average 5), three runs gave: 24-43 ns
//! for a repeated topic (cache), 88-105 ns for 1,000 rotating topics or filters (index; 59-80 ns without the
//! cache's bookkeeping), 54-71 ns with one rule, 185-258 ns per `for_client`, and 225-247 us per check when
//! the rules are tried one by one. Fan-in QoS 0 ran at 841k msg/s on that machine, about 2.4 us of machine
//! time per message, so 10% is about 240 ns.

use std::hint::black_box;
use std::time::Instant;

use crate::acl::pattern::{Syntax, TopicPattern, Values};
use crate::acl::rule::{Action, Permission, Rule, RuleAction, Settings, UserMatch};
use crate::acl::Acl;
use crate::client::ClientInfo;

fn rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| {
            let topic = match i % 4 {
                0 => format!("tenant/{i}/%u/#"),
                1 => format!("devices/%c/{i}/+"),
                2 => format!("%u/{i}/data"),
                _ => format!("site/{i}/+/%c"),
            };
            let permission = if i % 10 == 9 {
                Permission::Deny
            } else {
                Permission::Allow
            };
            let mut rule = Rule::new(
                permission,
                RuleAction::All,
                vec![TopicPattern::parse(&topic, Syntax::Native).unwrap()],
            );
            if i % 100 == 7 {
                rule.who.user = Some(UserMatch::Name(format!("user{i}")));
            }
            rule
        })
        .collect()
}

fn topics() -> Vec<String> {
    (0..1000)
        .map(|i| match i % 5 {
            0 => format!("tenant/{}/alice/x/y", i * 9),
            1 => format!("devices/c1/{}/temp", i * 7),
            2 => format!("alice/{}/data", i * 3),
            3 => format!("site/{}/zone/c1", i * 11),
            _ => format!("nowhere/{i}/x"),
        })
        .collect()
}

fn ns_per(iterations: u64, f: impl FnMut(u64)) -> f64 {
    let mut f = f;
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn acl_check_cost() {
    let client = ClientInfo {
        client_id: "c1".into(),
        username: Some("alice".into()),
        peer: "10.0.0.1".parse().unwrap(),
        listener: "tcp".into(),
    };
    let topics = topics();
    let big = Acl::new(rules(10_000), Settings::default());
    let one = Acl::new(rules(1), Settings::default());
    let acl = big.for_client(&client);
    let small = one.for_client(&client);
    let n = 2_000_000u64;

    let hit = ns_per(n, |_| {
        black_box(acl.check(Action::Publish, black_box("tenant/4000/alice/x"), 1, false));
    });
    let hit_uncached = ns_per(n, |_| {
        black_box(acl.check_uncached(Action::Publish, black_box("tenant/4000/alice/x"), 1, false));
    });
    let miss = ns_per(n, |i| {
        let t = &topics[(i % 1000) as usize];
        black_box(acl.check(Action::Publish, black_box(t), 1, false));
    });
    let sub = ns_per(n, |i| {
        let t = &topics[(i % 1000) as usize];
        black_box(acl.check(Action::Subscribe, black_box(t), 1, false));
    });
    let index_only = ns_per(n, |i| {
        let t = &topics[(i % 1000) as usize];
        black_box(acl.check_uncached(Action::Publish, black_box(t), 1, false));
    });
    let floor = ns_per(n, |i| {
        let t = &topics[(i % 1000) as usize];
        black_box(small.check(Action::Publish, black_box(t), 1, false));
    });
    let connect = ns_per(100_000, |i| {
        let mut c = client.clone();
        c.client_id = format!("c{}", i % 100);
        black_box(big.for_client(&c));
    });
    // Rules tried one by one, as an engine without an index would.
    let values = Values::new(Some("alice"), Some("c1"), Some("10.0.0.1"));
    let linear = ns_per(20_000, |i| {
        let t = &topics[(i % 1000) as usize];
        black_box(
            big.rules()
                .iter()
                .position(|r| r.topics.iter().any(|p| p.covers(&values, t))),
        );
    });
    println!("10,000 placeholder rules, ns per check:");
    println!("  repeated topic (cache):        {hit:8.1}");
    println!("  the same, index without cache: {hit_uncached:8.1}");
    println!("  1,000 rotating topics publish: {miss:8.1}");
    println!("  1,000 rotating filters sub:    {sub:8.1}");
    println!("  the same, index without cache: {index_only:8.1}");
    println!("  same topics, 1 rule:           {floor:8.1}");
    println!("  rules tried one by one:        {linear:8.1}");
    println!("  Acl::for_client (connect):     {connect:8.1}");
}
