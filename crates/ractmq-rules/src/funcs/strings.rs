//! String functions (EMQX names). Positions in `substr` are 0-based as in EMQX; lengths count characters.

use regex::Regex;

use super::{args, check_len, def, want_int, want_str, FnCtx, FnDef};
use crate::error::{fail, EvalError};
use crate::ops;
use crate::value::Value;

type R = Result<Value, EvalError>;

pub(super) const FUNCS: &[FnDef] = &[
    def("lower", 1, 1, |a, _| map_str(a, |s| s.to_lowercase())),
    def("upper", 1, 1, |a, _| map_str(a, |s| s.to_uppercase())),
    def("trim", 1, 1, |a, _| map_str(a, |s| s.trim().to_owned())),
    def("ltrim", 1, 1, |a, _| map_str(a, |s| s.trim_start().to_owned())),
    def("rtrim", 1, 1, |a, _| map_str(a, |s| s.trim_end().to_owned())),
    def("reverse", 1, 1, |a, _| map_str(a, |s| s.chars().rev().collect())),
    def("strlen", 1, 1, strlen),
    def("concat", 1, usize::MAX, concat),
    def("substr", 2, 3, substr),
    def("split", 2, 3, split),
    def("tokens", 2, 3, tokens),
    def("replace", 3, 4, replace),
    def("find", 2, 3, find),
    def("pad", 2, 4, pad),
    def("ascii", 1, 1, ascii),
    def("topic_level", 2, 2, topic_level),
    FnDef {
        name: "regex_match",
        min: 2,
        max: 2,
        f: regex_match,
        regex_arg: Some(1),
    },
    FnDef {
        name: "regex_replace",
        min: 3,
        max: 3,
        f: regex_replace,
        regex_arg: Some(1),
    },
    FnDef {
        name: "regex_extract",
        min: 2,
        max: 2,
        f: regex_extract,
        regex_arg: Some(1),
    },
];

fn map_str(a: Vec<Value>, f: impl Fn(&str) -> String) -> R {
    let [s] = args(a);
    Ok(Value::Str(f(want_str(&s)?)))
}

fn strlen(a: Vec<Value>, _: &FnCtx) -> R {
    let [s] = args(a);
    Ok(Value::Int(want_str(&s)?.chars().count() as i64))
}

fn concat(a: Vec<Value>, _: &FnCtx) -> R {
    let mut it = a.into_iter();
    let mut acc = it.next().unwrap_or(Value::Null);
    if it.len() == 0 {
        // One argument: EMQX's concat of a list of strings.
        if let Value::Array(items) = acc {
            acc = Value::Str(String::new());
            for v in items {
                acc = ops::concat(acc, v)?;
            }
            return Ok(acc);
        }
        return ops::concat(Value::Str(String::new()), acc);
    }
    for v in it {
        acc = ops::concat(acc, v)?;
        check_len(acc.as_str().map_or(0, str::len))?;
    }
    Ok(acc)
}

fn substr(a: Vec<Value>, _: &FnCtx) -> R {
    let s = want_str(&a[0])?;
    let start = usize::try_from(want_int(&a[1])?.max(0)).unwrap_or(usize::MAX);
    let len = match a.get(2) {
        Some(l) => usize::try_from(want_int(l)?.max(0)).unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    Ok(Value::Str(s.chars().skip(start).take(len).collect()))
}

fn split(a: Vec<Value>, _: &FnCtx) -> R {
    let s = want_str(&a[0])?;
    let sep = want_str(&a[1])?;
    if sep.is_empty() {
        return fail("empty separator");
    }
    let parts: Vec<&str> = match a.get(2).map(want_str).transpose()? {
        None => s.split(sep).filter(|p| !p.is_empty()).collect(),
        Some("notrim") => s.split(sep).collect(),
        Some("leading") => s.splitn(2, sep).collect(),
        Some("trailing") => {
            let mut v: Vec<&str> = s.rsplitn(2, sep).collect();
            v.reverse();
            v
        }
        Some(other) => return fail(format!("unknown option '{}'", super::short(other))),
    };
    Ok(Value::Array(parts.into_iter().map(Value::from).collect()))
}

fn tokens(a: Vec<Value>, _: &FnCtx) -> R {
    let s = want_str(&a[0])?;
    let seps: Vec<char> = want_str(&a[1])?.chars().collect();
    let nocrlf = match a.get(2).map(want_str).transpose()? {
        None => false,
        Some("nocrlf") => true,
        Some(other) => return fail(format!("unknown option '{}'", super::short(other))),
    };
    let parts = s
        .split(|c: char| seps.contains(&c) || (nocrlf && (c == '\r' || c == '\n')))
        .filter(|p| !p.is_empty())
        .map(Value::from)
        .collect();
    Ok(Value::Array(parts))
}

fn replace(a: Vec<Value>, _: &FnCtx) -> R {
    let s = want_str(&a[0])?;
    let from = want_str(&a[1])?;
    let to = want_str(&a[2])?;
    if from.is_empty() {
        return Ok(Value::from(s));
    }
    let out = match a.get(3).map(want_str).transpose()? {
        None | Some("all") => {
            // Bound the growth before building: each occurrence may grow the string.
            let grow = to
                .len()
                .saturating_sub(from.len())
                .saturating_mul(s.matches(from).count());
            check_len(s.len().saturating_add(grow))?;
            s.replace(from, to)
        }
        Some("leading") => s.replacen(from, to, 1),
        Some("trailing") => match s.rfind(from) {
            Some(i) => format!("{}{}{}", &s[..i], to, &s[i + from.len()..]),
            None => s.to_owned(),
        },
        Some(other) => return fail(format!("unknown option '{}'", super::short(other))),
    };
    Ok(Value::Str(out))
}

fn find(a: Vec<Value>, _: &FnCtx) -> R {
    let s = want_str(&a[0])?;
    let sub = want_str(&a[1])?;
    let at = match a.get(2).map(want_str).transpose()? {
        None | Some("leading") => s.find(sub),
        Some("trailing") => s.rfind(sub),
        Some(other) => return fail(format!("unknown option '{}'", super::short(other))),
    };
    Ok(Value::from(at.map_or("", |i| &s[i..])))
}

fn pad(a: Vec<Value>, _: &FnCtx) -> R {
    let s = want_str(&a[0])?;
    let target = usize::try_from(want_int(&a[1])?.max(0)).unwrap_or(usize::MAX);
    check_len(target)?;
    let how = a.get(2).map(want_str).transpose()?.unwrap_or("trailing");
    let fill = match a.get(3) {
        Some(c) => {
            let c = want_str(c)?;
            let mut chars = c.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) => ch,
                _ => return fail("the pad character must be one character"),
            }
        }
        None => ' ',
    };
    let missing = target.saturating_sub(s.chars().count());
    let (left, right) = match how {
        "trailing" => (0, missing),
        "leading" => (missing, 0),
        "both" => (missing / 2, missing - missing / 2),
        other => return fail(format!("unknown option '{}'", super::short(other))),
    };
    let mut out = String::with_capacity(s.len() + missing);
    out.extend(std::iter::repeat_n(fill, left));
    out.push_str(s);
    out.extend(std::iter::repeat_n(fill, right));
    Ok(Value::Str(out))
}

fn ascii(a: Vec<Value>, _: &FnCtx) -> R {
    let [s] = args(a);
    match want_str(&s)?.chars().next() {
        Some(c) => Ok(Value::Int(c as i64)),
        None => fail("empty string"),
    }
}

/// `topic_level(topic, n)`: the n-th level of an MQTT topic, 1-based (negative from the end); unlike
/// `split`, empty levels count (`a//b` has three levels). Out of range gives null.
fn topic_level(a: Vec<Value>, _: &FnCtx) -> R {
    let t = want_str(&a[0])?;
    let n = want_int(&a[1])?;
    let levels: Vec<&str> = t.split('/').collect();
    Ok(crate::value::index_of(levels.len(), n).map_or(Value::Null, |i| Value::from(levels[i])))
}

/// The precompiled pattern, or the argument compiled now (bounded in size so a pattern cannot eat memory).
fn pattern<'a>(v: &Value, cx: &FnCtx<'a>) -> Result<std::borrow::Cow<'a, Regex>, EvalError> {
    if let Some(re) = cx.regex {
        return Ok(std::borrow::Cow::Borrowed(re));
    }
    compile_regex(want_str(v)?)
        .map(std::borrow::Cow::Owned)
        .map_err(EvalError::new)
}

/// Compiles a regular expression with size limits (used at rule compile time for literal patterns too).
pub(crate) fn compile_regex(p: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_owned();
            format!("bad regular expression: {last}")
        })
}

fn regex_match(a: Vec<Value>, cx: &FnCtx) -> R {
    let re = pattern(&a[1], cx)?;
    Ok(Value::Bool(re.is_match(want_str(&a[0])?)))
}

fn regex_replace(a: Vec<Value>, cx: &FnCtx) -> R {
    let re = pattern(&a[1], cx)?;
    let s = want_str(&a[0])?;
    let repl = want_str(&a[2])?;
    // Bound the result before building it: each match becomes the replacement, whose `$n` references
    // expand to at most the match itself.
    let refs = repl.matches('$').count();
    let mut bound = s.len();
    for m in re.find_iter(s) {
        bound = bound.saturating_add(repl.len().saturating_add(refs.saturating_mul(m.len())));
        check_len(bound)?;
    }
    Ok(Value::Str(re.replace_all(s, repl).into_owned()))
}

/// The capture groups of the first match (the whole match when there are none); an empty array if no match.
fn regex_extract(a: Vec<Value>, cx: &FnCtx) -> R {
    let re = pattern(&a[1], cx)?;
    let s = want_str(&a[0])?;
    let Some(caps) = re.captures(s) else {
        return Ok(Value::Array(vec![]));
    };
    let groups: Vec<Value> = if caps.len() > 1 {
        caps.iter()
            .skip(1)
            .map(|m| m.map_or(Value::Null, |m| Value::from(m.as_str())))
            .collect()
    } else {
        caps.get(0).map(|m| Value::from(m.as_str())).into_iter().collect()
    };
    Ok(Value::Array(groups))
}
