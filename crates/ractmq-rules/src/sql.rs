//! Splitting a rule statement into its clauses. sqlparser does not know EMQX's FOREACH/DO/INCASE, and its
//! SELECT grammar accepts far more than rules allow, so the statement is tokenized once (quotes handled by
//! the tokenizer), cut at top-level clause keywords, and each clause handed to sqlparser's expression parser
//! with its original token positions — errors therefore point into the operator's text.

use sqlparser::ast::{Expr as SqlExpr, SelectItem};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

use crate::error::SqlError;

/// Longest rule SQL accepted; bounds parse time and the depth of the trees sqlparser builds.
pub const MAX_SQL_LEN: usize = 16 * 1024;

/// A clause: its tokens (whitespace dropped) and where it ends (the next keyword, or the end of text).
pub(crate) struct Clause {
    pub(crate) tokens: Vec<TokenWithSpan>,
    /// Position of the keyword that starts this clause.
    pub(crate) start: Location,
    /// Position right after the clause, and the keyword found there (if any) for error messages.
    pub(crate) end: Location,
    pub(crate) end_word: Option<String>,
}

/// The statement cut into clauses.
pub(crate) struct Statement {
    pub(crate) foreach: bool,
    /// SELECT's field list, or FOREACH's expression.
    pub(crate) head: Clause,
    pub(crate) do_: Option<Clause>,
    pub(crate) incase: Option<Clause>,
    pub(crate) from: Clause,
    pub(crate) where_: Option<Clause>,
}

fn keyword(t: &TokenWithSpan) -> Option<String> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::EOF => "end of input".into(),
        other => {
            let s = other.to_string();
            let short: String = s.chars().take(40).collect();
            format!("\"{short}\"")
        }
    }
}

pub(crate) fn split(sql: &str) -> Result<Statement, SqlError> {
    if sql.len() > MAX_SQL_LEN {
        return Err(SqlError::new(1, 1, format!("SQL longer than {MAX_SQL_LEN} bytes")));
    }
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| {
        // The tokenizer puts the position at the end of its message: " at Line: X, Column: Y".
        let text = e.message.clone();
        SqlError::new(e.location.line, e.location.column, lower_first(&text))
    })?;
    let end_of_text = tokens.last().map_or(Location::new(1, 1), |t| t.span.end);
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();

    let first = tokens
        .first()
        .ok_or_else(|| SqlError::new(1, 1, "expected SELECT or FOREACH, found end of input"))?;
    let foreach = match keyword(first).as_deref() {
        Some("SELECT") => false,
        Some("FOREACH") => true,
        _ => {
            return Err(SqlError::at(
                first.span.start,
                format!("expected SELECT or FOREACH, found {}", describe(&first.token)),
            ))
        }
    };

    // The clauses that may follow, in order; each keyword counts only at the top level (outside brackets)
    // and not right after a dot (`payload.from` is a field).
    let order: &[&str] = if foreach {
        &["DO", "INCASE", "FROM", "WHERE"]
    } else {
        &["FROM", "WHERE"]
    };
    let mut cuts: Vec<(usize, &str)> = vec![(0, if foreach { "FOREACH" } else { "SELECT" })];
    let mut depth = 0i32;
    let mut next_allowed = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(1) {
        match t.token {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth -= 1,
            _ => {}
        }
        if depth != 0 || matches!(tokens[i - 1].token, Token::Period) {
            continue;
        }
        let Some(kw) = keyword(t) else { continue };
        let Some(pos) = order.iter().position(|k| *k == kw) else {
            if kw == "SELECT" || kw == "FOREACH" {
                return Err(SqlError::at(
                    t.span.start,
                    format!("unexpected {kw}: a rule has one statement"),
                ));
            }
            continue;
        };
        if pos < next_allowed {
            return Err(SqlError::at(t.span.start, format!("unexpected {kw} here")));
        }
        cuts.push((i, order[pos]));
        next_allowed = pos + 1;
    }

    let mut clauses: Vec<(&str, Clause)> = Vec::new();
    for (n, (at, name)) in cuts.iter().enumerate() {
        let stop = cuts.get(n + 1).map_or(tokens.len(), |c| c.0);
        let (end, end_word) = match tokens.get(stop) {
            Some(t) => (t.span.start, keyword(t)),
            None => (end_of_text, None),
        };
        clauses.push((
            name,
            Clause {
                tokens: tokens[at + 1..stop].to_vec(),
                start: tokens[*at].span.start,
                end,
                end_word,
            },
        ));
    }
    let mut take = |name: &str| clauses.iter().position(|c| c.0 == name).map(|i| clauses.remove(i).1);
    let head =
        take(if foreach { "FOREACH" } else { "SELECT" }).ok_or_else(|| SqlError::new(1, 1, "missing statement"))?;
    let do_ = take("DO");
    let incase = take("INCASE");
    let where_ = take("WHERE");
    let from = match take("FROM") {
        Some(f) => f,
        None => {
            // Point at where FROM was expected: the end of the clause before it.
            let last = do_.as_ref().or(incase.as_ref()).unwrap_or(&head);
            let next = where_.as_ref().map(|w| (w.start, "WHERE".to_owned()));
            let (loc, found) = next.unwrap_or((last.end, String::new()));
            let found = if found.is_empty() {
                "end of input".to_owned()
            } else {
                format!("\"{found}\"")
            };
            return Err(SqlError::at(loc, format!("expected FROM, found {found}")));
        }
    };
    Ok(Statement {
        foreach,
        head,
        do_,
        incase,
        from,
        where_,
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Turns a sqlparser error into ours: `Expected: X, found: Y at Line: L, Column: C` becomes
/// `expected X, found "Y"` at L:C. A "found: EOF" inside a clause really means the next clause keyword.
fn convert(e: ParserError, clause: &Clause) -> SqlError {
    let raw = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => {
            return SqlError::at(clause.start, "expression nested too deeply");
        }
    };
    let (msg, loc) = match raw.rfind(" at Line: ") {
        Some(i) => {
            let pos = &raw[i + " at Line: ".len()..];
            let mut nums = pos.split(", Column: ").map(|n| n.trim().parse::<u64>().unwrap_or(0));
            let line = nums.next().unwrap_or(0);
            let col = nums.next().unwrap_or(0);
            (raw[..i].to_owned(), Location::new(line, col))
        }
        None => (raw, clause.end),
    };
    let end_word = clause
        .end_word
        .as_ref()
        .map_or("end of input".to_owned(), |w| format!("\"{w}\""));
    let msg = match msg.strip_prefix("Expected: ").and_then(|m| m.split_once(", found: ")) {
        Some((expected, found)) => {
            let found = if found == "EOF" {
                end_word
            } else {
                format!("\"{found}\"")
            };
            format!("expected {expected}, found {found}")
        }
        None => lower_first(&msg),
    };
    SqlError::at(loc, msg)
}

/// A parser over one clause's tokens, ending with an EOF placed where the clause ends.
fn parser_for<'a>(dialect: &'a GenericDialect, clause: &Clause) -> Parser<'a> {
    let mut tokens = clause.tokens.clone();
    tokens.push(TokenWithSpan::new(Token::EOF, Span::new(clause.end, clause.end)));
    // sqlparser's default recursion limit (50) is below what MAX_EXPR_DEPTH allows; its parser grows its own
    // stack (the `recursive` feature), and our compile step still caps the tree at MAX_EXPR_DEPTH.
    Parser::new(dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
}

/// sqlparser's nesting limit: each SQL nesting level may take two or three parser levels.
const PARSER_RECURSION_LIMIT: usize = 3 * crate::compile::MAX_EXPR_DEPTH;

/// After a clause was parsed, anything left over is an error naming what could have come next.
fn expect_end(p: &mut Parser<'_>, next: &str) -> Result<(), SqlError> {
    let t = p.peek_token();
    if t.token == Token::EOF {
        return Ok(());
    }
    Err(SqlError::at(
        t.span.start,
        format!("expected {next}, found {}", describe(&t.token)),
    ))
}

/// Parses a clause as a comma-separated list of `expr [AS alias]` (or `*`).
pub(crate) fn parse_fields(clause: &Clause, next: &str) -> Result<Vec<SelectItem>, SqlError> {
    let dialect = GenericDialect {};
    let mut p = parser_for(&dialect, clause);
    if clause.tokens.is_empty() {
        return Err(SqlError::at(
            clause.end,
            format!("expected a field, found {}", end_name(clause)),
        ));
    }
    let items = p.parse_projection().map_err(|e| convert(e, clause))?;
    expect_end(&mut p, &format!("\",\" or {next}"))?;
    Ok(items)
}

/// Parses a clause as one expression.
pub(crate) fn parse_expr(clause: &Clause, next: &str) -> Result<SqlExpr, SqlError> {
    let dialect = GenericDialect {};
    let mut p = parser_for(&dialect, clause);
    let e = p.parse_expr().map_err(|e| convert(e, clause))?;
    expect_end(&mut p, next)?;
    Ok(e)
}

pub(crate) fn end_name(clause: &Clause) -> String {
    clause
        .end_word
        .as_ref()
        .map_or("end of input".to_owned(), |w| format!("\"{w}\""))
}

/// Parses FROM's list of quoted topic filters.
pub(crate) fn parse_from(clause: &Clause) -> Result<Vec<(String, Location)>, SqlError> {
    let mut out = Vec::new();
    let mut expect_filter = true;
    for t in &clause.tokens {
        if expect_filter {
            let text = match &t.token {
                Token::Word(w) if w.quote_style == Some('"') => w.value.clone(),
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
                other => {
                    return Err(SqlError::at(
                        t.span.start,
                        format!("expected a double-quoted topic filter, found {}", describe(other)),
                    ))
                }
            };
            out.push((text, t.span.start));
            expect_filter = false;
        } else if t.token == Token::Comma {
            expect_filter = true;
        } else {
            return Err(SqlError::at(
                t.span.start,
                format!("expected \",\" or WHERE, found {}", describe(&t.token)),
            ));
        }
    }
    if expect_filter {
        return Err(SqlError::at(
            clause.end,
            format!("expected a double-quoted topic filter, found {}", end_name(clause)),
        ));
    }
    Ok(out)
}
