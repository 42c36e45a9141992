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
//! - strings are single-quoted; double quotes name fields (and topic filters in FROM), and an unknown
//!   double-quoted name is a compile error (it is usually a string with the wrong quotes).
//!
//! # Statements
//!
//! - `SELECT <fields> FROM "<filter>"[, "<filter>"...] [WHERE <cond>]`: fields are `*` (every column the
//!   input carries, `payload` as raw text) or `expr [AS name]`. An unaliased `payload.a.b` nests in the row
//!   as `{"payload":{"a":{"b":..}}}`; other unaliased expressions are named after their text. WHERE and later
//!   fields may use earlier aliases.
//! - `FOREACH <expr> [AS name] [DO <fields>] [INCASE <cond>] FROM ... [WHERE <cond>]`: WHERE filters the
//!   event, then each element of the array (named `item`, or `name`) that passes INCASE gives one row built
//!   by DO — or, without DO, the row `{"item": element}`. At most [`MAX_FOREACH_ROWS`] rows and
//!   [`MAX_FOREACH_BYTES`] bytes per event, beyond which the evaluation fails.
//! - FROM takes MQTT filters (`+`/`#` checked) and the event topics `$events/client_connected`,
//!   `$events/client_disconnected`, `$events/session_subscribed`, `$events/session_unsubscribed`,
//!   `$events/message_delivered`, `$events/message_acked`, `$events/message_dropped`.
//!
//! # Expressions
//!
//! Paths (`payload.a.b`, `payload.list[1]`, `payload.m['key']`, `payload.l[payload.i]`), literals (`1`,
//! `1.5`, `'text'`, `true`, `null`, `[1, 2]`), `= != <> < <= > >=`, `AND OR NOT`, `IN (...)`,
//! `LIKE` (`%`, `_`), `IS [NOT] NULL`, `BETWEEN`, `+ - * / %`, `||`, searched and simple `CASE`, and calls
//! of the built-ins below (unknown names and wrong argument counts fail compilation).
//!
//! # Functions
//!
//! - strings: `lower upper trim ltrim rtrim reverse strlen concat substr` (0-based start, as EMQX)
//!   `split` (drops empty parts; `'notrim'`, `'leading'`, `'trailing'`) `tokens replace find pad ascii
//!   regex_match regex_replace regex_extract topic_level` (1-based MQTT level, empty levels count);
//! - math: `abs ceil floor round sqrt power exp log log10 log2 sin cos tan asin acos atan sinh cosh tanh
//!   asinh acosh atanh fmod div mod min max`;
//! - types: `str str_utf8 int float bool coalesce is_null is_not_null is_str is_num is_int is_float is_bool
//!   is_map is_array`;
//! - arrays and maps: `nth length sublist first last contains map_get mget map_put mput map_keys map_values`;
//! - encodings: `json_encode json_decode base64_encode base64_decode md5 sha sha256` (hex);
//! - time: `now_timestamp now_rfc3339 unix_ts_to_rfc3339 rfc3339_to_unix_ts` (UTC, units `'second'`,
//!   `'millisecond'`, `'microsecond'`, `'nanosecond'`).
//!
//! [`function_names`] lists them; [`Input`] documents the columns.
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
