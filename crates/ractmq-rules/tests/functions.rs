//! Every built-in function group, with asserted outputs.

mod common;
use common::*;
use ractmq_rules::{Outcome, Value};

#[test]
fn strings() {
    assert_eq!(eval("lower('AbC')"), s("abc"));
    assert_eq!(eval("upper(payload.s)"), s("HELLO"));
    assert_eq!(eval("trim('  x ')"), s("x"));
    assert_eq!(eval("ltrim('  x ')"), s("x "));
    assert_eq!(eval("rtrim('  x ')"), s("  x"));
    assert_eq!(eval("reverse('abc')"), s("cba"));
    assert_eq!(eval("strlen('héllo')"), Value::Int(5));
    assert_eq!(eval("concat('a', 'b', 1)"), s("ab1"));
    assert_eq!(eval("concat(['a', 'b'])"), s("ab"));
    assert_eq!(eval("substr('abcdef', 2)"), s("cdef"));
    assert_eq!(eval("substr('abcdef', 2, 3)"), s("cde"));
    assert_eq!(eval("split('a/b/ c', '/')"), json(r#"["a","b"," c"]"#));
    assert_eq!(eval("split('/a//b', '/')"), json(r#"["a","b"]"#));
    assert_eq!(eval("split('/a//b', '/', 'notrim')"), json(r#"["","a","","b"]"#));
    assert_eq!(eval("split('a/b/c', '/', 'leading')"), json(r#"["a","b/c"]"#));
    assert_eq!(eval("split('a/b/c', '/', 'trailing')"), json(r#"["a/b","c"]"#));
    assert_eq!(eval("tokens('a b,c', ' ,')"), json(r#"["a","b","c"]"#));
    assert_eq!(eval("tokens('a\r\nb', ' ', 'nocrlf')"), json(r#"["a","b"]"#));
    assert_eq!(eval("replace('abab', 'a', 'x')"), s("xbxb"));
    assert_eq!(eval("replace('abab', 'a', 'x', 'leading')"), s("xbab"));
    assert_eq!(eval("replace('abab', 'a', 'x', 'trailing')"), s("abxb"));
    assert_eq!(eval("find('abcbc', 'bc')"), s("bcbc"));
    assert_eq!(eval("find('abcbc', 'bc', 'trailing')"), s("bc"));
    assert_eq!(eval("find('abc', 'z')"), s(""));
    assert_eq!(eval("pad('ab', 4)"), s("ab  "));
    assert_eq!(eval("pad('ab', 4, 'leading', '0')"), s("00ab"));
    assert_eq!(eval("pad('ab', 5, 'both', '*')"), s("*ab**"));
    assert_eq!(eval("ascii('A')"), Value::Int(65));
    assert_eq!(eval("regex_match('abc123', '[0-9]+')"), Value::Bool(true));
    assert_eq!(eval("regex_match('abc', '^[0-9]+$')"), Value::Bool(false));
    assert_eq!(eval("regex_replace('a1b22', '[0-9]+', '#')"), s("a#b#"));
    assert_eq!(
        eval("regex_extract('t=42;h=7', 't=([0-9]+);h=([0-9]+)')"),
        json(r#"["42","7"]"#)
    );
    assert_eq!(
        eval_with("regex_match(payload.s, payload.p)", r#"{"s":"xyz","p":"y"}"#),
        Value::Bool(true)
    );
    assert!(eval_err("pad('a', 100000000)").contains("longer than"));
    let big = format!(r#"{{"s":"{}"}}"#, "x".repeat(100_000));
    let sql = r#"SELECT regex_replace(payload.s, '', '$0$0$0$0$0$0$0$0$0$0$0$0') AS v FROM "t""#;
    let Outcome::Failed(e) = run(sql, &msg(big.as_bytes())) else {
        panic!()
    };
    assert!(e.to_string().contains("longer than"), "{e}");
    assert!(eval_err("lower(1)").contains("lower: expected a string, got int"));
}

#[test]
fn topic_levels() {
    assert_eq!(eval("nth(2, split(topic, '/'))"), s("a"));
    assert_eq!(eval("split(topic, '/')[1]"), s("t"));
    assert_eq!(eval("topic_level(topic, 1)"), s("t"));
    assert_eq!(eval("topic_level(topic, -1)"), s("a"));
    assert_eq!(eval("topic_level('a//b', 2)"), s(""));
    assert_eq!(eval("topic_level(topic, 5)"), Value::Null);
}

#[test]
fn math() {
    assert_eq!(eval("abs(-3)"), Value::Int(3));
    assert_eq!(eval("abs(-1.5)"), Value::Float(1.5));
    assert_eq!(eval("ceil(1.2)"), Value::Int(2));
    assert_eq!(eval("floor(1.8)"), Value::Int(1));
    assert_eq!(eval("round(2.5)"), Value::Int(3));
    assert_eq!(eval("sqrt(16)"), Value::Float(4.0));
    assert_eq!(eval("power(2, 10)"), Value::Float(1024.0));
    assert_eq!(eval("exp(0)"), Value::Float(1.0));
    assert_eq!(eval("log(1)"), Value::Float(0.0));
    assert_eq!(eval("log10(1000)"), Value::Float(3.0));
    assert_eq!(eval("log2(8)"), Value::Float(3.0));
    assert_eq!(eval("sin(0)"), Value::Float(0.0));
    assert_eq!(eval("cos(0)"), Value::Float(1.0));
    assert_eq!(eval("tan(0)"), Value::Float(0.0));
    assert_eq!(eval("fmod(7.5, 2)"), Value::Float(1.5));
    assert_eq!(eval("fmod(7, 2)"), Value::Int(1));
    assert_eq!(eval("div(7, 2)"), Value::Int(3));
    assert_eq!(eval("mod(7, 2)"), Value::Int(1));
    assert_eq!(eval("min(3, 1.5, 2)"), Value::Float(1.5));
    assert_eq!(eval("max(payload.list)"), Value::Int(30));
    assert!(eval_err("sqrt(-1)").contains("not a finite number"));
    assert!(eval_err("log(0)").contains("not a finite number"));
    assert!(eval_err("div(1, 0)").contains("division by zero"));
    assert!(eval_err("abs('x')").contains("expected a number"));
}

#[test]
fn types() {
    assert_eq!(eval("str(12)"), s("12"));
    assert_eq!(eval("str(1.5)"), s("1.5"));
    assert_eq!(eval("str(payload.m)"), s(r#"{"k":"v"}"#));
    assert_eq!(eval("int('42')"), Value::Int(42));
    assert_eq!(eval("int(3.9)"), Value::Int(3));
    assert_eq!(eval("int(true)"), Value::Int(1));
    assert_eq!(eval("float('2.5')"), Value::Float(2.5));
    assert_eq!(eval("float(2)"), Value::Float(2.0));
    assert_eq!(eval("float(2.71828, 2)"), Value::Float(2.72));
    assert_eq!(eval("bool('true')"), Value::Bool(true));
    assert_eq!(eval("bool(0)"), Value::Bool(false));
    assert_eq!(eval("coalesce(payload.n, payload.a)"), Value::Int(1));
    for (e, want) in [
        ("is_null(payload.n)", true),
        ("is_not_null(payload.a)", true),
        ("is_str(payload.s)", true),
        ("is_num(payload.f)", true),
        ("is_int(payload.a)", true),
        ("is_int(payload.f)", false),
        ("is_float(payload.f)", true),
        ("is_bool(true)", true),
        ("is_map(payload.m)", true),
        ("is_array(payload.list)", true),
        ("is_array(payload.m)", false),
    ] {
        assert_eq!(eval(e), Value::Bool(want), "{e}");
    }
    assert!(eval_err("int('x')").contains("not a number"));
    assert!(eval_err("bool('maybe')").contains("cannot convert"));
}

#[test]
fn arrays_and_maps() {
    assert_eq!(eval("nth(1, payload.list)"), Value::Int(10));
    assert_eq!(eval("nth(-1, payload.list)"), Value::Int(30));
    assert!(eval_err("nth(4, [1,2,3])").contains("out of range"));
    assert_eq!(eval("length(payload.list)"), Value::Int(3));
    assert_eq!(eval("length(payload.m)"), Value::Int(1));
    assert_eq!(eval("sublist(2, payload.list)"), json("[10,20]"));
    assert_eq!(eval("sublist(2, 5, payload.list)"), json("[20,30]"));
    assert_eq!(eval("first(payload.list)"), Value::Int(10));
    assert_eq!(eval("last(payload.list)"), Value::Int(30));
    assert!(eval_err("first([])").contains("empty array"));
    assert_eq!(eval("contains(20, payload.list)"), Value::Bool(true));
    assert_eq!(eval("contains('ell', payload.s)"), Value::Bool(true));
    assert_eq!(eval("map_get('k', payload.m)"), s("v"));
    assert_eq!(eval("map_get('x', payload.m, 'dflt')"), s("dflt"));
    assert_eq!(eval("mget('k', payload.m)"), s("v"));
    assert_eq!(eval("map_put('z', 1, payload.m)"), json(r#"{"k":"v","z":1}"#));
    assert_eq!(eval("mput('k', 2, payload.m)"), json(r#"{"k":2}"#));
    assert_eq!(eval("map_keys(payload.m)"), json(r#"["k"]"#));
    assert_eq!(eval("map_values(payload.m)"), json(r#"["v"]"#));
}

#[test]
fn json_base64_hashes() {
    assert_eq!(eval("json_encode(payload.m)"), s(r#"{"k":"v"}"#));
    assert_eq!(eval("json_decode('{\"a\":[1,2]}')"), json(r#"{"a":[1,2]}"#));
    assert_eq!(eval("json_decode(payload).m.k"), s("v"));
    assert!(eval_err("json_decode('{')").contains("invalid JSON"));
    assert_eq!(eval("base64_encode('hello')"), s("aGVsbG8="));
    assert_eq!(eval("base64_decode('aGVsbG8=')"), s("hello"));
    assert!(eval_err("base64_decode('!!')").contains("invalid base64"));
    assert_eq!(eval("md5('abc')"), s("900150983cd24fb0d6963f7d28e17f72"));
    assert_eq!(eval("sha('abc')"), s("a9993e364706816aba3e25717850c26c9cd0d89d"));
    assert_eq!(
        eval("sha256('abc')"),
        s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
}

#[test]
fn time() {
    // ENV.now_ms = 1_700_000_000_123 (2023-11-14T22:13:20.123Z).
    assert_eq!(eval("now_timestamp()"), Value::Int(1_700_000_000));
    assert_eq!(eval("now_timestamp('millisecond')"), Value::Int(1_700_000_000_123));
    assert_eq!(eval("now_rfc3339()"), s("2023-11-14T22:13:20Z"));
    assert_eq!(eval("now_rfc3339('millisecond')"), s("2023-11-14T22:13:20.123Z"));
    assert_eq!(eval("unix_ts_to_rfc3339(0)"), s("1970-01-01T00:00:00Z"));
    assert_eq!(
        eval("unix_ts_to_rfc3339(1500, 'millisecond')"),
        s("1970-01-01T00:00:01.500Z")
    );
    assert_eq!(
        eval("rfc3339_to_unix_ts('2023-11-14T22:13:20Z')"),
        Value::Int(1_700_000_000)
    );
    assert_eq!(
        eval("rfc3339_to_unix_ts('2023-11-14T23:13:20.5+01:00', 'millisecond')"),
        Value::Int(1_700_000_000_500)
    );
    assert_eq!(
        eval("unix_ts_to_rfc3339(timestamp, 'millisecond')"),
        s("2023-11-14T22:13:20.000Z")
    );
    assert!(eval_err("unix_ts_to_rfc3339(9223372036854775807)").contains("out of range"));
    assert!(eval_err("rfc3339_to_unix_ts('yesterday')").contains("not RFC 3339"));
    assert!(eval_err("now_timestamp('fortnight')").contains("unknown time unit"));
}

#[test]
fn function_names_are_case_insensitive_and_listed() {
    assert_eq!(eval("UPPER('a')"), s("A"));
    let names = ractmq_rules::function_names();
    for n in [
        "lower",
        "sha256",
        "now_rfc3339",
        "map_put",
        "topic_level",
        "regex_replace",
    ] {
        assert!(names.contains(&n), "{n}");
    }
}
