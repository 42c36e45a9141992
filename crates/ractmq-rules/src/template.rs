//! Action templates such as `alerts/${clientid}` or `{"t": ${t}}`, parsed once and rendered per output row.
//! Strings render as their text, numbers/booleans/null as JSON, objects and arrays as compact JSON.
//! A placeholder whose field the row lacks makes `render` fail with the field's name (the action then
//! counts as failed) — silently rendering "undefined" would publish to wrong topics. Strings are inserted
//! as they are, not JSON-escaped: in a JSON body write `"${clientid}"`, or select `json_encode(x)`.

use std::fmt;

use crate::expr::{walk, Seg};
use crate::value::Value;
use crate::Row;

/// Why a template did not parse or render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    message: String,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        TemplateError {
            message: message.into(),
        }
    }

    /// The reason, as one line of text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    /// `${a.b[2]}`: the text as written (for errors and `fields()`), the row key, then the rest of the path.
    Field {
        text: String,
        key: String,
        rest: Vec<Seg>,
    },
}

impl PartialEq for Seg {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Seg::Key(a), Seg::Key(b)) => a == b,
            (Seg::Index(a), Seg::Index(b)) => a == b,
            _ => false,
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub(crate) parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `${path}` placeholders name a row field, optionally followed by `.key` and `[n]`
    /// (1-based) steps. `$` not followed by `{` is literal text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut lit = String::new();
        while let Some(i) = rest.find("${") {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::new("unterminated ${ in template"))?;
            let inner = after[..end].trim();
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(parse_path(inner)?);
            rest = &after[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The placeholders' paths as written (`clientid`, `payload.x`), in order.
    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field { text, .. } => Some(text.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// The top-level row keys the placeholders read (`payload` for `${payload.x}`).
    pub fn root_fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field { key, .. } => Some(key.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// Is this template plain text (no placeholders)?
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders against a row.
    pub fn render(&self, row: &Row) -> Result<String, TemplateError> {
        let mut out = String::new();
        self.render_into(row, &mut out)?;
        Ok(out)
    }

    /// Renders against a row, appending to `out` (reuse the buffer on hot paths).
    pub fn render_into(&self, row: &Row, out: &mut String) -> Result<(), TemplateError> {
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { text, key, rest } => {
                    let v = row
                        .get(key)
                        .ok_or_else(|| TemplateError::new(format!("no field \"{text}\" in the rule's output")))?;
                    if rest.is_empty() {
                        v.write_text(out);
                    } else {
                        match walk(v, rest) {
                            Value::Null if !path_present(v, rest) => {
                                return Err(TemplateError::new(format!("no field \"{text}\" in the rule's output")))
                            }
                            found => found.write_text(out),
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Distinguishes "the path holds null" from "the path is missing" (both walk to null).
fn path_present(v: &Value, rest: &[Seg]) -> bool {
    let Some((last, parents)) = rest.split_last() else {
        return true;
    };
    match (walk(v, parents), last) {
        (Value::Object(m), Seg::Key(k)) => m.contains_key(k),
        _ => false,
    }
}

fn parse_path(inner: &str) -> Result<Part, TemplateError> {
    let bad = || TemplateError::new(format!("invalid placeholder ${{{inner}}}"));
    let mut segs = Vec::new();
    for piece in inner.split('.') {
        // Each dotted piece is `name` optionally followed by `[n]` indexes.
        let (name, mut idx) = match piece.find('[') {
            Some(i) => (&piece[..i], &piece[i..]),
            None => (piece, ""),
        };
        if name.is_empty() && segs.is_empty() {
            return Err(bad());
        }
        if !name.is_empty() {
            segs.push(Seg::Key(name.to_owned()));
        }
        while !idx.is_empty() {
            let close = idx.find(']').ok_or_else(bad)?;
            let n: i64 = idx[1..close].trim().parse().map_err(|_| bad())?;
            segs.push(Seg::Index(n));
            idx = &idx[close + 1..];
            if !idx.is_empty() && !idx.starts_with('[') {
                return Err(bad());
            }
        }
    }
    let key = match segs.first() {
        Some(Seg::Key(k)) => k.clone(),
        _ => return Err(bad()),
    };
    segs.remove(0);
    Ok(Part::Field {
        text: inner.to_owned(),
        key,
        rest: segs,
    })
}
