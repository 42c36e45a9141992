//! Untrusted input never panics: generated garbage SQL, garbage payloads, deep and huge JSON.

mod common;
use common::*;
use ractmq_rules::{Env, EventKind, Input, Outcome, Rule, Template, Value};

/// A small deterministic generator (xorshift), so failures reproduce without extra dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "SELECT",
    "FOREACH",
    "DO",
    "INCASE",
    "FROM",
    "WHERE",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "IS",
    "NULL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "BETWEEN",
    "*",
    ",",
    "(",
    ")",
    "[",
    "]",
    ".",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<>",
    "!=",
    "<",
    ">=",
    "'",
    "\"",
    "'a%'",
    "\"t/#\"",
    "\"$events/client_connected\"",
    "\"+/x\"",
    "payload",
    "payload.a",
    "payload.l[1]",
    "item",
    "clientid",
    "topic",
    "1",
    "0",
    "-1",
    "1.5e308",
    "9223372036854775807",
    "abs(",
    "nth(",
    "split(",
    "substr(",
    "json_decode(",
    "regex_match(",
    "pad(",
    "now_rfc3339(",
    "sublist(",
    "unix_ts_to_rfc3339(",
    "md5(",
    "map_put(",
    "concat(",
    "div(",
    "power(",
    "'x'",
    "true",
    "null",
    "\n",
    "--",
    "/*",
    "é",
    "\u{0}",
    "$",
    "{",
    "}",
    ";",
    "::",
    "@",
    "`",
    "\\",
];

const VALID: &[&str] = &[
    r#"SELECT payload.a AS a, clientid FROM "t/#" WHERE payload.a > 1"#,
    r#"FOREACH payload.l AS x DO x + 1 AS y INCASE x > 0 FROM "t/+" WHERE topic LIKE 't/%'"#,
    r#"SELECT CASE payload.a WHEN 1 THEN 'one' ELSE lower(topic) END AS c FROM "a", "b" WHERE payload.a IN (1, 2)"#,
];

/// Token soup half of the time; otherwise a valid rule with a few words replaced by random pieces.
fn garbage_sql(rng: &mut Rng) -> String {
    if rng.next() & 1 == 0 {
        let mut words: Vec<&str> = rng.pick(VALID).split(' ').collect();
        for _ in 0..1 + rng.next() % 2 {
            let at = (rng.next() as usize) % words.len();
            words[at] = rng.pick(PIECES);
        }
        return words.join(" ");
    }
    let n = 1 + rng.next() % 30;
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(rng.pick(PIECES));
        if rng.next() & 3 > 0 {
            s.push(' ');
        }
    }
    s
}

fn garbage_payload(rng: &mut Rng) -> Vec<u8> {
    let shapes = [
        r#"{"a":1,"l":[1,2,3]}"#,
        "[]",
        "null",
        "\"str\"",
        "{",
        "}",
        "[[[[",
        r#"{"a":"#,
        "1e999",
        "-0",
        r#"{"l":"[1,2]"}"#,
        "\u{feff}{}",
        r#"{"a":{"b":{"c":[{"d":1}]}}}"#,
    ];
    let mut p = rng.pick(&shapes).as_bytes().to_vec();
    for _ in 0..rng.next() % 4 {
        let at = (rng.next() as usize) % (p.len() + 1);
        p.insert(at, (rng.next() % 256) as u8);
    }
    p
}

#[test]
fn garbage_sql_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compiled = 0;
    for _ in 0..20_000 {
        let sql = garbage_sql(&mut rng);
        if let Ok(rule) = Rule::compile(&sql) {
            compiled += 1;
            for _ in 0..3 {
                let p = garbage_payload(&mut rng);
                let _ = rule.evaluate(&msg(&p), &ENV);
            }
        }
    }
    // Some of the soup must be valid SQL, or this test would only exercise the parser's error paths.
    assert!(compiled > 0);
}

#[test]
fn structured_rules_with_garbage_payloads() {
    let rules = [
        r#"SELECT payload.a + 1 AS x, payload.l[payload.a] AS y, json_decode(payload) AS z FROM "t/#""#,
        r#"FOREACH payload.l DO item * 2 AS d, str(item) + 'x' AS s INCASE item > 1 FROM "t/#""#,
        r#"FOREACH payload FROM "t/#""#,
        r##"SELECT CASE WHEN payload.a > 0 THEN sqrt(payload.a) ELSE log(payload.a) END AS v FROM "#""##,
        r#"SELECT sublist(payload.a, payload.l) AS s, nth(payload.a, payload.l) AS n, pad('x', payload.a) AS p FROM "t""#,
        r#"SELECT unix_ts_to_rfc3339(payload.a, 'nanosecond') AS t, base64_decode(payload.s) AS b FROM "t""#,
    ];
    let mut rng = Rng(42);
    for sql in rules {
        let rule = Rule::compile(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        for _ in 0..3000 {
            let p = garbage_payload(&mut rng);
            let _ = rule.evaluate(&msg(&p), &ENV);
        }
    }
}

#[test]
fn deep_and_huge_json_is_bounded() {
    let rule = Rule::compile(r#"SELECT payload.a AS a FROM "t""#).unwrap();
    let deep = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    assert_eq!(rule.evaluate(&msg(deep.as_bytes()), &ENV), Outcome::NoResult);
    let deep_array = "[".repeat(1_000_000);
    assert_eq!(rule.evaluate(&msg(deep_array.as_bytes()), &ENV), Outcome::NoResult);
    let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    assert_eq!(
        rule.evaluate(&msg(huge.as_bytes()), &ENV),
        Outcome::NoResult,
        "over the decode cap"
    );
    let ok = format!("{{\"a\":[{}]}}", vec!["0"; 100_000].join(","));
    let Outcome::Rows(rows) = rule.evaluate(&msg(ok.as_bytes()), &ENV) else {
        panic!()
    };
    assert!(matches!(&rows[0]["a"], Value::Array(a) if a.len() == 100_000));
    let decode = Rule::compile(r#"SELECT json_decode(payload.s) AS v FROM "t""#).unwrap();
    let nested = format!("{{\"s\":\"{}\"}}", "[".repeat(10_000));
    assert!(matches!(
        decode.evaluate(&msg(nested.as_bytes()), &ENV),
        Outcome::Failed(_)
    ));
}

#[test]
fn deepest_allowed_expression_evaluates() {
    let e = format!("{}payload.a{}", "abs(".repeat(60), ")".repeat(60));
    assert_eq!(eval(&e), Value::Int(1));
}

#[test]
fn templates_and_events_with_odd_input() {
    let mut rng = Rng(7);
    let rule = Rule::compile(r#"SELECT * FROM "$events/session_subscribed""#).unwrap();
    for _ in 0..2000 {
        let p = garbage_payload(&mut rng);
        let text = String::from_utf8_lossy(&p).into_owned();
        if let Ok(t) = Template::parse(&text) {
            let input = Input {
                topic: Some(&text),
                qos: Some(2),
                ..Input::event(EventKind::SessionSubscribed, -1)
            };
            if let Outcome::Rows(rows) = rule.evaluate(
                &input,
                &Env {
                    node: "",
                    now_ms: i64::MIN,
                },
            ) {
                let _ = t.render(&rows[0]);
            }
        }
        let _ = Rule::compile(&text);
    }
}
