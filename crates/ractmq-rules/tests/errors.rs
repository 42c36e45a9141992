//! Compile errors: one line, with the position in the operator's SQL text.

mod common;
use common::compile_err;

#[test]
fn exact_messages() {
    let cases: &[(&str, &str)] = &[
        (
            r#"SELECT * FROM "t/#" WHER x"#,
            r#"SQL error at line 1, column 21: expected "," or WHERE, found "WHER""#,
        ),
        (
            r#"SELECT a WHERE a = 1"#,
            r#"SQL error at line 1, column 10: expected FROM, found "WHERE""#,
        ),
        (
            r#"SELECT a"#,
            "SQL error at line 1, column 9: expected FROM, found end of input",
        ),
        (
            r#"SELECT a FROM "t" WHERE a = "#,
            "SQL error at line 1, column 29: expected an expression, found end of input",
        ),
        (
            "SELECT a,\n  b +\n FROM \"t\"",
            r#"SQL error at line 3, column 2: expected an expression, found "FROM""#,
        ),
        (
            r#"SELECT nope(a) FROM "t""#,
            "SQL error at line 1, column 8: unknown function nope",
        ),
        (
            r#"SELECT abs(1, 2) FROM "t""#,
            "SQL error at line 1, column 8: function abs takes 1 argument(s), got 2",
        ),
        (
            r#"SELECT a FROM "t/#/x""#,
            r#"SQL error at line 1, column 15: invalid topic filter "t/#/x": '#' must be the whole last level"#,
        ),
        (
            r#"SELECT a FROM "t/a+""#,
            r#"SQL error at line 1, column 15: invalid topic filter "t/a+": '+' must be a whole level"#,
        ),
        (
            r#"SELECT a FROM t"#,
            r#"SQL error at line 1, column 15: expected a double-quoted topic filter, found "t""#,
        ),
        (
            r#"SELECT 'abc FROM "t""#,
            "SQL error at line 1, column 8: unterminated string literal",
        ),
        (
            "UPDATE x",
            r#"SQL error at line 1, column 1: expected SELECT or FOREACH, found "UPDATE""#,
        ),
        (
            "",
            "SQL error at line 1, column 1: expected SELECT or FOREACH, found end of input",
        ),
        (
            r#"FOREACH payload.x DO FROM "t""#,
            r#"SQL error at line 1, column 22: expected a field, found "FROM""#,
        ),
        (
            r#"FOREACH payload.x INCASE FROM "t""#,
            r#"SQL error at line 1, column 26: expected an expression, found "FROM""#,
        ),
        (
            r#"SELECT a FROM "t" WHERE a = 1 FROM "x""#,
            "SQL error at line 1, column 31: unexpected FROM here",
        ),
        (
            r#"SELECT a FROM "t"; SELECT b FROM "t""#,
            "SQL error at line 1, column 20: unexpected SELECT: a rule has one statement",
        ),
        (
            r#"SELECT cast(a AS int) FROM "t""#,
            "SQL error at line 1, column 13: unsupported expression (Cast)",
        ),
        (
            r#"SELECT regex_match(a, '(') FROM "t""#,
            "SQL error at line 1, column 8: bad regular expression: unclosed group",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(&compile_err(sql), want, "{sql}");
    }
}

#[test]
fn unknown_event_lists_the_known_ones() {
    let e = compile_err(r#"SELECT * FROM "$events/client_exploded""#);
    assert!(e.starts_with(r#"SQL error at line 1, column 15: unknown event "$events/client_exploded" (known: $events/client_connected"#), "{e}");
}

#[test]
fn errors_are_one_line() {
    for sql in [
        "SELECT (((a FROM \"t\"",
        "SELECT a FROM \"t\" WHERE (",
        "FOREACH FROM \"t\"",
        "SELECT a b c FROM \"t\"",
    ] {
        let e = compile_err(sql);
        assert!(e.starts_with("SQL error at line "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn bounds() {
    let long = format!("SELECT a FROM \"t\" WHERE {}", "a = 1 OR ".repeat(3000));
    assert!(compile_err(&long).contains("SQL longer than"));
    let chain = format!("SELECT {} FROM \"t\"", vec!["1"; 2000].join(" + "));
    assert!(
        compile_err(&chain).contains("nested deeper than 64"),
        "{}",
        compile_err(&chain)
    );
    // The longest chain that fits the length cap: sqlparser builds it iteratively (no recursion limit
    // applies), so compilation must stop at depth 64 and the deep tree must drop without overflowing.
    let longest = format!("SELECT {} FROM \"t\"", vec!["1"; 8000].join("+"));
    assert!(longest.len() <= ractmq_rules::MAX_SQL_LEN);
    assert!(compile_err(&longest).contains("nested deeper than 64"));
    let ors = format!("SELECT 1 FROM \"t\" WHERE {}", vec!["a=1"; 2000].join(" OR "));
    assert!(compile_err(&ors).contains("nested deeper than 64"));
    let parens = format!("SELECT {}1{} FROM \"t\"", "(".repeat(500), ")".repeat(500));
    assert!(compile_err(&parens).contains("nested too deeply"));
}
