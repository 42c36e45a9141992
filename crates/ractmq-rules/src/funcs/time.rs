//! Time functions (EMQX names). "Now" comes from [`crate::Env`], never from a clock, so rules stay pure and
//! testable. RFC 3339 text is produced in UTC (`Z`); units are `'second'` (the default), `'millisecond'`,
//! `'microsecond'` and `'nanosecond'`.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{want_int, want_str, FnCtx, FnDef};
use crate::error::{fail, EvalError};
use crate::value::Value;

type R = Result<Value, EvalError>;

pub(super) const FUNCS: &[FnDef] = &[
    super::def("now_timestamp", 0, 1, now_timestamp),
    super::def("now_rfc3339", 0, 1, now_rfc3339),
    super::def("unix_ts_to_rfc3339", 1, 2, unix_ts_to_rfc3339),
    super::def("rfc3339_to_unix_ts", 1, 2, rfc3339_to_unix_ts),
];

/// Nanoseconds per unit.
fn unit(a: Option<&Value>) -> Result<i128, EvalError> {
    Ok(match a.map(want_str).transpose()? {
        None | Some("second") => 1_000_000_000,
        Some("millisecond") => 1_000_000,
        Some("microsecond") => 1_000,
        Some("nanosecond") => 1,
        Some(other) => return fail(format!("unknown time unit '{}'", super::short(other))),
    })
}

fn now_ns(cx: &FnCtx) -> i128 {
    i128::from(cx.env.now_ms) * 1_000_000
}

fn now_timestamp(a: Vec<Value>, cx: &FnCtx) -> R {
    let u = unit(a.first())?;
    i64::try_from(now_ns(cx) / u)
        .map(Value::Int)
        .map_err(|_| EvalError::new("timestamp out of range"))
}

fn now_rfc3339(a: Vec<Value>, cx: &FnCtx) -> R {
    let u = unit(a.first())?;
    format(now_ns(cx) / u * u, u)
}

fn unix_ts_to_rfc3339(a: Vec<Value>, _: &FnCtx) -> R {
    let u = unit(a.get(1))?;
    format(i128::from(want_int(&a[0])?) * u, u)
}

fn rfc3339_to_unix_ts(a: Vec<Value>, _: &FnCtx) -> R {
    let u = unit(a.get(1))?;
    let t =
        OffsetDateTime::parse(want_str(&a[0])?, &Rfc3339).map_err(|e| EvalError::new(format!("not RFC 3339: {e}")))?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(u))
        .map(Value::Int)
        .map_err(|_| EvalError::new("timestamp out of range"))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` with as many fraction digits as the unit has.
fn format(ns: i128, unit_ns: i128) -> R {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ns).map_err(|_| EvalError::new("timestamp out of range"))?;
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    match unit_ns {
        1_000_000 => s.push_str(&format!(".{:03}", t.millisecond())),
        1_000 => s.push_str(&format!(".{:06}", t.microsecond())),
        1 => s.push_str(&format!(".{:09}", t.nanosecond())),
        _ => {}
    }
    s.push('Z');
    Ok(Value::Str(s))
}
