//! A compiled rule and its evaluation against one event: SELECT gives at most one row, FOREACH one row per
//! array element that passes INCASE. The broker compiles once, indexes the rule by [`CompiledRule::topics`],
//! and calls [`CompiledRule::evaluate`] for each matching message or event.

use sqlparser::ast::{Expr as SqlExpr, SelectItem};

use crate::columns::all_columns;
use crate::compile::{compile, Scope};
use crate::error::{EvalError, SqlError};
use crate::expr::{truthy, Base, Ctx, Eval, Expr, Halt, Seg};
use crate::input::{Env, Input};
use crate::source::{parse_source, Source};
use crate::sql::{self, Clause};
use crate::value::{Map, Value};

/// Most rows one FOREACH evaluation may produce; more makes the evaluation fail (rather than silently drop
/// elements), so a huge array in a payload cannot make a rule fan out without bound.
pub const MAX_FOREACH_ROWS: usize = 1000;

/// Most bytes (roughly) all rows of one FOREACH evaluation may hold together: `DO payload AS p` over a large
/// array would otherwise copy a big payload once per element.
pub const MAX_FOREACH_BYTES: usize = 16 * 1024 * 1024;

/// One output row: field name → value, in SELECT order.
pub type Row = Map;

/// The result of evaluating a rule against one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// WHERE was false, FOREACH produced no row, or the rule reads `payload.x` and the payload is not JSON.
    NoResult,
    /// The rows to hand to the rule's actions (one for SELECT, one or more for FOREACH).
    Rows(Vec<Row>),
    /// Evaluation failed (type mismatch, division by zero, a bound exceeded...).
    Failed(EvalError),
}

/// Entry point for compiling rule SQL.
pub struct Rule;

impl Rule {
    /// Parses and compiles `sql` (a SELECT or FOREACH statement). Errors are one line with a position.
    pub fn compile(sql: &str) -> Result<CompiledRule, SqlError> {
        CompiledRule::new(sql)
    }
}

/// Where a field goes in the output row.
#[derive(Debug, Clone)]
enum OutName {
    /// A top-level key.
    Flat(String),
    /// `SELECT payload.a.b` without alias nests as `{"payload":{"a":{"b":..}}}`, as EMQX does.
    Nested(Vec<String>),
}

#[derive(Debug, Clone)]
enum Field {
    /// `*`: every column of the input.
    Star,
    Expr(OutName, Expr),
}

#[derive(Debug, Clone)]
enum Body {
    Select {
        fields: Vec<Field>,
        filter: Option<Expr>,
        /// WHERE names a SELECT alias, so the fields must be computed first.
        filter_after_fields: bool,
    },
    Foreach {
        list: Expr,
        item: String,
        fields: Option<Vec<Field>>,
        incase: Option<Expr>,
        filter: Option<Expr>,
    },
}

impl Body {
    /// Every top-level expression of the statement.
    fn exprs(&self) -> Vec<&Expr> {
        fn field_exprs(fields: &[Field]) -> Vec<&Expr> {
            fields
                .iter()
                .filter_map(|f| match f {
                    Field::Expr(_, e) => Some(e),
                    Field::Star => None,
                })
                .collect()
        }
        match self {
            Body::Select { fields, filter, .. } => {
                let mut v = field_exprs(fields);
                v.extend(filter);
                v
            }
            Body::Foreach {
                list,
                fields,
                incase,
                filter,
                ..
            } => {
                let mut v = vec![list];
                v.extend(fields.as_deref().map(field_exprs).unwrap_or_default());
                v.extend(incase);
                v.extend(filter);
                v
            }
        }
    }
}

/// A rule compiled once and evaluated many times; cheap to share (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct CompiledRule {
    sql: String,
    sources: Vec<Source>,
    topics: Vec<String>,
    body: Body,
    /// See `payload_keys`: lets evaluation decode only the payload fields the rule reads.
    payload_keys: Option<Vec<String>>,
}

impl CompiledRule {
    fn new(text: &str) -> Result<CompiledRule, SqlError> {
        let st = sql::split(text)?;
        let mut sources = Vec::new();
        let mut topics = Vec::new();
        for (t, at) in sql::parse_from(&st.from)? {
            sources.push(parse_source(&t).map_err(|m| SqlError::at(at, m))?);
            topics.push(t);
        }
        let body = if st.foreach {
            let mut head = sql::parse_fields(&st.head, "DO, INCASE or FROM")?;
            if head.len() != 1 {
                return Err(SqlError::at(st.head.start, "FOREACH takes exactly one expression"));
            }
            let (list, item) = match head.remove(0) {
                SelectItem::UnnamedExpr(e) => (e, "item".to_owned()),
                SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value),
                _ => return Err(SqlError::at(st.head.start, "FOREACH needs an expression")),
            };
            let list = compile(
                &list,
                &Scope {
                    aliases: &[],
                    item: None,
                    at: st.head.start,
                },
            )?;
            let fields = match &st.do_ {
                Some(c) => Some(fields(c, "INCASE or FROM", Some(&item), false)?.0),
                None => None,
            };
            let incase = match &st.incase {
                Some(c) => Some(expr(c, "FROM", &[], Some(&item))?),
                None => None,
            };
            let filter = st
                .where_
                .as_ref()
                .map(|c| expr(c, "end of statement", &[], None))
                .transpose()?;
            Body::Foreach {
                list,
                item,
                fields,
                incase,
                filter,
            }
        } else {
            let (fields, aliases) = fields(&st.head, "FROM", None, true)?;
            let filter = st
                .where_
                .as_ref()
                .map(|c| expr(c, "end of statement", &aliases, None))
                .transpose()?;
            let filter_after_fields = filter.as_ref().is_some_and(uses_slots);
            Body::Select {
                fields,
                filter,
                filter_after_fields,
            }
        };
        let payload_keys = payload_keys(&body.exprs());
        Ok(CompiledRule {
            sql: text.to_owned(),
            sources,
            topics,
            body,
            payload_keys,
        })
    }

    /// The SQL text the rule was compiled from.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The FROM entries as written: MQTT topic filters and `$events/...` topics. The broker indexes the rule
    /// by these.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The FROM entries, classified.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Is this a FOREACH rule (zero or more rows per event)?
    pub fn is_foreach(&self) -> bool {
        matches!(self.body, Body::Foreach { .. })
    }

    /// The top-level keys every output row has, or `None` when they depend on the input (`SELECT *`, FOREACH
    /// without DO). Lets the broker check a template's fields when an action is created.
    pub fn output_fields(&self) -> Option<Vec<String>> {
        let fields = match &self.body {
            Body::Select { fields, .. } => fields,
            Body::Foreach { fields: Some(f), .. } => f,
            Body::Foreach { item, fields: None, .. } => return Some(vec![item.clone()]),
        };
        let mut out = Vec::new();
        for f in fields {
            match f {
                Field::Star => return None,
                Field::Expr(OutName::Flat(n), _) => out.push(n.clone()),
                Field::Expr(OutName::Nested(p), _) => out.extend(p.first().cloned()),
            }
        }
        out.dedup();
        Some(out)
    }

    /// Could a message republished to `topic` (a template) come back into this rule? See
    /// [`crate::republish_may_loop`].
    pub fn republish_may_loop(&self, topic: &crate::Template) -> bool {
        let filters: Vec<&str> = self
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Topic(t) => Some(t.as_str()),
                Source::Event(_) => None,
            })
            .collect();
        crate::republish_may_loop(&filters, topic)
    }

    /// Evaluates the rule for one event. Never panics; the outcome says whether actions run.
    pub fn evaluate(&self, input: &Input<'_>, env: &Env<'_>) -> Outcome {
        let mut cx = Ctx::new(input, env, self.payload_keys.as_deref());
        let result = match &self.body {
            Body::Select {
                fields,
                filter,
                filter_after_fields,
            } => select(&mut cx, fields, filter.as_ref(), *filter_after_fields).map(|r| r.into_iter().collect()),
            Body::Foreach {
                list,
                item,
                fields,
                incase,
                filter,
            } => foreach(&mut cx, list, item, fields.as_deref(), incase.as_ref(), filter.as_ref()),
        };
        match result {
            Ok(rows) if rows.is_empty() => Outcome::NoResult,
            Ok(rows) => Outcome::Rows(rows),
            Err(Halt::NoResult) => Outcome::NoResult,
            Err(Halt::Failed(e)) => Outcome::Failed(e),
        }
    }
}

fn select(cx: &mut Ctx<'_, '_>, fields: &[Field], filter: Option<&Expr>, after: bool) -> Eval<Option<Row>> {
    if let (Some(f), false) = (filter, after) {
        if !truthy(&f.eval(cx)?)? {
            return Ok(None);
        }
    }
    compute_fields(cx, fields)?;
    if let (Some(f), true) = (filter, after) {
        if !truthy(&f.eval(cx)?)? {
            return Ok(None);
        }
    }
    Ok(Some(assemble(cx, fields)))
}

fn foreach(
    cx: &mut Ctx<'_, '_>,
    list: &Expr,
    item: &str,
    fields: Option<&[Field]>,
    incase: Option<&Expr>,
    filter: Option<&Expr>,
) -> Eval<Vec<Row>> {
    if let Some(f) = filter {
        if !truthy(&f.eval(cx)?)? {
            return Ok(Vec::new());
        }
    }
    let elements = match list.eval(cx)? {
        Value::Array(a) => a,
        Value::Null => return Ok(Vec::new()),
        // A JSON array held as text (e.g. a field of `SELECT *`-style input) is iterated too.
        Value::Str(s) => match crate::json::decode(s.as_bytes()) {
            Ok(Value::Array(a)) => a,
            _ => return Err(EvalError::new("FOREACH needs an array, got a string").into()),
        },
        other => return Err(EvalError::new(format!("FOREACH needs an array, got {}", other.type_name())).into()),
    };
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    for element in elements {
        cx.item = element;
        if let Some(c) = incase {
            if !truthy(&c.eval(cx)?)? {
                continue;
            }
        }
        if rows.len() == MAX_FOREACH_ROWS {
            return Err(EvalError::new(format!("FOREACH produced more than {MAX_FOREACH_ROWS} rows")).into());
        }
        let row = match fields {
            Some(f) => {
                compute_fields(cx, f)?;
                assemble(cx, f)
            }
            None => {
                let mut m = Map::new();
                m.insert(item.to_owned(), std::mem::take(&mut cx.item));
                m
            }
        };
        bytes = bytes.saturating_add(row.iter().map(|(k, v)| k.len() + v.approx_size()).sum());
        if bytes > MAX_FOREACH_BYTES {
            let msg = format!("FOREACH output larger than {MAX_FOREACH_BYTES} bytes");
            return Err(EvalError::new(msg).into());
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Computes the fields in order into the slots; later fields (and WHERE) may read earlier ones.
fn compute_fields(cx: &mut Ctx<'_, '_>, fields: &[Field]) -> Eval<()> {
    cx.slots.clear();
    for f in fields {
        if let Field::Expr(_, e) = f {
            let v = e.eval(cx)?;
            cx.slots.push(v);
        }
    }
    Ok(())
}

/// Moves the computed slots into an output row.
fn assemble(cx: &mut Ctx<'_, '_>, fields: &[Field]) -> Row {
    let mut row = Map::with_capacity(fields.len());
    let mut slots = std::mem::take(&mut cx.slots).into_iter();
    for f in fields {
        match f {
            Field::Star => row.extend(all_columns(cx.input, cx.env)),
            Field::Expr(OutName::Flat(n), _) => {
                row.insert(n.clone(), slots.next().unwrap_or_default());
            }
            Field::Expr(OutName::Nested(path), _) => insert_nested(&mut row, path, slots.next().unwrap_or_default()),
        }
    }
    row
}

fn insert_nested(row: &mut Map, path: &[String], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = row;
    for p in parents {
        let entry = cur.entry(p.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !matches!(entry, Value::Object(_)) {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(m) = entry else { return };
        cur = m;
    }
    cur.insert(last.clone(), v);
}

/// Compiles a field list; returns the fields and the name each is known by (for aliases in WHERE).
fn fields(c: &Clause, next: &str, item: Option<&str>, star_ok: bool) -> Result<(Vec<Field>, Vec<String>), SqlError> {
    let mut out = Vec::new();
    let mut aliases: Vec<String> = Vec::new();
    for it in sql::parse_fields(c, next)? {
        let scope = Scope {
            aliases: &aliases,
            item,
            at: c.start,
        };
        let (name, e) = match it {
            SelectItem::Wildcard(_) if star_ok => {
                out.push(Field::Star);
                continue;
            }
            SelectItem::ExprWithAlias { expr, alias } => (OutName::Flat(alias.value), compile(&expr, &scope)?),
            SelectItem::UnnamedExpr(expr) => {
                let compiled = compile(&expr, &scope)?;
                (default_name(&expr), compiled)
            }
            _ => return Err(SqlError::at(c.start, "unsupported field (use expr [AS name] or *)")),
        };
        aliases.push(match &name {
            OutName::Flat(n) => n.clone(),
            OutName::Nested(_) => String::new(),
        });
        out.push(Field::Expr(name, e));
    }
    Ok((out, aliases))
}

/// EMQX names an unaliased field after its text: `clientid`, nested keys for `payload.a.b`, else the
/// expression as written (normalised by sqlparser).
fn default_name(e: &SqlExpr) -> OutName {
    match e {
        SqlExpr::Identifier(i) => OutName::Flat(i.value.clone()),
        SqlExpr::CompoundIdentifier(ids) => OutName::Nested(ids.iter().map(|i| i.value.clone()).collect()),
        other => OutName::Flat(other.to_string()),
    }
}

fn expr(c: &Clause, next: &str, aliases: &[String], item: Option<&str>) -> Result<Expr, SqlError> {
    if c.tokens.is_empty() {
        return Err(SqlError::at(
            c.end,
            format!("expected an expression, found {}", sql::end_name(c)),
        ));
    }
    let e = sql::parse_expr(c, next)?;
    compile(
        &e,
        &Scope {
            aliases,
            item,
            at: c.start,
        },
    )
}

/// Does the expression read a slot (a SELECT alias)?
fn uses_slots(e: &Expr) -> bool {
    let mut found = false;
    e.visit(&mut |x| found |= matches!(x, Expr::Slot(_)));
    found
}

/// The top-level payload keys the rule reads, or `None` when it needs the whole document
/// (`FOREACH payload`, a computed first key...).
fn payload_keys(exprs: &[&Expr]) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut whole = false;
    for e in exprs {
        e.visit(&mut |x| {
            if let Expr::Path(Base::Payload, segs) = x {
                match segs.first() {
                    Some(Seg::Key(k)) => {
                        if !keys.contains(k) {
                            keys.push(k.clone());
                        }
                    }
                    _ => whole = true,
                }
            }
        });
    }
    (!whole).then_some(keys)
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiled_rules_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<super::CompiledRule>();
        shared::<crate::Template>();
    }
}
