//! SELECT: fields, aliases, `*`, WHERE, paths (1-based indexes), operators, CASE, and the null/no-result rules.

mod common;
use common::*;
use ractmq_rules::{EventKind, Input, Outcome, Rule, Value};

#[test]
fn fields_aliases_and_nested_names() {
    let r = row(
        r#"SELECT payload.a.b, payload.x AS x, clientid, topic, qos, username AS u, node, timestamp FROM "t/#""#,
        r#"{"a":{"b":2},"x":"y"}"#,
    );
    assert_eq!(
        Value::Object(r).to_json_string(),
        r#"{"payload":{"a":{"b":2}},"x":"y","clientid":"c1","topic":"t/a","qos":1,"u":"u1","node":"node1@host","timestamp":1700000000000}"#
    );
}

#[test]
fn star_gives_all_columns_with_raw_payload() {
    let r = row(r#"SELECT * FROM "t/#""#, r#"{"x":1}"#);
    assert_eq!(r["payload"], s(r#"{"x":1}"#));
    assert_eq!(r["clientid"], s("c1"));
    assert_eq!(r["event"], s("message.publish"));
    assert_eq!(r["id"], s("0001"));
    assert_eq!(r["flags"], json(r#"{"retain":false,"dup":false}"#));
    assert!(!r.contains_key("reason"));
    let r = row(r#"SELECT *, payload.x AS x FROM "t/#""#, r#"{"x":1}"#);
    assert_eq!(r["x"], Value::Int(1));
}

#[test]
fn where_filters_and_sees_aliases() {
    let sql = r#"SELECT payload.temp AS t FROM "sensors/#" WHERE t > 30 AND clientid = 'c1'"#;
    assert!(matches!(run(sql, &msg(br#"{"temp":35}"#)), Outcome::Rows(_)));
    assert_eq!(run(sql, &msg(br#"{"temp":25}"#)), Outcome::NoResult);
    let sql = r#"SELECT clientid FROM "t/#" WHERE payload.temp > 30"#;
    assert_eq!(run(sql, &msg(br#"{"temp":25}"#)), Outcome::NoResult);
    assert_eq!(
        run(sql, &msg(br#"{}"#)),
        Outcome::NoResult,
        "missing field compares false"
    );
}

#[test]
fn later_fields_read_earlier_aliases() {
    let r = row(r#"SELECT payload.a AS x, x * 10 AS y FROM "t""#, r#"{"a":4}"#);
    assert_eq!(r["y"], Value::Int(40));
}

#[test]
fn paths_are_one_based_and_missing_is_null() {
    assert_eq!(eval("payload.list[1]"), Value::Int(10));
    assert_eq!(eval("payload.list[3]"), Value::Int(30));
    assert_eq!(eval("payload.list[-1]"), Value::Int(30));
    assert_eq!(eval("payload.list[0]"), Value::Null);
    assert_eq!(eval("payload.list[4]"), Value::Null);
    assert_eq!(eval("payload.m.k"), s("v"));
    assert_eq!(eval("payload.m['k']"), s("v"));
    assert_eq!(eval("payload.nope.deeper"), Value::Null);
    assert_eq!(eval("payload.s.x"), Value::Null);
    assert_eq!(eval("nosuchcolumn"), Value::Null);
    assert_eq!(eval("payload.list[payload.a]"), Value::Int(10));
    assert_eq!(eval_with("payload.l[1].x", r#"{"l":[{"x":"first"}]}"#), s("first"));
    assert_eq!(eval_with(r#"payload."a-b""#, r#"{"a-b":5}"#), Value::Int(5));
}

#[test]
fn payload_not_json_is_no_result_only_when_needed() {
    let needs = r#"SELECT payload.x FROM "t/#""#;
    assert_eq!(run(needs, &msg(b"not json")), Outcome::NoResult);
    assert_eq!(run(needs, &msg(b"\xff\xfe")), Outcome::NoResult);
    let raw = r#"SELECT payload, clientid FROM "t/#""#;
    let Outcome::Rows(rows) = run(raw, &msg(b"not json")) else {
        panic!()
    };
    assert_eq!(rows[0]["payload"], s("not json"));
    // A JSON payload that is not an object: paths into it are null.
    assert_eq!(eval_with("payload.x", "5"), Value::Null);
}

#[test]
fn literals_and_arithmetic() {
    assert_eq!(eval("1 + 2 * 3"), Value::Int(7));
    assert_eq!(eval("(1 + 2) * 3"), Value::Int(9));
    assert_eq!(eval("7 / 2"), Value::Float(3.5));
    assert_eq!(eval("7 % 4"), Value::Int(3));
    assert_eq!(eval("-payload.a"), Value::Int(-1));
    assert_eq!(eval("payload.f + 1"), Value::Float(2.5));
    assert_eq!(eval("'a' + 'b'"), s("ab"));
    assert_eq!(eval("'n=' + 5"), s("n=5"));
    assert_eq!(eval("'a' || 'b'"), s("ab"));
    assert_eq!(eval("true"), Value::Bool(true));
    assert_eq!(eval("null"), Value::Null);
    assert_eq!(eval("1.25"), Value::Float(1.25));
    assert_eq!(eval("-9223372036854775807"), Value::Int(-i64::MAX));
    assert_eq!(eval("[1, 'x']"), json(r#"[1,"x"]"#));
    assert!(eval_err("1 / 0").contains("division by zero"));
    assert!(eval_err("1 % 0").contains("division by zero"));
    assert!(eval_err("9223372036854775807 + 1").contains("overflow"));
    assert!(eval_err("'a' - 1").contains("cannot apply -"));
}

#[test]
fn comparisons_and_logic() {
    assert_eq!(eval("1 = 1.0"), Value::Bool(true));
    assert_eq!(eval("'5' = 5"), Value::Bool(true));
    assert_eq!(eval("1 != 2"), Value::Bool(true));
    assert_eq!(eval("1 <> 1"), Value::Bool(false));
    assert_eq!(eval("2 >= 2 AND 1 <= 1 AND 1 < 2 AND 3 > 2"), Value::Bool(true));
    assert_eq!(eval("'abc' < 'abd'"), Value::Bool(true));
    assert_eq!(eval("NOT (1 = 2) OR false"), Value::Bool(true));
    assert_eq!(eval("payload.n = null"), Value::Bool(true));
    assert_eq!(eval("payload.a IN (3, 2, 1)"), Value::Bool(true));
    assert_eq!(eval("payload.a NOT IN (3, 2)"), Value::Bool(true));
    assert_eq!(eval("payload.s LIKE 'He%o'"), Value::Bool(true));
    assert_eq!(eval("payload.s LIKE 'H_llo'"), Value::Bool(true));
    assert_eq!(eval("payload.s NOT LIKE 'x%'"), Value::Bool(true));
    assert_eq!(eval("payload.s LIKE payload.s"), Value::Bool(true));
    assert_eq!(eval("payload.n IS NULL"), Value::Bool(true));
    assert_eq!(eval("payload.missing IS NULL"), Value::Bool(true));
    assert_eq!(eval("payload.a IS NOT NULL"), Value::Bool(true));
    assert_eq!(eval("payload.a BETWEEN 0 AND 2"), Value::Bool(true));
    assert!(eval_err("1 AND true").contains("expected a boolean"));
    assert!(eval_err("[1] < true").contains("cannot apply comparison"));
}

#[test]
fn case_searched_and_simple() {
    assert_eq!(
        eval("CASE WHEN payload.a > 5 THEN 'big' WHEN payload.a > 0 THEN 'small' ELSE 'none' END"),
        s("small")
    );
    assert_eq!(eval("CASE payload.a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END"), s("one"));
    assert_eq!(eval("CASE payload.a WHEN 9 THEN 'nine' END"), Value::Null);
    assert_eq!(
        eval("CASE WHEN false THEN 1 ELSE (CASE WHEN true THEN 2 END) END"),
        Value::Int(2)
    );
}

#[test]
fn sources_and_topics() {
    let r = Rule::compile(r##"SELECT * FROM "a/+/c", "$events/client_connected", "#""##).unwrap();
    assert_eq!(r.topics(), ["a/+/c", "$events/client_connected", "#"]);
    assert_eq!(r.sources()[1], ractmq_rules::Source::Event(EventKind::ClientConnected));
    assert!(!r.is_foreach());
    assert_eq!(r.output_fields(), None);
    let r = Rule::compile(r#"select payload.a.b, clientid as c from "t""#).unwrap();
    assert_eq!(r.output_fields(), Some(vec!["payload".to_owned(), "c".to_owned()]));
}

#[test]
fn event_columns() {
    let props = json(r#"{"Session-Expiry-Interval":30}"#);
    let input = Input {
        clientid: Some("c9"),
        username: Some("bob"),
        peername: Some("10.0.0.9:5555"),
        proto_ver: Some(5),
        keepalive: Some(60),
        clean_start: Some(true),
        connected_at: Some(42),
        conn_props: Some(&props),
        ..Input::event(EventKind::ClientConnected, 43)
    };
    let sql = r#"SELECT event, clientid, proto_ver, keepalive, clean_start, connected_at, conn_props.'Session-Expiry-Interval' AS sei, timestamp FROM "$events/client_connected" WHERE username = 'bob'"#;
    let Outcome::Rows(rows) = run(sql, &input) else {
        panic!()
    };
    assert_eq!(
        Value::Object(rows[0].clone()).to_json_string(),
        r#"{"event":"client.connected","clientid":"c9","proto_ver":5,"keepalive":60,"clean_start":true,"connected_at":42,"sei":30,"timestamp":43}"#
    );
    // Keys that are not plain names can be quoted either way inside a path.
    let sql = r#"SELECT conn_props."Session-Expiry-Interval" AS sei FROM "$events/client_connected""#;
    let Outcome::Rows(rows) = run(sql, &input) else {
        panic!()
    };
    assert_eq!(rows[0]["sei"], Value::Int(30));

    let input = Input {
        clientid: Some("rx"),
        from_clientid: Some("tx"),
        from_username: Some("txu"),
        reason: Some("queue_full"),
        topic: Some("t/1"),
        payload: Some(br#"{"v":1}"#),
        qos: Some(1),
        ..Input::event(EventKind::MessageDropped, 1)
    };
    let Outcome::Rows(rows) = run(
        r#"SELECT event, reason, from_clientid, payload.v AS v, topic FROM "$events/message_dropped""#,
        &input,
    ) else {
        panic!()
    };
    assert_eq!(
        Value::Object(rows[0].clone()).to_json_string(),
        r#"{"event":"message.dropped","reason":"queue_full","from_clientid":"tx","v":1,"topic":"t/1"}"#
    );
}

fn row_of(o: Outcome) -> ractmq_rules::Row {
    match o {
        Outcome::Rows(mut r) => r.remove(0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn user_properties() {
    let props = json(r#"{"User-Property":{"site":"p7"},"Content-Type":"json"}"#);
    let input = Input {
        pub_props: Some(&props),
        ..msg(b"{}")
    };
    let sql = r#"SELECT user_properties.site AS a, pub_props.'User-Property'.site AS b, pub_props."Content-Type" AS ct FROM "t/#""#;
    let Outcome::Rows(rows) = run(sql, &input) else {
        panic!()
    };
    assert_eq!(rows[0]["a"], s("p7"));
    assert_eq!(rows[0]["b"], s("p7"));
    assert_eq!(rows[0]["ct"], s("json"));
    let star = row_of(run(r#"SELECT * FROM "t/#""#, &input));
    assert_eq!(star["pub_props"], props);
    assert!(!star.contains_key("user_properties"));
}
