//! Type tests and conversions (EMQX names): `str`, `int`, `float`, `bool` and the `is_*` predicates.

use super::{args, def, short, want_int, want_num, FnCtx, FnDef};
use crate::error::{fail, EvalError};
use crate::value::Value;

type R = Result<Value, EvalError>;

macro_rules! test {
    ($name:literal, $pat:pat) => {
        def($name, 1, 1, |a, _| Ok(Value::Bool(matches!(a.first(), Some($pat)))))
    };
}

pub(super) const FUNCS: &[FnDef] = &[
    def("str", 1, 1, |a, _| {
        let [x] = args(a);
        Ok(Value::Str(x.to_text()))
    }),
    def("str_utf8", 1, 1, |a, _| {
        let [x] = args(a);
        Ok(Value::Str(x.to_text()))
    }),
    def("int", 1, 1, int),
    def("float", 1, 2, float),
    def("bool", 1, 1, boolean),
    def("coalesce", 2, usize::MAX, |a, _| {
        Ok(a.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null))
    }),
    test!("is_null", Value::Null),
    def("is_not_null", 1, 1, |a, _| {
        Ok(Value::Bool(!matches!(a.first(), Some(Value::Null) | None)))
    }),
    test!("is_str", Value::Str(_)),
    test!("is_num", Value::Int(_) | Value::Float(_)),
    test!("is_int", Value::Int(_)),
    test!("is_float", Value::Float(_)),
    test!("is_bool", Value::Bool(_)),
    test!("is_map", Value::Object(_)),
    test!("is_array", Value::Array(_)),
];

/// Floats are truncated toward zero; strings may spell an integer or a float.
fn int(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    match &x {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Bool(b) => Ok(Value::Int((*b).into())),
        Value::Float(f) => trunc(*f),
        Value::Str(s) => match s.trim().parse::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => match s.trim().parse::<f64>() {
                Ok(f) => trunc(f),
                Err(_) => fail(format!("'{}' is not a number", short(s))),
            },
        },
        other => fail(format!("cannot convert {} to int", other.type_name())),
    }
}

fn trunc(f: f64) -> R {
    if !f.is_finite() || f.abs() >= 9.2e18 {
        return fail("number does not fit an integer");
    }
    Ok(Value::Int(f.trunc() as i64))
}

/// `float(x)`, or `float(x, decimals)` rounded to that many decimals.
fn float(a: Vec<Value>, _: &FnCtx) -> R {
    let f = match &a[0] {
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| EvalError::new(format!("'{}' is not a number", short(s))))?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => want_num(other)?,
    };
    let f = match a.get(1) {
        Some(d) => {
            let d = want_int(d)?.clamp(0, 15) as i32;
            let scale = 10f64.powi(d);
            (f * scale).round() / scale
        }
        None => f,
    };
    Value::float(f).ok_or_else(|| EvalError::new("not a finite number"))
}

fn boolean(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    match x {
        Value::Bool(b) => Ok(Value::Bool(b)),
        Value::Int(0) => Ok(Value::Bool(false)),
        Value::Int(1) => Ok(Value::Bool(true)),
        Value::Str(s) if s == "true" => Ok(Value::Bool(true)),
        Value::Str(s) if s == "false" => Ok(Value::Bool(false)),
        other => fail(format!("cannot convert {} to bool", short(&other.to_text()))),
    }
}
