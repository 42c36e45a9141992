//! Turns sqlparser expressions into the engine's compiled [`Expr`]: names resolved to columns, aliases or the
//! FOREACH item; paths to segment lists; functions to pointers with their arity checked; literal LIKE and
//! regex patterns compiled. Anything rule SQL does not support is refused here, with its position.

use sqlparser::ast::{
    AccessExpr, BinaryOperator, CeilFloorKind, DateTimeField, Expr as Sql, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, InTarget, ObjectNamePart, Subscript, TrimWhereField, UnaryOperator, Value as SqlValue,
};
use sqlparser::tokenizer::Location;

use crate::columns::Column;
use crate::error::SqlError;
use crate::expr::{Base, Expr, Seg};
use crate::funcs;
use crate::like::LikePattern;
use crate::ops::BinOp;
use crate::value::Value;

/// Deepest expression tree accepted; evaluation recurses this deep at most.
pub const MAX_EXPR_DEPTH: usize = 64;

/// What names mean where an expression is compiled.
pub(crate) struct Scope<'a> {
    /// Aliases of the fields that come before, in row order (index = slot).
    pub(crate) aliases: &'a [String],
    /// The FOREACH element's name (`item` or its alias), in DO and INCASE.
    pub(crate) item: Option<&'a str>,
    /// Fallback position for errors that have no token of their own.
    pub(crate) at: Location,
}

fn err(loc: Location, msg: impl Into<String>) -> SqlError {
    SqlError::at(loc, msg)
}

/// A position for an expression, found without walking deep trees (sqlparser's `span()` recurses fully).
fn loc(e: &Sql, scope: &Scope<'_>, budget: usize) -> Location {
    if budget == 0 {
        return scope.at;
    }
    let l = match e {
        Sql::Identifier(i) => i.span.start,
        Sql::CompoundIdentifier(v) => v.first().map_or(scope.at, |i| i.span.start),
        Sql::Value(v) => v.span.start,
        Sql::Function(f) => match f.name.0.first() {
            Some(ObjectNamePart::Identifier(i)) => i.span.start,
            _ => scope.at,
        },
        Sql::BinaryOp { left, .. } => loc(left, scope, budget - 1),
        Sql::UnaryOp { expr, .. }
        | Sql::Nested(expr)
        | Sql::Cast { expr, .. }
        | Sql::IsNull(expr)
        | Sql::IsNotNull(expr)
        | Sql::CompoundFieldAccess { root: expr, .. } => loc(expr, scope, budget - 1),
        Sql::Case { case_token, .. } => case_token.0.span.start,
        _ => scope.at,
    };
    if l.line == 0 {
        scope.at
    } else {
        l
    }
}

pub(crate) fn compile(e: &Sql, scope: &Scope<'_>) -> Result<Expr, SqlError> {
    compile_at(e, scope, 0)
}

fn compile_at(e: &Sql, scope: &Scope<'_>, depth: usize) -> Result<Expr, SqlError> {
    if depth > MAX_EXPR_DEPTH {
        return Err(err(
            loc(e, scope, 8),
            format!("expression nested deeper than {MAX_EXPR_DEPTH} levels"),
        ));
    }
    let sub = |e: &Sql| compile_at(e, scope, depth + 1);
    let boxed = |e: &Sql| sub(e).map(Box::new);
    Ok(match e {
        Sql::Identifier(i) => name(i, scope)?,
        Sql::CompoundIdentifier(parts) => {
            let (root, rest) = parts.split_first().ok_or_else(|| err(scope.at, "empty name"))?;
            let segs = rest.iter().map(|i| Seg::Key(i.value.clone())).collect();
            path(name(root, scope)?, segs)
        }
        Sql::CompoundFieldAccess { root, access_chain } => {
            let base = sub(root)?;
            let mut segs = Vec::with_capacity(access_chain.len());
            for a in access_chain {
                let seg = match a {
                    AccessExpr::Dot(Sql::Identifier(i)) => Seg::Key(i.value.clone()),
                    AccessExpr::Dot(Sql::CompoundIdentifier(ids)) => {
                        segs.extend(
                            ids.iter()
                                .take(ids.len().saturating_sub(1))
                                .map(|i| Seg::Key(i.value.clone())),
                        );
                        Seg::Key(ids.last().map(|i| i.value.clone()).unwrap_or_default())
                    }
                    AccessExpr::Subscript(Subscript::Index { index }) => match sub(index)? {
                        Expr::Lit(Value::Int(i)) => Seg::Index(i),
                        Expr::Lit(Value::Str(k)) => Seg::Key(k),
                        other => Seg::Dyn(Box::new(other)),
                    },
                    _ => return Err(err(loc(e, scope, 8), "unsupported field access (use .name or [n])")),
                };
                segs.push(seg);
            }
            path(base, segs)
        }
        Sql::Value(v) => Expr::Lit(literal(&v.value, v.span.start)?),
        Sql::Nested(inner) => sub(inner)?,
        Sql::Array(a) => Expr::Array(a.elem.iter().map(sub).collect::<Result<_, _>>()?),
        Sql::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => Expr::Not(boxed(expr)?),
            UnaryOperator::Plus => sub(expr)?,
            UnaryOperator::Minus => match sub(expr)? {
                // Fold negative literals so `-1` is a constant.
                Expr::Lit(Value::Int(i)) if i != i64::MIN => Expr::Lit(Value::Int(-i)),
                Expr::Lit(Value::Float(f)) => Expr::Lit(Value::Float(-f)),
                other => Expr::Neg(Box::new(other)),
            },
            other => return Err(err(loc(e, scope, 8), format!("unsupported operator {other}"))),
        },
        Sql::BinaryOp { left, op, right } => {
            let (l, r) = (boxed(left)?, boxed(right)?);
            let op = match op {
                BinaryOperator::And => return Ok(Expr::And(l, r)),
                BinaryOperator::Or => return Ok(Expr::Or(l, r)),
                BinaryOperator::Plus => BinOp::Add,
                BinaryOperator::Minus => BinOp::Sub,
                BinaryOperator::Multiply => BinOp::Mul,
                BinaryOperator::Divide => BinOp::Div,
                BinaryOperator::Modulo => BinOp::Mod,
                BinaryOperator::StringConcat => BinOp::Concat,
                BinaryOperator::Eq => BinOp::Eq,
                BinaryOperator::NotEq => BinOp::NotEq,
                BinaryOperator::Lt => BinOp::Lt,
                BinaryOperator::LtEq => BinOp::LtEq,
                BinaryOperator::Gt => BinOp::Gt,
                BinaryOperator::GtEq => BinOp::GtEq,
                other => return Err(err(loc(right, scope, 8), format!("unsupported operator {other}"))),
            };
            Expr::Binary(op, l, r)
        }
        Sql::IsNull(x) => Expr::IsNull(boxed(x)?, false),
        Sql::IsNotNull(x) => Expr::IsNull(boxed(x)?, true),
        Sql::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => Expr::In(boxed(expr)?, list.iter().map(sub).collect::<Result<_, _>>()?, *negated),
        Sql::Between {
            expr,
            negated,
            low,
            high,
        } => Expr::Between(boxed(expr)?, boxed(low)?, boxed(high)?, *negated),
        Sql::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } => match sub(pattern)? {
            Expr::Lit(Value::Str(p)) => Expr::Like(boxed(expr)?, LikePattern::new(&p), *negated),
            other => Expr::LikeDyn(boxed(expr)?, Box::new(other), *negated),
        },
        Sql::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let operand = operand.as_deref().map(boxed).transpose()?;
            let whens = conditions
                .iter()
                .map(|c| Ok((sub(&c.condition)?, sub(&c.result)?)))
                .collect::<Result<_, SqlError>>()?;
            Expr::Case(operand, whens, else_result.as_deref().map(boxed).transpose()?)
        }
        Sql::Function(f) => {
            let name_ident = match f.name.0.as_slice() {
                [ObjectNamePart::Identifier(i)] => i,
                _ => return Err(err(loc(e, scope, 8), "unsupported function name")),
            };
            let mut args = Vec::new();
            match &f.args {
                FunctionArguments::List(list) if list.duplicate_treatment.is_none() && list.clauses.is_empty() => {
                    for a in &list.args {
                        match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => args.push(x),
                            _ => return Err(err(name_ident.span.start, "unsupported function argument")),
                        }
                    }
                }
                FunctionArguments::None => {}
                _ => return Err(err(name_ident.span.start, "unsupported function call syntax")),
            }
            if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
                return Err(err(name_ident.span.start, "aggregate/window clauses are not supported"));
            }
            call(
                &name_ident.value,
                name_ident.span.start,
                args.into_iter().map(sub).collect::<Result<_, _>>()?,
            )?
        }
        // sqlparser gives these functions their own syntax; they are plain built-ins in rule SQL.
        Sql::Trim {
            trim_where,
            trim_what: None,
            expr,
            trim_characters: None,
        } => {
            let f = match trim_where {
                None | Some(TrimWhereField::Both) => "trim",
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
            };
            call(f, loc(e, scope, 8), vec![sub(expr)?])?
        }
        Sql::Ceil {
            expr,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => call("ceil", loc(expr, scope, 8), vec![sub(expr)?])?,
        Sql::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => call("floor", loc(expr, scope, 8), vec![sub(expr)?])?,
        Sql::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![sub(expr)?];
            args.push(match substring_from {
                Some(f) => sub(f)?,
                None => Expr::Lit(Value::Int(0)),
            });
            if let Some(n) = substring_for {
                args.push(sub(n)?);
            }
            call("substr", loc(expr, scope, 8), args)?
        }
        other => {
            let kind = format!("{other:?}");
            let kind = kind.split(['(', ' ', '{']).next().unwrap_or("expression");
            return Err(err(loc(e, scope, 8), format!("unsupported expression ({kind})")));
        }
    })
}

/// A bare name: the FOREACH item, an earlier alias, an input column — or null, as EMQX reads unknown fields.
/// A double-quoted unknown name is refused instead: it is almost always a string written with the wrong
/// quotes (`topic = "t/1"`), which would otherwise silently compare with null.
fn name(i: &Ident, scope: &Scope<'_>) -> Result<Expr, SqlError> {
    let n = i.value.as_str();
    if scope.item == Some(n) {
        return Ok(Expr::Item);
    }
    if let Some(slot) = scope.aliases.iter().rposition(|a| a == n) {
        return Ok(Expr::Slot(slot));
    }
    match Column::by_name(n) {
        Some(c) => Ok(Expr::Column(c)),
        None if i.quote_style == Some('"') => Err(err(
            i.span.start,
            format!("unknown field \"{n}\" (strings take single quotes)"),
        )),
        None => Ok(Expr::Lit(Value::Null)),
    }
}

/// Attaches a path to its root; `payload.x` reads the decoded payload instead of the raw text.
fn path(root: Expr, segs: Vec<Seg>) -> Expr {
    if segs.is_empty() {
        return root;
    }
    match root {
        Expr::Column(Column::Payload) => Expr::Path(Base::Payload, segs),
        Expr::Path(base, mut first) => {
            first.extend(segs);
            Expr::Path(base, first)
        }
        Expr::Lit(Value::Null) => Expr::Lit(Value::Null),
        other => Expr::Path(Base::Expr(Box::new(other)), segs),
    }
}

fn literal(v: &SqlValue, at: Location) -> Result<Value, SqlError> {
    Ok(match v {
        SqlValue::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Value::Int(i),
            // Beyond i64 a number is kept as a float, as JSON decoding does.
            Err(_) => match n.parse::<f64>().ok().and_then(Value::float) {
                Some(f) => f,
                None => return Err(err(at, format!("number out of range: {n}"))),
            },
        },
        SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Value::Str(s.clone()),
        SqlValue::Boolean(b) => Value::Bool(*b),
        SqlValue::Null => Value::Null,
        other => return Err(err(at, format!("unsupported literal {other}"))),
    })
}

fn call(fname: &str, at: Location, args: Vec<Expr>) -> Result<Expr, SqlError> {
    let def = funcs::lookup(fname).ok_or_else(|| err(at, format!("unknown function {fname}")))?;
    if args.len() < def.min || args.len() > def.max {
        let want = match (def.min, def.max) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        return Err(err(
            at,
            format!("function {} takes {want} argument(s), got {}", def.name, args.len()),
        ));
    }
    let regex = match def.regex_arg.and_then(|i| args.get(i)) {
        Some(Expr::Lit(Value::Str(p))) => Some(Box::new(funcs::compile_regex(p).map_err(|m| err(at, m))?)),
        _ => None,
    };
    Ok(Expr::Call(def, args, regex))
}
