//! Encodings: JSON, base64 and hex digests (md5, sha, sha256), under EMQX's names.

use base64::Engine;
use md5::Digest;

use super::{args, check_len, want_str, FnCtx, FnDef};
use crate::error::{fail, EvalError};
use crate::value::Value;

type R = Result<Value, EvalError>;

pub(super) const FUNCS: &[FnDef] = &[
    super::def("json_encode", 1, 1, json_encode),
    super::def("json_decode", 1, 1, json_decode),
    super::def("base64_encode", 1, 1, base64_encode),
    super::def("base64_decode", 1, 1, base64_decode),
    super::def("md5", 1, 1, |a, _| digest::<md5::Md5>(a)),
    super::def("sha", 1, 1, |a, _| digest::<sha1::Sha1>(a)),
    super::def("sha256", 1, 1, |a, _| digest::<sha2::Sha256>(a)),
];

fn json_encode(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    Ok(Value::Str(x.to_json_string()))
}

/// Decodes with the same bounds as payloads (depth and size), so a string cannot smuggle in a bomb.
fn json_decode(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    crate::json::decode(want_str(&x)?.as_bytes()).map_err(|e| EvalError::new(format!("invalid JSON: {e}")))
}

fn base64_encode(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    let text = x.to_text();
    check_len(text.len() / 3 * 4)?;
    Ok(Value::Str(base64::engine::general_purpose::STANDARD.encode(text)))
}

/// Decodes to text; data that is not UTF-8 is an error (the engine's strings are text).
fn base64_decode(a: Vec<Value>, _: &FnCtx) -> R {
    let [x] = args(a);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(want_str(&x)?.trim())
        .map_err(|e| EvalError::new(format!("invalid base64: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Value::Str(s)),
        Err(_) => fail("decoded data is not UTF-8 text"),
    }
}

fn digest<D: Digest>(a: Vec<Value>) -> R {
    let [x] = args(a);
    let hash = D::digest(x.to_text().as_bytes());
    Ok(Value::Str(hex(&hash)))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}
