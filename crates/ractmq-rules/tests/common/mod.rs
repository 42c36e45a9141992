//! Helpers shared by the integration tests: compile, evaluate against a sample message, pick values out.
#![allow(dead_code)]

use ractmq_rules::{Env, Input, Outcome, Row, Rule, Value};

pub const ENV: Env<'static> = Env {
    node: "node1@host",
    now_ms: 1_700_000_000_123,
};

/// A message from client `c1` to `t/a` with `payload`.
pub fn msg(payload: &[u8]) -> Input<'_> {
    Input {
        id: Some("0001"),
        clientid: Some("c1"),
        username: Some("u1"),
        qos: Some(1),
        retain: Some(false),
        peerhost: Some("10.0.0.1"),
        ..Input::message("t/a", payload, 1_700_000_000_000)
    }
}

pub fn run(sql: &str, input: &Input<'_>) -> Outcome {
    Rule::compile(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .evaluate(input, &ENV)
}

/// The single row a SELECT produces for `payload`.
pub fn row(sql: &str, payload: &str) -> Row {
    match run(sql, &msg(payload.as_bytes())) {
        Outcome::Rows(mut rows) if rows.len() == 1 => rows.remove(0),
        other => panic!("{sql}: expected one row, got {other:?}"),
    }
}

/// The value of one expression, evaluated with payload `payload`.
pub fn eval_with(expr: &str, payload: &str) -> Value {
    let sql = format!("SELECT {expr} AS v FROM \"t/#\"");
    row(&sql, payload).swap_remove("v").expect("field v")
}

pub fn eval(expr: &str) -> Value {
    eval_with(
        expr,
        r#"{"a":1,"s":"Hello","f":1.5,"list":[10,20,30],"m":{"k":"v"},"n":null}"#,
    )
}

/// The error an expression evaluates to.
pub fn eval_err(expr: &str) -> String {
    let sql = format!("SELECT {expr} AS v FROM \"t/#\"");
    match run(&sql, &msg(b"{}")) {
        Outcome::Failed(e) => e.to_string(),
        other => panic!("{expr}: expected failure, got {other:?}"),
    }
}

pub fn compile_err(sql: &str) -> String {
    match Rule::compile(sql) {
        Ok(_) => panic!("{sql}: compiled"),
        Err(e) => e.to_string(),
    }
}

pub fn s(v: &str) -> Value {
    Value::from(v)
}

pub fn json(text: &str) -> Value {
    ractmq_rules::decode_json(text.as_bytes()).unwrap()
}
