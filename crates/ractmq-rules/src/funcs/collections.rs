//! Array and map functions (EMQX names). Array positions are 1-based as everywhere in rule SQL.

use super::{args, def, want_array, want_int, want_str, FnCtx, FnDef};
use crate::error::{fail, EvalError};
use crate::value::{index_of, loose_eq, Map, Value};

type R = Result<Value, EvalError>;

pub(super) const FUNCS: &[FnDef] = &[
    def("nth", 2, 2, nth),
    def("length", 1, 1, length),
    def("sublist", 2, 3, sublist),
    def("first", 1, 1, |a, _| end(a, true)),
    def("last", 1, 1, |a, _| end(a, false)),
    def("contains", 2, 2, contains),
    def("map_get", 2, 3, map_get),
    def("mget", 2, 3, map_get),
    def("map_put", 3, 3, map_put),
    def("mput", 3, 3, map_put),
    def("map_keys", 1, 1, |a, _| {
        let [m] = args(a);
        Ok(Value::Array(want_map(m)?.into_keys().map(Value::Str).collect()))
    }),
    def("map_values", 1, 1, |a, _| {
        let [m] = args(a);
        Ok(Value::Array(want_map(m)?.into_values().collect()))
    }),
];

fn want_map(v: Value) -> Result<Map, EvalError> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => fail(format!("expected an object, got {}", other.type_name())),
    }
}

/// `nth(n, array)`: the n-th element, 1-based (negative from the end); out of range is an error, as in EMQX.
fn nth(a: Vec<Value>, _: &FnCtx) -> R {
    let [n, arr] = args(a);
    let n = want_int(&n)?;
    let mut arr = want_array(arr)?;
    match index_of(arr.len(), n) {
        Some(i) => Ok(arr.swap_remove(i)),
        None => fail(format!("index {n} out of range 1..{}", arr.len())),
    }
}

fn length(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    let n = match &x {
        Value::Array(v) => v.len(),
        Value::Object(m) => m.len(),
        Value::Str(s) => s.chars().count(),
        other => return fail(format!("length of {}", other.type_name())),
    };
    Ok(Value::Int(n as i64))
}

/// `sublist(len, array)` or `sublist(start, len, array)` with a 1-based start.
fn sublist(a: Vec<Value>, _: &FnCtx) -> R {
    let (start, len, arr) = match <[Value; 3]>::try_from(a) {
        Ok([s, l, arr]) => (want_int(&s)?, want_int(&l)?, arr),
        Err(two) => {
            let [l, arr] = args(two);
            (1, want_int(&l)?, arr)
        }
    };
    if start < 1 || len < 0 {
        return fail("sublist needs start >= 1 and len >= 0");
    }
    let arr = want_array(arr)?;
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(len).unwrap_or(usize::MAX);
    Ok(Value::Array(arr.into_iter().skip(skip).take(take).collect()))
}

fn end(a: Vec<Value>, first: bool) -> R {
    let [arr] = args(a);
    let mut arr = want_array(arr)?;
    let v = if first {
        (!arr.is_empty()).then(|| arr.swap_remove(0))
    } else {
        arr.pop()
    };
    v.ok_or_else(|| EvalError::new("empty array"))
}

/// `contains(item, array)`; also `contains(substring, string)`.
fn contains(a: Vec<Value>, _: &FnCtx) -> R {
    let [item, coll] = args(a);
    Ok(Value::Bool(match (&item, &coll) {
        (_, Value::Array(v)) => v.iter().any(|x| loose_eq(x, &item)),
        (Value::Str(sub), Value::Str(s)) => s.contains(sub.as_str()),
        (_, Value::Null) => false,
        _ => return fail(format!("contains in {}", coll.type_name())),
    }))
}

/// `map_get(key, map[, default])`; a missing key gives the default or null.
fn map_get(a: Vec<Value>, _: &FnCtx) -> R {
    let mut it = a.into_iter();
    let key = it.next().unwrap_or_default();
    let map = it.next().unwrap_or_default();
    let default = it.next().unwrap_or_default();
    let key = want_str(&key)?;
    let mut map = want_map(map)?;
    Ok(map.swap_remove(key).unwrap_or(default))
}

fn map_put(a: Vec<Value>, _: &FnCtx) -> R {
    let [key, value, map] = args(a);
    let key = want_str(&key)?.to_owned();
    let mut map = want_map(map)?;
    map.insert(key, value);
    Ok(Value::Object(map))
}
