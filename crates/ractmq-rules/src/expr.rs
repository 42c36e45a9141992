//! The compiled form of an expression and its evaluation. Names, paths, function pointers and constant
//! patterns are resolved at compile time; evaluating walks a small tree with no lookups by name.
//! Recursion is bounded because compilation refuses trees deeper than [`MAX_EXPR_DEPTH`](crate::MAX_EXPR_DEPTH).

use crate::columns::Column;
use crate::error::EvalError;
use crate::funcs::{FnCtx, FnDef};
use crate::input::{Env, Input};
use crate::json;
use crate::like::LikePattern;
use crate::ops::{self, BinOp};
use crate::value::{index_of, Value};

/// Why evaluation of a row stopped early.
#[derive(Debug)]
pub(crate) enum Halt {
    /// Not an error: the payload is not JSON but the rule needs `payload.x`.
    NoResult,
    /// The row fails.
    Failed(EvalError),
}

impl From<EvalError> for Halt {
    fn from(e: EvalError) -> Self {
        Halt::Failed(e)
    }
}

pub(crate) type Eval<T> = Result<T, Halt>;

/// One step of a field path.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    /// `.name` or `['name']`.
    Key(String),
    /// `[n]`, 1-based as in EMQX; negative counts from the end (-1 is the last element).
    Index(i64),
    /// `[expr]`: an integer index or a string key computed per row.
    Dyn(Box<Expr>),
}

/// Where a field path starts.
#[derive(Debug, Clone)]
pub(crate) enum Base {
    /// The payload decoded as JSON (once per evaluation).
    Payload,
    /// Any other expression.
    Expr(Box<Expr>),
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Lit(Value),
    Column(Column),
    /// An earlier field of the row being built (`SELECT a AS x, x + 1 AS y`, or WHERE on an alias).
    Slot(usize),
    /// The FOREACH element.
    Item,
    Path(Base, Vec<Seg>),
    Array(Vec<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    In(Box<Expr>, Vec<Expr>, bool),
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    /// LIKE with a pattern known at compile time.
    Like(Box<Expr>, LikePattern, bool),
    /// LIKE with a computed pattern.
    LikeDyn(Box<Expr>, Box<Expr>, bool),
    Case(Option<Box<Expr>>, Vec<(Expr, Expr)>, Option<Box<Expr>>),
    Call(&'static FnDef, Vec<Expr>, Option<Box<regex::Regex>>),
}

/// The state of one evaluation: the input, the lazily decoded payload and the row built so far.
pub(crate) struct Ctx<'e, 'i> {
    pub(crate) input: &'e Input<'i>,
    pub(crate) env: &'e Env<'e>,
    /// The only top-level payload keys the rule reads, when known (see `json::decode_keys`).
    payload_keys: Option<&'e [String]>,
    payload: Option<Result<Value, ()>>,
    pub(crate) slots: Vec<Value>,
    pub(crate) item: Value,
}

impl<'e, 'i> Ctx<'e, 'i> {
    pub(crate) fn new(input: &'e Input<'i>, env: &'e Env<'e>, payload_keys: Option<&'e [String]>) -> Self {
        Ctx {
            input,
            env,
            payload_keys,
            payload: None,
            slots: Vec::new(),
            item: Value::Null,
        }
    }

    /// The payload as JSON, decoded at most once; `NoResult` when it is not JSON.
    fn payload_json(&mut self) -> Eval<&Value> {
        if self.payload.is_none() {
            let decoded = match self.input.payload {
                None => Ok(Value::Null),
                Some(bytes) => match self.payload_keys {
                    Some(keys) => json::decode_keys(bytes, keys).map_err(|_| ()),
                    None => json::decode(bytes).map_err(|_| ()),
                },
            };
            self.payload = Some(decoded);
        }
        match &self.payload {
            Some(Ok(v)) => Ok(v),
            _ => Err(Halt::NoResult),
        }
    }
}

/// Follows `segs` from `v`; anything missing or of the wrong shape gives `null`, as EMQX does.
/// A string met on the way is decoded as JSON (EMQX does this for nested JSON text).
pub(crate) fn walk(v: &Value, segs: &[Seg]) -> Value {
    let mut cur = v;
    for (n, seg) in segs.iter().enumerate() {
        cur = match (cur, seg) {
            (Value::Object(m), Seg::Key(k)) => match m.get(k) {
                Some(v) => v,
                None => return Value::Null,
            },
            (Value::Array(a), Seg::Index(i)) => match index_of(a.len(), *i) {
                Some(p) => &a[p],
                None => return Value::Null,
            },
            (Value::Str(s), _) => {
                return match json::decode(s.as_bytes()) {
                    Ok(d @ (Value::Object(_) | Value::Array(_))) => walk(&d, &segs[n..]),
                    _ => Value::Null,
                };
            }
            _ => return Value::Null,
        };
    }
    cur.clone()
}

/// Where `Null`, `Bool` and nothing else count: WHERE, INCASE, AND/OR/NOT operands.
pub(crate) fn truthy(v: &Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        other => Err(EvalError::new(format!("expected a boolean, got {}", other.type_name()))),
    }
}

impl Expr {
    /// Calls `f` on this expression and every sub-expression (compile-time analyses).
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        let all = |v: &[Expr], f: &mut dyn FnMut(&Expr)| v.iter().for_each(|e| e.visit(f));
        match self {
            Expr::Lit(_) | Expr::Column(_) | Expr::Slot(_) | Expr::Item => {}
            Expr::Path(base, segs) => {
                if let Base::Expr(b) = base {
                    b.visit(f);
                }
                for s in segs {
                    if let Seg::Dyn(d) = s {
                        d.visit(f);
                    }
                }
            }
            Expr::Array(v) | Expr::Call(_, v, _) => all(v, f),
            Expr::Neg(a) | Expr::Not(a) | Expr::IsNull(a, _) | Expr::Like(a, _, _) => a.visit(f),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Binary(_, a, b) | Expr::LikeDyn(a, b, _) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::In(a, v, _) => {
                a.visit(f);
                all(v, f);
            }
            Expr::Between(a, b, c, _) => {
                a.visit(f);
                b.visit(f);
                c.visit(f);
            }
            Expr::Case(o, whens, els) => {
                if let Some(o) = o {
                    o.visit(f);
                }
                for (w, t) in whens {
                    w.visit(f);
                    t.visit(f);
                }
                if let Some(e) = els {
                    e.visit(f);
                }
            }
        }
    }

    pub(crate) fn eval(&self, cx: &mut Ctx<'_, '_>) -> Eval<Value> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Column(c) => c.get(cx.input, cx.env).unwrap_or(Value::Null),
            Expr::Slot(i) => cx.slots.get(*i).cloned().unwrap_or(Value::Null),
            Expr::Item => cx.item.clone(),
            Expr::Path(base, segs) => eval_path(base, segs, cx)?,
            Expr::Array(items) => Value::Array(items.iter().map(|e| e.eval(cx)).collect::<Eval<_>>()?),
            Expr::Neg(e) => ops::neg(e.eval(cx)?)?,
            Expr::Not(e) => Value::Bool(!truthy(&e.eval(cx)?)?),
            Expr::And(a, b) => Value::Bool(truthy(&a.eval(cx)?)? && truthy(&b.eval(cx)?)?),
            Expr::Or(a, b) => Value::Bool(truthy(&a.eval(cx)?)? || truthy(&b.eval(cx)?)?),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(cx)?, b.eval(cx)?);
                ops::binary(*op, a, b)?
            }
            Expr::IsNull(e, negated) => Value::Bool(e.eval(cx)?.is_null() != *negated),
            Expr::In(e, list, negated) => {
                let v = e.eval(cx)?;
                let mut found = false;
                for item in list {
                    if crate::value::loose_eq(&v, &item.eval(cx)?) {
                        found = true;
                        break;
                    }
                }
                Value::Bool(found != *negated)
            }
            Expr::Between(e, lo, hi, negated) => {
                let v = e.eval(cx)?;
                let ge = ops::binary(BinOp::GtEq, v.clone(), lo.eval(cx)?)?;
                let le = ops::binary(BinOp::LtEq, v, hi.eval(cx)?)?;
                Value::Bool((truthy(&ge)? && truthy(&le)?) != *negated)
            }
            Expr::Like(e, pat, negated) => match e.eval(cx)? {
                Value::Str(s) => Value::Bool(pat.matches(&s) != *negated),
                Value::Null => Value::Bool(false),
                other => return Err(EvalError::new(format!("LIKE needs a string, got {}", other.type_name())).into()),
            },
            Expr::LikeDyn(e, p, negated) => match (e.eval(cx)?, p.eval(cx)?) {
                (Value::Str(s), Value::Str(p)) => Value::Bool(LikePattern::new(&p).matches(&s) != *negated),
                (Value::Null, _) | (_, Value::Null) => Value::Bool(false),
                _ => return Err(EvalError::new("LIKE needs strings").into()),
            },
            Expr::Case(operand, whens, otherwise) => {
                let subject = match operand {
                    Some(o) => Some(o.eval(cx)?),
                    None => None,
                };
                for (when, then) in whens {
                    let w = when.eval(cx)?;
                    let hit = match &subject {
                        Some(s) => crate::value::loose_eq(s, &w),
                        None => truthy(&w)?,
                    };
                    if hit {
                        return then.eval(cx);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(cx)?,
                    None => Value::Null,
                }
            }
            Expr::Call(def, args, regex) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(a.eval(cx)?);
                }
                let fcx = FnCtx {
                    env: cx.env,
                    regex: regex.as_deref(),
                };
                (def.f)(vals, &fcx).map_err(|e| EvalError::new(format!("{}: {}", def.name, e.message())))?
            }
        })
    }
}

fn eval_path(base: &Base, segs: &[Seg], cx: &mut Ctx<'_, '_>) -> Eval<Value> {
    // Computed segments are evaluated first so the walk below can borrow the context immutably.
    let resolved;
    let segs = if segs.iter().any(|s| matches!(s, Seg::Dyn(_))) {
        let mut out = Vec::with_capacity(segs.len());
        for s in segs {
            out.push(match s {
                Seg::Dyn(e) => match e.eval(cx)? {
                    Value::Int(i) => Seg::Index(i),
                    Value::Str(k) => Seg::Key(k),
                    _ => return Ok(Value::Null),
                },
                other => other.clone(),
            });
        }
        resolved = out;
        &resolved[..]
    } else {
        segs
    };
    match base {
        Base::Payload => Ok(walk(cx.payload_json()?, segs)),
        Base::Expr(e) => match &**e {
            Expr::Slot(i) => Ok(cx.slots.get(*i).map_or(Value::Null, |v| walk(v, segs))),
            Expr::Item => Ok(walk(&cx.item, segs)),
            Expr::Column(c) => match c.get_ref(cx.input) {
                Some(v) => Ok(walk(v, segs)),
                None => Ok(walk(&e.eval(cx)?, segs)),
            },
            other => Ok(walk(&other.eval(cx)?, segs)),
        },
    }
}
