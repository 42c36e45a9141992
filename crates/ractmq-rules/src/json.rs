//! Bounded JSON decoding straight into [`Value`]: client payloads are untrusted, so nesting depth and input
//! size are capped before anything is allocated for them (one pass, no intermediate `serde_json::Value`).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::value::{Map, Value};

/// Deepest nesting of arrays/objects a decoded document may have.
pub const MAX_JSON_DEPTH: u32 = 32;
/// Largest JSON text (in bytes) that is decoded; larger payloads count as "not JSON".
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Why a text is not decodable JSON for the rule engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub(crate) String);

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes JSON text into a [`Value`], refusing more than [`MAX_JSON_BYTES`] bytes or
/// [`MAX_JSON_DEPTH`] levels of nesting.
pub fn decode(bytes: &[u8]) -> Result<Value, JsonError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(JsonError(format!("JSON larger than {MAX_JSON_BYTES} bytes")));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| JsonError(e.to_string()))?;
    de.end().map_err(|e| JsonError(e.to_string()))?;
    Ok(value)
}

/// Like [`decode`], but when the document is an object only the top-level `keys` are kept: the others are
/// checked for syntax and skipped without building values. Rules usually read two or three payload fields,
/// so this saves most of the allocations of decoding. The depth cap applies to the kept parts.
pub(crate) fn decode_keys(bytes: &[u8], keys: &[String]) -> Result<Value, JsonError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(JsonError(format!("JSON larger than {MAX_JSON_BYTES} bytes")));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = de::Deserializer::deserialize_any(&mut de, Top { keys }).map_err(|e| JsonError(e.to_string()))?;
    de.end().map_err(|e| JsonError(e.to_string()))?;
    Ok(value)
}

/// The top level of [`decode_keys`]: an object is filtered, anything else decoded as usual.
struct Top<'k> {
    keys: &'k [String],
}

/// Reads an object key, allocating only when the key is one we keep.
struct KeyFilter<'k> {
    keys: &'k [String],
}

impl<'de> DeserializeSeed<'de> for KeyFilter<'_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyFilter<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, k: &str) -> Result<Option<String>, E> {
        Ok(self.keys.iter().any(|want| want == k).then(|| k.to_owned()))
    }
}

macro_rules! forward {
    ($($method:ident($t:ty)),*) => {
        $(fn $method<E: de::Error>(self, v: $t) -> Result<Value, E> {
            Seed { depth: 0 }.$method(v)
        })*
    };
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    forward!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_string(String)
    );

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Seed { depth: 0 }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = Seed { depth: 1 };
        let mut out = Map::with_capacity(self.keys.len());
        while let Some(k) = map.next_key_seed(KeyFilter { keys: self.keys })? {
            match k {
                Some(k) => {
                    let v = map.next_value_seed(inner)?;
                    out.insert(k, v);
                }
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Carries the current depth down the recursion so the visitor can stop early.
#[derive(Clone, Copy)]
struct Seed {
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Seed {
    fn nested<E: de::Error>(self) -> Result<Seed, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(E::custom(format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")));
        }
        Ok(Seed { depth: self.depth + 1 })
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        // Beyond i64 the number is kept approximately, as JavaScript would.
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(inner)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_in_order_and_keeps_ints_apart() {
        let v = decode(br#"{"b":1,"a":1.5,"c":[true,null,"x"],"big":18446744073709551615}"#).unwrap();
        let Value::Object(m) = v else { panic!() };
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a", "c", "big"]);
        assert_eq!(m["b"], Value::Int(1));
        assert_eq!(m["a"], Value::Float(1.5));
        assert!(matches!(m["big"], Value::Float(_)));
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(decode(deep.as_bytes()).is_err());
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert!(decode(ok.as_bytes()).is_ok());
        let too_deep = "[".repeat(34) + &"]".repeat(34);
        assert!(decode(too_deep.as_bytes()).is_err());
        let wide = format!("{{\"skip\":{},\"a\":1}}", "[".repeat(100) + &"]".repeat(100));
        assert_eq!(
            decode_keys(wide.as_bytes(), &["a".into()]).unwrap(),
            decode(br#"{"a":1}"#).unwrap()
        );
        assert!(
            decode_keys(b"{\"skip\":[}", &["a".into()]).is_err(),
            "skipped parts are still checked"
        );
        assert_eq!(
            decode_keys(b"[1]", &["a".into()]).unwrap(),
            Value::Array(vec![Value::Int(1)])
        );
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        assert!(decode(&big).is_err());
        assert!(decode(b"{\"a\":1} x").is_err());
        assert!(decode(b"\xff\xfe").is_err());
    }
}
