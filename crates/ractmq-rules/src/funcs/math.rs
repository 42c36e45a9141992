//! Math functions (EMQX names). Results that are not finite numbers (`sqrt(-1)`, `log(0)`) are errors, since
//! JSON cannot carry them; rounding functions return integers as EMQX does.

use super::{args, def, want_int, want_num, FnCtx, FnDef};
use crate::error::{fail, EvalError};
use crate::ops::{self, BinOp};
use crate::value::{compare, Value};

type R = Result<Value, EvalError>;

macro_rules! unary {
    ($name:literal, $f:expr) => {
        def($name, 1, 1, |a, _| {
            let [x] = args(a);
            finite(($f)(want_num(&x)?))
        })
    };
}

pub(super) const FUNCS: &[FnDef] = &[
    def("abs", 1, 1, abs),
    def("ceil", 1, 1, |a, _| to_int(a, f64::ceil)),
    def("floor", 1, 1, |a, _| to_int(a, f64::floor)),
    def("round", 1, 1, |a, _| to_int(a, f64::round)),
    unary!("sqrt", f64::sqrt),
    unary!("exp", f64::exp),
    unary!("log", f64::ln),
    unary!("log10", f64::log10),
    unary!("log2", f64::log2),
    unary!("sin", f64::sin),
    unary!("cos", f64::cos),
    unary!("tan", f64::tan),
    unary!("asin", f64::asin),
    unary!("acos", f64::acos),
    unary!("atan", f64::atan),
    unary!("sinh", f64::sinh),
    unary!("cosh", f64::cosh),
    unary!("tanh", f64::tanh),
    unary!("asinh", f64::asinh),
    unary!("acosh", f64::acosh),
    unary!("atanh", f64::atanh),
    def("power", 2, 2, |a, _| finite(want_num(&a[0])?.powf(want_num(&a[1])?))),
    def("fmod", 2, 2, fmod),
    def("div", 2, 2, |a, _| {
        let [x, y] = args(a);
        ops::binary(BinOp::IntDiv, x, y)
    }),
    def("mod", 2, 2, |a, _| {
        let [x, y] = args(a);
        ops::binary(BinOp::Mod, x, y)
    }),
    def("min", 1, usize::MAX, |a, _| extreme(a, std::cmp::Ordering::Less)),
    def("max", 1, usize::MAX, |a, _| extreme(a, std::cmp::Ordering::Greater)),
];

fn finite(f: f64) -> R {
    Value::float(f).ok_or_else(|| EvalError::new("result is not a finite number"))
}

fn abs(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    match x {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| EvalError::new("integer overflow")),
        other => finite(want_num(&other)?.abs()),
    }
}

fn to_int(a: Vec<Value>, f: fn(f64) -> f64) -> R {
    let [x] = args(a);
    match x {
        Value::Int(i) => Ok(Value::Int(i)),
        other => {
            let r = f(want_num(&other)?);
            if r.abs() >= 9.2e18 {
                return fail("result does not fit an integer");
            }
            Ok(Value::Int(r as i64))
        }
    }
}

fn fmod(a: Vec<Value>, _: &FnCtx) -> R {
    let (x, y) = (want_num(&a[0])?, want_num(&a[1])?);
    if y == 0.0 {
        return fail("division by zero");
    }
    if let (Value::Int(_), Value::Int(_)) = (&a[0], &a[1]) {
        return Ok(Value::Int(want_int(&a[0])?.checked_rem(want_int(&a[1])?).unwrap_or(0)));
    }
    finite(x % y)
}

/// `min`/`max` of numbers or strings (any argument count, or one array).
fn extreme(a: Vec<Value>, keep: std::cmp::Ordering) -> R {
    let items = match <[Value; 1]>::try_from(a) {
        Ok([Value::Array(items)]) => items,
        Ok([one]) => vec![one],
        Err(many) => many,
    };
    let mut best: Option<Value> = None;
    for v in items {
        best = Some(match best {
            None => v,
            Some(b) => match compare(&v, &b) {
                Some(o) if o == keep => v,
                Some(_) => b,
                None => return fail(format!("cannot compare {} and {}", v.type_name(), b.type_name())),
            },
        });
    }
    best.ok_or_else(|| EvalError::new("no values"))
}
