//! What one matched message costs the rule engine end to end: build the `Input` from a ~60-byte JSON payload,
//! evaluate `SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30`, render the
//! republish topic and payload templates. The rule and templates are compiled once, outside the loop.
//! Results: benches/results/rules/eval.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ractmq_rules::{Env, Input, Outcome, Rule, Template};

fn rule_eval(c: &mut Criterion) {
    let rule = Rule::compile(r#"SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30"#).unwrap();
    let topic = Template::parse("alerts/${clientid}/temp").unwrap();
    let body = Template::parse(r#"{"client":"${clientid}","t":${t}}"#).unwrap();
    let payload = br#"{"temp":35.5,"hum":41,"unit":"C","site":"plant-7","ok":true}"#;
    assert!((55..=65).contains(&payload.len()));
    let env = Env {
        node: "ractmq@node1",
        now_ms: 1_700_000_000_000,
    };
    let mut topic_buf = String::with_capacity(64);
    let mut body_buf = String::with_capacity(64);

    c.bench_function("rule_eval/select_where_republish", |b| {
        b.iter(|| {
            let input = Input {
                clientid: Some(black_box("sensor-0042")),
                username: Some("u"),
                qos: Some(1),
                ..Input::message(black_box("sensors/0042/env"), black_box(payload), 1_700_000_000_000)
            };
            let Outcome::Rows(rows) = rule.evaluate(&input, &env) else {
                panic!("rule did not match")
            };
            topic_buf.clear();
            body_buf.clear();
            for row in &rows {
                topic.render_into(row, &mut topic_buf).unwrap();
                body.render_into(row, &mut body_buf).unwrap();
            }
            black_box((&topic_buf, &body_buf));
        })
    });
}

criterion_group!(benches, rule_eval);
criterion_main!(benches);
