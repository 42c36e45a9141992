//! FOREACH / DO / INCASE: one row per array element that passes INCASE, the element as `item` or its alias.

mod common;
use common::*;
use ractmq_rules::{Outcome, Rule, Value, MAX_FOREACH_ROWS};

const SENSORS: &str =
    r#"{"date":"2020-04-24","sensors":[{"name":"a","idx":0},{"name":"b","idx":1},{"name":"c","idx":2}]}"#;

fn rows(sql: &str, payload: &str) -> Vec<String> {
    match run(sql, &msg(payload.as_bytes())) {
        Outcome::Rows(rows) => rows.into_iter().map(|r| Value::Object(r).to_json_string()).collect(),
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn do_and_incase_with_item() {
    let sql =
        r#"FOREACH payload.sensors DO clientid, item.name AS name, item.idx + 1 AS n INCASE item.idx >= 1 FROM "t/#""#;
    assert_eq!(
        rows(sql, SENSORS),
        [
            r#"{"clientid":"c1","name":"b","n":2}"#,
            r#"{"clientid":"c1","name":"c","n":3}"#
        ]
    );
    assert!(Rule::compile(sql).unwrap().is_foreach());
}

#[test]
fn alias_names_the_element() {
    let sql = r#"FOREACH payload.sensors AS s DO s.name AS name, payload.date AS date FROM "t/#" WHERE payload.date IS NOT NULL"#;
    assert_eq!(rows(sql, SENSORS)[0], r#"{"name":"a","date":"2020-04-24"}"#);
}

#[test]
fn without_do_the_row_holds_the_element() {
    assert_eq!(
        rows(r#"FOREACH payload.list FROM "t/#""#, r#"{"list":[1,2]}"#),
        [r#"{"item":1}"#, r#"{"item":2}"#]
    );
    assert_eq!(
        rows(r#"FOREACH payload.list AS x FROM "t/#""#, r#"{"list":[1]}"#),
        [r#"{"x":1}"#]
    );
    let sql = r#"FOREACH payload.list AS x INCASE x > 1 FROM "t/#""#;
    assert_eq!(rows(sql, r#"{"list":[1,2,3]}"#), [r#"{"x":2}"#, r#"{"x":3}"#]);
}

#[test]
fn later_do_fields_read_earlier_ones() {
    let sql = r#"FOREACH payload.list DO item * 2 AS d, d + 1 AS e FROM "t""#;
    assert_eq!(rows(sql, r#"{"list":[5]}"#), [r#"{"d":10,"e":11}"#]);
}

#[test]
fn no_rows_is_no_result() {
    let sql = r#"FOREACH payload.list INCASE item > 100 FROM "t/#""#;
    assert_eq!(run(sql, &msg(br#"{"list":[1,2]}"#)), Outcome::NoResult);
    assert_eq!(run(sql, &msg(br#"{"list":[]}"#)), Outcome::NoResult);
    assert_eq!(run(sql, &msg(br#"{}"#)), Outcome::NoResult, "missing array");
    assert_eq!(run(sql, &msg(b"garbage")), Outcome::NoResult, "payload not JSON");
    let sql = r#"FOREACH payload.list FROM "t/#" WHERE clientid = 'other'"#;
    assert_eq!(run(sql, &msg(br#"{"list":[1]}"#)), Outcome::NoResult);
}

#[test]
fn not_an_array_fails() {
    let Outcome::Failed(e) = run(r#"FOREACH payload.x FROM "t""#, &msg(br#"{"x":1}"#)) else {
        panic!()
    };
    assert_eq!(e.to_string(), "FOREACH needs an array, got int");
}

#[test]
fn fan_out_is_capped() {
    let ok = format!("[{}]", vec!["1"; MAX_FOREACH_ROWS].join(","));
    let Outcome::Rows(r) = run(r#"FOREACH payload FROM "t""#, &msg(ok.as_bytes())) else {
        panic!()
    };
    assert_eq!(r.len(), MAX_FOREACH_ROWS);
    let too_many = format!("[{}]", vec!["1"; MAX_FOREACH_ROWS + 1].join(","));
    let Outcome::Failed(e) = run(r#"FOREACH payload FROM "t""#, &msg(too_many.as_bytes())) else {
        panic!()
    };
    assert!(e.to_string().contains("more than 1000 rows"));
    // INCASE filters before the cap counts.
    let sql = r#"FOREACH payload INCASE item = 2 FROM "t""#;
    let mut big = vec!["1"; 50_000];
    big.push("2");
    let Outcome::Rows(r) = run(sql, &msg(format!("[{}]", big.join(",")).as_bytes())) else {
        panic!()
    };
    assert_eq!(r.len(), 1);
}

#[test]
fn keywords_inside_paths_and_strings_do_not_split() {
    let sql = r#"FOREACH payload.from AS f DO f.do AS d, 'FROM x WHERE' AS s INCASE f.incase FROM "t""#;
    assert_eq!(
        rows(sql, r#"{"from":[{"do":1,"incase":true},{"do":2,"incase":false}]}"#),
        [r#"{"d":1,"s":"FROM x WHERE"}"#]
    );
}
