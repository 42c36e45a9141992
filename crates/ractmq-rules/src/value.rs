//! The values rule SQL computes with, modelled on EMQX's: JSON-like, with integers and floats kept apart,
//! and the loose comparisons EMQX users expect (`1 = 1.0`, `'5' = 5`).

use std::cmp::Ordering;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// An ordered object: fields keep the order they were inserted or decoded in.
pub type Map = indexmap::IndexMap<String, Value>;

/// One value of rule SQL.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// SQL `null`; also what a missing field or column evaluates to.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float. Never NaN or infinite: functions that would produce one fail instead.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A JSON array. SQL indexes it from 1, as EMQX does.
    Array(Vec<Value>),
    /// A JSON object with ordered fields.
    Object(Map),
}

impl Value {
    /// The type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Is this `null`?
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a float when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Serialises to compact JSON text.
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends compact JSON text to `out` (no intermediate allocation).
    pub fn write_json(&self, out: &mut String) {
        // Cannot fail: no IO, map keys are strings, and serde_json writes whole UTF-8 fragments.
        let _ = serde_json::to_writer(StrWriter(out), self);
    }

    /// Appends the text form used by templates and `str()`: strings as they are, everything else as JSON.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => {
                use fmt::Write;
                let _ = write!(out, "{i}");
            }
            other => other.write_json(out),
        }
    }

    /// The text form (see [`Value::write_text`]).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    /// Roughly how many bytes the value holds (strings' lengths plus a word per scalar), for output budgets.
    pub(crate) fn approx_size(&self) -> usize {
        match self {
            Value::Str(s) => 8 + s.len(),
            Value::Array(a) => a.iter().fold(8, |n, v| n.saturating_add(v.approx_size())),
            Value::Object(m) => m
                .iter()
                .fold(8, |n, (k, v)| n.saturating_add(k.len() + v.approx_size())),
            _ => 8,
        }
    }

    /// A float result, or `None` when it is NaN or infinite (which JSON cannot carry).
    pub(crate) fn float(f: f64) -> Option<Value> {
        f.is_finite().then_some(Value::Float(f))
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
        }
    }
}

impl From<Value> for serde_json::Value {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => serde_json::Value::from(i),
            Value::Float(f) => {
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Value::Str(s) => serde_json::Value::String(s),
            Value::Array(a) => serde_json::Value::Array(a.into_iter().map(Into::into).collect()),
            Value::Object(o) => serde_json::Value::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // Non-finite floats are never built, but JSON has no spelling for them: null is the safe fallback.
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(_) => s.serialize_unit(),
            Value::Str(v) => s.serialize_str(v),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Lets serde_json write straight into a `String`, checking each fragment (not the whole buffer) is UTF-8.
struct StrWriter<'a>(&'a mut String);

impl std::io::Write for StrWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(s);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A number read from a string operand, for EMQX's loose comparisons (`'5' = 5`).
fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// SQL `=`: numbers compare by value across int/float, a numeric string equals the number it spells,
/// everything else compares structurally. Never fails.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_) | Value::Str(_))
        | (Value::Str(_), Value::Int(_) | Value::Float(_)) => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => a == b,
    }
}

/// SQL `<`, `>`...: numbers by value (a numeric string counts as its number), strings by bytes,
/// booleans false < true. `None` when the two cannot be ordered.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), _) | (_, Value::Int(_) | Value::Float(_)) => {
            numeric(a)?.partial_cmp(&numeric(b)?)
        }
        _ => None,
    }
}

/// Resolves a rule SQL index, 1-based as in EMQX (or negative, from the end), into a slice position.
pub(crate) fn index_of(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let pos = if i > 0 {
        i - 1
    } else if i < 0 {
        len + i
    } else {
        return None;
    };
    (0..len).contains(&pos).then_some(pos as usize)
}
