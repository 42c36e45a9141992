//! Operators: arithmetic with EMQX's typing (`/` always gives a float, `%` and `div` want integers, `+` on a
//! string concatenates) and comparisons. Overflow, division by zero and type mismatches are errors, not panics.

use std::cmp::Ordering;

use crate::error::{fail, EvalError};
use crate::value::{compare, loose_eq, Value};

/// A binary operator other than AND/OR (those short-circuit and live in the evaluator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    IntDiv,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

type R = Result<Value, EvalError>;

fn float(f: f64) -> R {
    Value::float(f).ok_or_else(|| EvalError::new("result is not a finite number"))
}

fn int(r: Option<i64>, what: &str) -> R {
    r.map(Value::Int)
        .ok_or_else(|| EvalError::new(format!("integer overflow in {what}")))
}

fn mismatch(op: &str, a: &Value, b: &Value) -> EvalError {
    EvalError::new(format!("cannot apply {op} to {} and {}", a.type_name(), b.type_name()))
}

pub(crate) fn neg(v: Value) -> R {
    match v {
        Value::Int(i) => int(i.checked_neg(), "negation"),
        Value::Float(f) => Ok(Value::Float(-f)),
        other => fail(format!("cannot negate {}", other.type_name())),
    }
}

pub(crate) fn binary(op: BinOp, a: Value, b: Value) -> R {
    match op {
        BinOp::Eq => Ok(Value::Bool(loose_eq(&a, &b))),
        BinOp::NotEq => Ok(Value::Bool(!loose_eq(&a, &b))),
        BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            // A missing field compared with anything is simply false, as in SQL.
            if a.is_null() || b.is_null() {
                return Ok(Value::Bool(false));
            }
            let ord = compare(&a, &b).ok_or_else(|| mismatch("comparison", &a, &b))?;
            Ok(Value::Bool(match op {
                BinOp::Lt => ord == Ordering::Less,
                BinOp::LtEq => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        BinOp::Concat => concat(a, b),
        BinOp::Add => match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => int(x.checked_add(*y), "+"),
            (Value::Str(_), _) | (_, Value::Str(_)) => concat(a, b),
            _ => float(num(&a, &b, "+")?.0 + num(&a, &b, "+")?.1),
        },
        BinOp::Sub => match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => int(x.checked_sub(*y), "-"),
            _ => {
                let (x, y) = num(&a, &b, "-")?;
                float(x - y)
            }
        },
        BinOp::Mul => match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => int(x.checked_mul(*y), "*"),
            _ => {
                let (x, y) = num(&a, &b, "*")?;
                float(x * y)
            }
        },
        BinOp::Div => {
            let (x, y) = num(&a, &b, "/")?;
            if y == 0.0 {
                return fail("division by zero");
            }
            float(x / y)
        }
        BinOp::Mod | BinOp::IntDiv => match (&a, &b) {
            (Value::Int(_), Value::Int(0)) => fail("division by zero"),
            (Value::Int(x), Value::Int(y)) if op == BinOp::Mod => int(x.checked_rem(*y), "mod"),
            (Value::Int(x), Value::Int(y)) => int(x.checked_div(*y), "div"),
            _ => Err(mismatch(if op == BinOp::Mod { "mod" } else { "div" }, &a, &b)),
        },
    }
}

fn num(a: &Value, b: &Value, op: &str) -> Result<(f64, f64), EvalError> {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(mismatch(op, a, b)),
    }
}

/// String concatenation; scalars are turned into text, containers and null refused.
pub(crate) fn concat(a: Value, b: Value) -> R {
    for v in [&a, &b] {
        if matches!(v, Value::Null | Value::Array(_) | Value::Object(_)) {
            return Err(mismatch("string concatenation", &a, &b));
        }
    }
    let mut s = match a {
        Value::Str(s) => s,
        other => other.to_text(),
    };
    b.write_text(&mut s);
    Ok(Value::Str(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(binary(BinOp::Add, Value::Int(1), Value::Int(2)).unwrap(), Value::Int(3));
        assert_eq!(
            binary(BinOp::Add, Value::Int(1), Value::Float(0.5)).unwrap(),
            Value::Float(1.5)
        );
        assert_eq!(
            binary(BinOp::Div, Value::Int(3), Value::Int(2)).unwrap(),
            Value::Float(1.5)
        );
        assert!(binary(BinOp::Div, Value::Int(3), Value::Int(0)).is_err());
        assert!(binary(BinOp::Mod, Value::Int(3), Value::Int(0)).is_err());
        assert!(binary(BinOp::Mod, Value::Int(i64::MIN), Value::Int(-1)).is_err());
        assert!(binary(BinOp::Add, Value::Int(i64::MAX), Value::Int(1)).is_err());
        assert!(binary(BinOp::Mul, Value::Float(1e308), Value::Float(10.0)).is_err());
        assert_eq!(
            binary(BinOp::Add, "a".into(), Value::Int(1)).unwrap(),
            Value::from("a1")
        );
        assert!(binary(BinOp::Add, Value::Null, Value::Int(1)).is_err());
        assert_eq!(
            binary(BinOp::Gt, Value::Null, Value::Int(1)).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            binary(BinOp::Eq, Value::Int(1), Value::Float(1.0)).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(binary(BinOp::Eq, "5".into(), Value::Int(5)).unwrap(), Value::Bool(true));
        assert!(binary(BinOp::Lt, Value::Bool(true), Value::Array(vec![])).is_err());
    }
}
