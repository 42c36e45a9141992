//! The rule engine's SQL core, without IO: EMQX-style rule SQL (`SELECT ... FROM "t/#" WHERE ...` and
//! `FOREACH ... DO ... INCASE ... FROM ...`) compiled once, then evaluated against each matching message or
//! client event, plus the templates actions render from the output rows.
//!
//! The broker drives it: it compiles a rule with [`Rule::compile`], indexes it by [`CompiledRule::topics`]
//! in its subscription trie, and for each matching event builds an [`Input`] (borrowed, no allocation) and
//! calls [`CompiledRule::evaluate`] with an [`Env`] carrying the node name and the current time. Nothing here
//! reads a clock, spawns a task or touches the network.
//!
//! Untrusted input never panics the engine and never makes it allocate without bound: SQL text, expression
//! depth, JSON payload size and depth, FOREACH fan-out and strings built by functions are all capped.
//!
//! Conventions, following EMQX:
//! - arrays are indexed from 1 (`payload.list[1]`, `nth(1, ...)`); negative indexes count from the end;
//! - a missing field or unknown name reads as `null`;
//! - `payload` is the raw payload text; `payload.x` decodes it as JSON once per evaluation, and a payload that
//!   is not JSON makes such a rule give [`Outcome::NoResult`];
//! - `/` always gives a float, `div`/`mod`/`%` want integers, `+` on a string concatenates;
//! - strings are single-quoted; double quotes name fields (and topic filters in FROM).
//!
//! ```
//! use ractmq_rules::{Env, Input, Outcome, Rule, Template};
//!
//! let rule = Rule::compile(r#"SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30"#).unwrap();
//! let input = Input { clientid: Some("c1"), ..Input::message("sensors/1", br#"{"temp": 35}"#, 0) };
//! let Outcome::Rows(rows) = rule.evaluate(&input, &Env { node: "n1", now_ms: 0 }) else { panic!() };
//! assert_eq!(Template::parse("alerts/${clientid}/${t}").unwrap().render(&rows[0]).unwrap(), "alerts/c1/35");
//! ```

mod columns;
mod compile;
mod error;
mod expr;
mod funcs;
mod input;
mod json;
mod like;
mod loop_check;
mod ops;
mod rule;
mod source;
mod sql;
mod template;
mod value;

pub use compile::MAX_EXPR_DEPTH;
pub use error::{EvalError, SqlError};
pub use funcs::names as function_names;
pub use input::{Env, EventKind, Input};
pub use json::{decode as decode_json, JsonError, MAX_JSON_BYTES, MAX_JSON_DEPTH};
pub use loop_check::republish_may_loop;
pub use rule::{CompiledRule, Outcome, Row, Rule, MAX_FOREACH_BYTES, MAX_FOREACH_ROWS};
pub use source::{validate_filter, Source};
pub use sql::MAX_SQL_LEN;
pub use template::{Template, TemplateError};
pub use value::{Map, Value};

/// The column names an [`Input`] provides, in `SELECT *` order.
pub fn column_names() -> Vec<&'static str> {
    columns::Column::ALL.iter().map(|c| c.name()).collect()
}
