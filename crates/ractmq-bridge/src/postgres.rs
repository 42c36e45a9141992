//! The PostgreSQL sink: writes records as rows, with an INSERT (or any one statement) the operator writes, so
//! a bridge can keep telemetry in a database without a program of its own in between.
//!
//! The statement is a template: `INSERT INTO readings (topic, payload, qos, at) VALUES (${topic}, ${payload},
//! ${qos}, ${timestamp})`. Each placeholder becomes a bind parameter (`$1`, `$2`, ...) of a prepared
//! statement, so a topic or payload is a value and never SQL text: nothing a publisher sends can change the
//! statement. Values are converted to the type PostgreSQL gives each parameter (see [`PostgresConfig::sql`]).
//!
//! A [`PostgresSink`] makes one attempt per [`PostgresSink::send`]: the whole batch in one transaction, all rows
//! or none; the bridge retries, backs off and dead-letters. Lost connections and a database that is down may
//! pass (retryable); a row the database refuses (SQLSTATE classes 22 data exception, 23 integrity constraint,
//! 42 syntax or access rule) or a value that cannot be converted will not.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use serde::{Deserialize, Serialize};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::sink::SinkError;
use crate::template::{Field, Part, Template, Value};
use crate::Record;

/// How long connecting may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration of a PostgreSQL sink (the bridge that uses it holds its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The server and database: `postgres://user:password@host:port/db` (or the `key=value` form). The sink
    /// connects without TLS, so `sslmode=require` is refused.
    pub url: String,
    /// One SQL statement with `${field}` placeholders, each one bound as a parameter, never pasted in.
    /// Write placeholders bare (`VALUES (${topic})`, not `'${topic}'`): one inside quotes or a comment is
    /// refused. A value is converted to the type PostgreSQL infers for its parameter: text types take any
    /// value as text; `int2/int4/int8` integers, or text that parses as one, in range; `float4/float8`
    /// numbers, or text that parses as one; `bool` booleans, `0`/`1`, or text PostgreSQL reads as a boolean;
    /// `json/jsonb` the payload parsed as JSON for `${payload}`, the JSON value for `${payload.PATH}`, other
    /// fields as JSON strings, numbers or booleans; `timestamp/timestamptz` milliseconds since the Unix epoch
    /// (`${timestamp}`, or an integer); `bytea` the payload's bytes for `${payload}`, other values' text;
    /// `inet` an address. A missing value (a JSON field or user property that is not there) is NULL. For any
    /// other type cast in the SQL: `${payload.v}::text::numeric`. A value that does not convert fails the batch
    /// (not retryable).
    pub sql: String,
    /// Connections at most.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Records per transaction at most (the bridge forms the batches).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Retries of a retryable failure before the batch is dead-lettered (the bridge does them).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first backoff between retries, in milliseconds (the bridge does them).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
}

fn default_pool_size() -> usize {
    4
}
fn default_batch_size() -> usize {
    100
}
fn default_retries() -> u32 {
    3
}
fn default_retry_backoff_ms() -> u64 {
    200
}

impl PostgresConfig {
    /// A configuration with `url` and `sql` and the defaults for the rest.
    pub fn new(url: impl Into<String>, sql: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            sql: sql.into(),
            pool_size: default_pool_size(),
            batch_size: default_batch_size(),
            retries: default_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
        }
    }
}

/// A PostgreSQL sink. Cloning it is cheap and the clones share one connection pool, so several sends can run
/// at once (each on its own connection).
#[derive(Clone)]
pub struct PostgresSink {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The statement with `$1`, `$2`, ... where the template has placeholders.
    sql: String,
    /// The field of each parameter, `$1` first.
    fields: Vec<Field>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("sql", &self.inner.sql)
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// Check `config` (URL, template, sizes) and make the pool. It does not connect: the first send does, so
    /// a database that is down when the bridge starts is a retryable failure of sends, not a failed start.
    pub fn new(config: &PostgresConfig) -> Result<PostgresSink, String> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| format!("url: {e}"))?;
        if pg.get_hosts().is_empty() && pg.get_hostaddrs().is_empty() {
            return Err("url: no host".to_string());
        }
        if pg.get_ssl_mode() == SslMode::Require {
            return Err("url: sslmode=require, but the sink connects without TLS".to_string());
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("ractmq-bridge");
        }
        let (sql, fields) = bind_parameters(&config.sql).map_err(|e| format!("sql: {e}"))?;
        if config.pool_size == 0 {
            return Err("pool_size: must be at least 1".to_string());
        }
        if config.batch_size == 0 {
            return Err("batch_size: must be at least 1".to_string());
        }
        // No TLS: the database is expected on the same host or a private network. A TLS connector (rustls,
        // as the HTTP sink uses) can be added when a deployment needs it.
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                // A closed connection is dropped when it comes back; no test query on every checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .build()
            .map_err(|e| format!("pool: {e}"))?;
        Ok(PostgresSink {
            inner: Arc::new(Inner { pool, sql, fields }),
        })
    }

    /// The statement as it is prepared, with `$1`, `$2`, ... for the placeholders.
    pub fn statement(&self) -> &str {
        &self.inner.sql
    }

    /// Write `batch` in one transaction, committed before this returns `Ok`: every row or none. One attempt,
    /// no retry. An empty batch is taken without touching the database.
    pub async fn send(&self, batch: &[Record]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut client = inner.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => classify("connecting", &e),
            other => SinkError::retry(format!("connecting: {other}")),
        })?;
        let statement = client
            .prepare_cached(&inner.sql)
            .await
            .map_err(|e| classify("preparing the statement", &e))?;
        let types = statement.params();
        if types.len() != inner.fields.len() {
            return Err(SinkError::fatal(format!(
                "the statement takes {} parameters but the template has {} placeholders",
                types.len(),
                inner.fields.len()
            )));
        }
        // Every value is converted before anything is written, so a bad one fails the batch at once.
        let mut rows = Vec::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            let mut row = Vec::with_capacity(types.len());
            for (n, (field, ty)) in inner.fields.iter().zip(types).enumerate() {
                row.push(convert(field, record, ty).map_err(|e| {
                    SinkError::fatal(format!(
                        "record {i} (topic {:?}): parameter ${} (${{{}}}, {ty}): {e}",
                        record.topic,
                        n + 1,
                        field_name(field)
                    ))
                })?);
            }
            rows.push(row);
        }
        let transaction = client
            .transaction()
            .await
            .map_err(|e| classify("beginning a transaction", &e))?;
        // All the INSERTs are sent at once (pipelined on the connection) and answered in order; the first
        // error is the first refused row. Dropping the transaction without commit rolls it back.
        let inserts = rows.iter().map(|row| {
            let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let transaction = &transaction;
            let statement = &statement;
            async move { transaction.execute(statement, &params).await }
        });
        futures_util::future::try_join_all(inserts)
            .await
            .map_err(|e| classify("inserting", &e))?;
        transaction.commit().await.map_err(|e| classify("committing", &e))
    }
}

/// Whether a database error may pass: SQLSTATE classes 22, 23 and 42 will not (the same rows would be refused
/// again); anything else (a lost connection, a server shutting down, a serialization failure) may.
fn classify(doing: &str, error: &tokio_postgres::Error) -> SinkError {
    let Some(db) = error.as_db_error() else {
        return SinkError::retry(one_line(&format!("{doing}: {}", crate::sink::error_chain(error))));
    };
    let code = db.code().code();
    let mut reason = format!("{doing}: {} {code}: {}", db.severity(), db.message());
    if let Some(detail) = db.detail() {
        reason.push_str(&format!(" ({detail})"));
    }
    let reason = one_line(&reason);
    if matches!(code.get(..2), Some("22" | "23" | "42")) {
        SinkError::fatal(reason)
    } else {
        SinkError::retry(reason)
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The template `sql` with `$1`, `$2`, ... in place of its placeholders, and the field of each.
fn bind_parameters(sql: &str) -> Result<(String, Vec<Field>), String> {
    let template = Template::parse(sql)?;
    let mut text = String::new();
    let mut fields = Vec::new();
    let mut lexer = Lexer::Code;
    let mut previous = b' ';
    for part in template.parts() {
        match part {
            Part::Text(code) => {
                lexer.scan(code, &mut previous)?;
                text.push_str(code);
            }
            Part::Field(field) => {
                if let Some(inside) = lexer.inside() {
                    return Err(format!(
                        "`${{{}}}` is inside {inside}; write it bare (`VALUES (${{{0}}})`): it is bound as a \
                         parameter, never pasted into the SQL",
                        field_name(field)
                    ));
                }
                fields.push(field.clone());
                text.push_str(&format!("${}", fields.len()));
                previous = b'0';
            }
        }
    }
    if text.trim().is_empty() {
        return Err("empty".to_string());
    }
    Ok((text, fields))
}

/// Where in SQL text a scan is: enough of PostgreSQL's lexical rules to know that a placeholder is not in a
/// string, a quoted identifier or a comment (where `$1` would be text, not a parameter).
#[derive(Debug, PartialEq)]
enum Lexer {
    Code,
    Quote,
    Identifier,
    LineComment,
    BlockComment(u32),
    Dollar(String),
}

impl Lexer {
    fn inside(&self) -> Option<&'static str> {
        match self {
            Lexer::Code => None,
            Lexer::Quote | Lexer::Dollar(_) => Some("a quoted string"),
            Lexer::Identifier => Some("a quoted identifier"),
            Lexer::LineComment | Lexer::BlockComment(_) => Some("a comment"),
        }
    }

    fn scan(&mut self, code: &str, previous: &mut u8) -> Result<(), String> {
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let byte = bytes[i];
            let next = bytes.get(i + 1).copied();
            match self {
                Lexer::Code => match byte {
                    b'\'' => *self = Lexer::Quote,
                    b'"' => *self = Lexer::Identifier,
                    b'-' if next == Some(b'-') => *self = Lexer::LineComment,
                    b'/' if next == Some(b'*') => {
                        *self = Lexer::BlockComment(1);
                        i += 1;
                    }
                    b'$' if !is_identifier_byte(*previous) => {
                        if next.is_some_and(|b| b.is_ascii_digit()) {
                            return Err("has a `$N` parameter of its own; use `${field}` placeholders only".to_string());
                        }
                        let tag_end = bytes[i + 1..]
                            .iter()
                            .position(|&b| b == b'$' || !is_identifier_byte(b))
                            .map(|p| i + 1 + p);
                        if let Some(end) = tag_end.filter(|&end| bytes[end] == b'$') {
                            *self = Lexer::Dollar(code[i..=end].to_string());
                            i = end;
                        }
                    }
                    _ => {}
                },
                Lexer::Quote if byte == b'\'' => *self = Lexer::Code,
                Lexer::Identifier if byte == b'"' => *self = Lexer::Code,
                Lexer::LineComment if byte == b'\n' => *self = Lexer::Code,
                Lexer::BlockComment(depth) => {
                    if byte == b'*' && next == Some(b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            *self = Lexer::Code;
                        }
                    } else if byte == b'/' && next == Some(b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
                Lexer::Dollar(tag) if bytes[i..].starts_with(tag.as_bytes()) => {
                    i += tag.len() - 1;
                    *self = Lexer::Code;
                }
                _ => {}
            }
            *previous = bytes[i];
            i += 1;
        }
        Ok(())
    }
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// How the template names `field`.
fn field_name(field: &Field) -> String {
    match field {
        Field::Topic => "topic".to_string(),
        Field::Payload => "payload".to_string(),
        Field::Qos => "qos".to_string(),
        Field::Retain => "retain".to_string(),
        Field::Timestamp => "timestamp".to_string(),
        Field::PayloadPath(path) => format!("payload.{}", path.join(".")),
        Field::UserProperty(key) => format!("user_property.{key}"),
    }
}

/// A value converted to its parameter's type.
#[derive(Debug)]
enum Param {
    Null,
    Text(String),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    Time(SystemTime),
    Inet(IpAddr),
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Text(v) => v.to_sql(ty, out),
            Param::Int2(v) => v.to_sql(ty, out),
            Param::Int4(v) => v.to_sql(ty, out),
            Param::Int8(v) => v.to_sql(ty, out),
            Param::Float4(v) => v.to_sql(ty, out),
            Param::Float8(v) => v.to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::Json(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::Inet(v) => v.to_sql(ty, out),
        }
    }

    /// Any: [`convert`] made the value for the parameter's type.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `field` of `record` as a parameter of type `ty`.
fn convert(field: &Field, record: &Record, ty: &Type) -> Result<Param, String> {
    let value = field.value(record);
    if value == Value::Null {
        return Ok(Param::Null);
    }
    if *ty == Type::BYTEA {
        return Ok(Param::Bytes(match field {
            Field::Payload => record.payload.to_vec(),
            _ => text(&value).into_bytes(),
        }));
    }
    if <String as ToSql>::accepts(ty) {
        return Ok(Param::Text(text(&value)));
    }
    match *ty {
        Type::INT2 => integer(&value)
            .and_then(|i| i16::try_from(i).map_err(|_| format!("{i} is out of range for int2")))
            .map(Param::Int2),
        Type::INT4 => integer(&value)
            .and_then(|i| i32::try_from(i).map_err(|_| format!("{i} is out of range for int4")))
            .map(Param::Int4),
        Type::INT8 => integer(&value).map(Param::Int8),
        Type::FLOAT4 => float(&value).map(|f| Param::Float4(f as f32)),
        Type::FLOAT8 => float(&value).map(Param::Float8),
        Type::BOOL => boolean(&value).map(Param::Bool),
        Type::JSON | Type::JSONB => json(field, record, value).map(Param::Json),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let ms = integer(&value).map_err(|e| format!("{e} (a time is milliseconds since the Unix epoch)"))?;
            let offset = Duration::from_millis(ms.unsigned_abs());
            let time = if ms >= 0 {
                UNIX_EPOCH.checked_add(offset)
            } else {
                UNIX_EPOCH.checked_sub(offset)
            };
            time.map(Param::Time)
                .ok_or_else(|| format!("{ms} ms is out of range for a time"))
        }
        Type::INET => text(&value)
            .trim()
            .parse::<IpAddr>()
            .map(Param::Inet)
            .map_err(|_| format!("{:?} is not an IP address", text(&value))),
        _ => Err(format!(
            "the sink does not convert to {ty}; cast it in the SQL: ${{{}}}::text::{ty}",
            field_name(field)
        )),
    }
}

fn text(value: &Value) -> String {
    let mut out = String::new();
    value.write_text(&mut out);
    out
}

fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64 => Ok(*f as i64),
        Value::Text(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("text {s:?} is not an integer")),
        other => Err(format!("{other:?} is not an integer")),
    }
}

fn float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Text(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("text {s:?} is not a number")),
        other => Err(format!("{other:?} is not a number")),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Int(0) => Ok(false),
        Value::Int(1) => Ok(true),
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
            _ => Err(format!("text {s:?} is not a boolean")),
        },
        other => Err(format!("{other:?} is not a boolean")),
    }
}

fn json(field: &Field, record: &Record, value: Value) -> Result<serde_json::Value, String> {
    match field {
        Field::Payload => serde_json::from_slice(&record.payload).map_err(|e| format!("the payload is not JSON: {e}")),
        // The JSON value itself, objects and arrays included (the template's value of one is its text).
        Field::PayloadPath(path) => {
            let payload: serde_json::Value =
                serde_json::from_slice(&record.payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
            Ok(path
                .iter()
                .try_fold(&payload, |v, key| v.get(key))
                .cloned()
                .unwrap_or(serde_json::Value::Null))
        }
        _ => Ok(match value {
            Value::Text(s) => serde_json::Value::String(s),
            Value::Int(i) => i.into(),
            Value::Float(f) => f.into(),
            Value::Bool(b) => b.into(),
            Value::Null => serde_json::Value::Null,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_parameters() {
        let (sql, fields) =
            bind_parameters("INSERT INTO t (a, b, c) VALUES (${topic}, ${payload}, ${qos}::int2)").unwrap();
        assert_eq!(sql, "INSERT INTO t (a, b, c) VALUES ($1, $2, $3::int2)");
        assert_eq!(fields, vec![Field::Topic, Field::Payload, Field::Qos]);
    }

    #[test]
    fn placeholders_in_strings_and_comments_are_refused() {
        for sql in [
            "INSERT INTO t VALUES ('${topic}')",
            "INSERT INTO t VALUES ('it''s ${topic}')",
            "INSERT INTO \"${topic}\" VALUES (1)",
            "INSERT INTO t VALUES (1) -- ${topic}",
            "INSERT INTO t /* a /* nested */ ${topic} */ VALUES (1)",
            "INSERT INTO t VALUES ($q$ ${topic} $q$)",
            "INSERT INTO t VALUES ($$${topic}$$)",
        ] {
            let err = bind_parameters(sql).unwrap_err();
            assert!(err.contains("inside"), "{sql}: {err}");
        }
        // Quotes, comments and dollar quotes that end before a placeholder are fine.
        let (sql, _) = bind_parameters(
            "INSERT INTO \"t\" VALUES ('it''s', $q$x$q$, ${topic}) -- done\n/* c */ RETURNING a$b, ${qos}",
        )
        .unwrap();
        assert_eq!(
            sql,
            "INSERT INTO \"t\" VALUES ('it''s', $q$x$q$, $1) -- done\n/* c */ RETURNING a$b, $2"
        );
        assert!(bind_parameters("INSERT INTO t VALUES ($1)")
            .unwrap_err()
            .contains("`$N`"));
        assert!(bind_parameters("INSERT INTO t VALUES (${topik})")
            .unwrap_err()
            .contains("unknown field"));
        assert_eq!(bind_parameters("  ").unwrap_err(), "empty");
    }

    fn record(payload: &str) -> Record {
        Record {
            topic: "s/1".into(),
            payload: payload.to_string().into(),
            qos: ractmq_codec::QoS::AtLeastOnce,
            retain: true,
            user_properties: vec![],
            timestamp_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn values_convert_to_the_parameter_type() {
        let r = record(r#"{"n":"42","f":1.5,"o":{"a":[1]},"b":"off"}"#);
        let path = |p: &str| Field::PayloadPath(p.split('.').map(str::to_string).collect());
        assert!(matches!(convert(&path("n"), &r, &Type::INT4), Ok(Param::Int4(42))));
        assert!(matches!(convert(&Field::Qos, &r, &Type::INT2), Ok(Param::Int2(1))));
        assert!(matches!(convert(&Field::Qos, &r, &Type::TEXT), Ok(Param::Text(t)) if t == "1"));
        assert!(matches!(convert(&path("f"), &r, &Type::FLOAT8), Ok(Param::Float8(f)) if f == 1.5));
        assert!(matches!(convert(&path("b"), &r, &Type::BOOL), Ok(Param::Bool(false))));
        assert!(matches!(
            convert(&Field::Retain, &r, &Type::BOOL),
            Ok(Param::Bool(true))
        ));
        assert!(matches!(convert(&path("missing"), &r, &Type::INT4), Ok(Param::Null)));
        assert!(
            matches!(convert(&path("o"), &r, &Type::JSONB), Ok(Param::Json(j)) if j == serde_json::json!({"a":[1]}))
        );
        assert!(
            matches!(convert(&Field::Timestamp, &r, &Type::TIMESTAMPTZ), Ok(Param::Time(t))
                if t == UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert!(convert(&path("f"), &r, &Type::INT4)
            .unwrap_err()
            .contains("not an integer"));
        assert!(convert(&Field::Topic, &r, &Type::INT8).unwrap_err().contains("\"s/1\""));
        assert!(convert(&Field::Timestamp, &r, &Type::INT4)
            .unwrap_err()
            .contains("out of range"));
        assert!(convert(&Field::Topic, &record("x"), &Type::NUMERIC)
            .unwrap_err()
            .contains("::text::numeric"));
        assert!(convert(&Field::Payload, &record("x"), &Type::JSONB)
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn config_errors_name_the_setting() {
        let new = |url: &str, sql: &str| PostgresSink::new(&PostgresConfig::new(url, sql)).map(|_| ());
        let sql = "INSERT INTO t VALUES (${topic})";
        assert!(new("postgres://u@h:5432/db", sql).is_ok());
        assert!(new("mysql://u@h/db", sql).unwrap_err().starts_with("url: "));
        assert_eq!(new("postgres:///db", sql).unwrap_err(), "url: no host");
        assert!(new("postgres://u@h/db?sslmode=require", sql)
            .unwrap_err()
            .contains("without TLS"));
        assert!(new("postgres://u@h/db", "VALUES ('${topic}')")
            .unwrap_err()
            .starts_with("sql: "));
        let mut config = PostgresConfig::new("postgres://u@h/db", sql);
        config.pool_size = 0;
        assert!(PostgresSink::new(&config).unwrap_err().starts_with("pool_size: "));
    }
}
