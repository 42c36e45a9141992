//! The built-in function table. Names follow EMQX's built-in SQL functions; each entry carries its arity so
//! an unknown name or a wrong argument count is a compile error, and a plain function pointer so a call costs
//! no lookup at evaluation time.

mod codec;
mod collections;
mod math;
mod strings;

pub(crate) use strings::compile_regex;
mod time;
mod types;

use crate::error::EvalError;
use crate::input::Env;
use crate::value::Value;

/// Upper bound on any string or array a function builds from its arguments (`pad`, `concat`...).
pub(crate) const MAX_BUILT_LEN: usize = 1024 * 1024;

/// What a function sees besides its arguments.
pub(crate) struct FnCtx<'a> {
    pub(crate) env: &'a Env<'a>,
    /// The pattern argument compiled ahead of time, when it was a literal.
    pub(crate) regex: Option<&'a regex::Regex>,
}

/// A built-in function: arguments by value so it can move them into its result.
pub(crate) type Func = fn(Vec<Value>, &FnCtx<'_>) -> Result<Value, EvalError>;

/// One built-in function.
#[derive(Debug)]
pub(crate) struct FnDef {
    pub(crate) name: &'static str,
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) f: Func,
    /// Which argument is a regular expression worth compiling once when it is a literal.
    pub(crate) regex_arg: Option<usize>,
}

/// Shorthand for table entries.
pub(crate) const fn def(name: &'static str, min: usize, max: usize, f: Func) -> FnDef {
    FnDef {
        name,
        min,
        max,
        f,
        regex_arg: None,
    }
}

const TABLES: [&[FnDef]; 6] = [
    strings::FUNCS,
    math::FUNCS,
    types::FUNCS,
    collections::FUNCS,
    codec::FUNCS,
    time::FUNCS,
];

/// Finds a function by (case-insensitive) name.
pub(crate) fn lookup(name: &str) -> Option<&'static FnDef> {
    TABLES
        .iter()
        .flat_map(|t| t.iter())
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// Every built-in function name, for documentation and error hints.
pub fn names() -> Vec<&'static str> {
    TABLES.iter().flat_map(|t| t.iter()).map(|d| d.name).collect()
}

// Argument helpers shared by the modules: each names the expected type in its error.

pub(crate) fn want_str(v: &Value) -> Result<&str, EvalError> {
    v.as_str()
        .ok_or_else(|| EvalError::new(format!("expected a string, got {}", v.type_name())))
}

pub(crate) fn want_int(v: &Value) -> Result<i64, EvalError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(*f as i64),
        other => Err(EvalError::new(format!(
            "expected an integer, got {}",
            other.type_name()
        ))),
    }
}

pub(crate) fn want_num(v: &Value) -> Result<f64, EvalError> {
    v.as_f64()
        .ok_or_else(|| EvalError::new(format!("expected a number, got {}", v.type_name())))
}

pub(crate) fn want_array(v: Value) -> Result<Vec<Value>, EvalError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(EvalError::new(format!("expected an array, got {}", other.type_name()))),
    }
}

pub(crate) fn check_len(len: usize) -> Result<(), EvalError> {
    if len > MAX_BUILT_LEN {
        return Err(EvalError::new(format!("result longer than {MAX_BUILT_LEN}")));
    }
    Ok(())
}

/// Takes the arguments out of the vector in order (they are checked for count at compile time).
pub(crate) fn args<const N: usize>(v: Vec<Value>) -> [Value; N] {
    let mut it = v.into_iter();
    std::array::from_fn(|_| it.next().unwrap_or(Value::Null))
}

/// The start of a string for an error message, so errors never quote a whole payload.
pub(crate) fn short(s: &str) -> String {
    let mut out: String = s.chars().take(32).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}
