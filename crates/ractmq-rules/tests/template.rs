//! Templates over output rows, and the republish-loop check.

mod common;
use common::*;
use ractmq_rules::{republish_may_loop, Outcome, Rule, Template};

#[test]
fn renders_fields_and_paths() {
    let r = row(
        r#"SELECT payload.t AS t, clientid, payload.m AS m, payload.l AS l, payload.n AS n FROM "t/#""#,
        r#"{"t":21.5,"m":{"a":[1,2]},"l":["x"],"n":null}"#,
    );
    let t = Template::parse(r#"{"c":"${clientid}","t":${t},"m":${m},"a2":${m.a[2]},"l1":"${l[1]}","n":${n}}"#).unwrap();
    assert_eq!(
        t.render(&r).unwrap(),
        r#"{"c":"c1","t":21.5,"m":{"a":[1,2]},"a2":2,"l1":"x","n":null}"#
    );
    assert_eq!(t.fields(), ["clientid", "t", "m", "m.a[2]", "l[1]", "n"]);
    assert_eq!(t.root_fields(), ["clientid", "t", "m", "m", "l", "n"]);
    assert_eq!(
        Template::parse("plain $ text").unwrap().render(&r).unwrap(),
        "plain $ text"
    );
    assert!(Template::parse("a").unwrap().is_constant());
}

#[test]
fn star_payload_is_readable_as_json() {
    let r = row(r#"SELECT * FROM "t/#""#, r#"{"x":{"y":7}}"#);
    assert_eq!(
        Template::parse("v=${payload.x.y} t=${topic}")
            .unwrap()
            .render(&r)
            .unwrap(),
        "v=7 t=t/a"
    );
}

#[test]
fn missing_field_is_an_error_naming_it() {
    let r = row(r#"SELECT clientid FROM "t/#""#, "{}");
    let e = Template::parse("a/${nope}").unwrap().render(&r).unwrap_err();
    assert_eq!(e.to_string(), r#"no field "nope" in the rule's output"#);
    let r = row(r#"SELECT payload.m AS m FROM "t/#""#, r#"{"m":{}}"#);
    let e = Template::parse("${m.k}").unwrap().render(&r).unwrap_err();
    assert_eq!(e.to_string(), r#"no field "m.k" in the rule's output"#);
}

#[test]
fn bad_templates() {
    assert!(Template::parse("a/${x").is_err());
    assert!(Template::parse("${}").is_err());
    assert!(Template::parse("${a[x]}").is_err());
    assert!(Template::parse("${.a}").is_err());
}

#[test]
fn loop_detection() {
    let rule = Rule::compile(r#"SELECT * FROM "sensors/#", "$events/client_connected""#).unwrap();
    let t = |s: &str| Template::parse(s).unwrap();
    assert!(rule.republish_may_loop(&t("sensors/${clientid}/copy")));
    assert!(rule.republish_may_loop(&t("${topic}")));
    assert!(!rule.republish_may_loop(&t("alerts/${clientid}")));
    assert!(republish_may_loop(&["a/+/c"], &t("a/${x}/c")));
    assert!(!republish_may_loop(&["a/+/c"], &t("b/${x}/c")));
}

#[test]
fn end_to_end_republish() {
    let rule = Rule::compile(r#"SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30"#).unwrap();
    let topic = Template::parse("alerts/${clientid}").unwrap();
    let input = msg(br#"{"temp":35}"#);
    let Outcome::Rows(rows) = rule.evaluate(&input, &ENV) else {
        panic!()
    };
    assert_eq!(topic.render(&rows[0]).unwrap(), "alerts/c1");
    assert_eq!(rule.output_fields().unwrap(), ["t", "clientid"]);
}
