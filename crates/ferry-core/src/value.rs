//! Ferry's own `Value`, the logical column types, and the conversion of a
//! value read from one engine into the logical type of a target column.
//!
//! Two kinds of values flow through Ferry:
//! - *raw* values, exactly as a driver decoded them (SQLite gives only
//!   `Null`, `Int`, `Float`, `Text` and `Bytes`; PostgreSQL gives typed ones);
//! - *canonical* values, the result of [`convert`] into the logical type of
//!   the **target** column. Canonical values are what Ferry compares, hashes
//!   and writes. The rules are written down in `docs/canonical.md`.

use std::cmp::Ordering;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An exact decimal, kept as normalised text (see [`normalize_decimal`]).
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Json(Json),
    Date(NaiveDate),
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Uuid([u8; 16]),
}

/// A JSON value, compared parsed, and written as the text it was read
/// from when it was read as text: `{"a": 1}` and `{"a":1}` are equal, and
/// each is written as it is (a MariaDB JSON, PostgreSQL `json` or SQLite
/// TEXT column keeps the source's text byte for byte). A value that came
/// parsed (PostgreSQL `jsonb`, a number) is written compactly.
#[derive(Clone, Debug)]
pub struct Json {
    value: serde_json::Value,
    text: Option<String>,
}

impl Json {
    /// JSON text, kept as it is.
    pub fn from_text(text: &str) -> Result<Json, serde_json::Error> {
        Ok(Json {
            value: serde_json::from_str(text)?,
            text: Some(text.to_string()),
        })
    }

    /// The parsed value, which comparisons and hashes go by.
    pub fn value(&self) -> &serde_json::Value {
        &self.value
    }

    /// The text it was read from, if it was read as text.
    pub fn source_text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Json {
        Json { value, text: None }
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.value == other.value
    }
}

impl std::ops::Deref for Json {
    type Target = serde_json::Value;
    fn deref(&self) -> &serde_json::Value {
        &self.value
    }
}

/// The text written: the text read, or the compact serialization.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(t) => f.write_str(t),
            None => write!(f, "{}", self.value),
        }
    }
}

/// The logical type of a column, derived from its declared type by the
/// store that owns it. `Any` is SQLite's column without a declared type:
/// values keep whatever storage class they have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogicalType {
    Any,
    Bool,
    Int,
    Float,
    Decimal,
    Text,
    Bytes,
    Json,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
}

impl LogicalType {
    pub fn name(self) -> &'static str {
        match self {
            LogicalType::Any => "any",
            LogicalType::Bool => "bool",
            LogicalType::Int => "integer",
            LogicalType::Float => "float",
            LogicalType::Decimal => "decimal",
            LogicalType::Text => "text",
            LogicalType::Bytes => "bytes",
            LogicalType::Json => "json",
            LogicalType::Date => "date",
            LogicalType::Time => "time",
            LogicalType::Timestamp => "timestamp",
            LogicalType::TimestampTz => "timestamptz",
            LogicalType::Uuid => "uuid",
        }
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A column's logical type plus the limits the target enforces.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnType {
    pub logical: LogicalType,
    /// Longest text the column holds, in characters (`varchar(n)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u32>,
    /// Inclusive integer range (`smallint`, `tinyint unsigned`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int_range: Option<(i128, i128)>,
    /// 32 for single-precision floats (`real`, MySQL `FLOAT`): values are
    /// rounded to what the column keeps before they are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_bits: Option<u8>,
    /// `numeric(p, s)` / `decimal(p, s)`: at most `p` digits, `s` of them
    /// after the point. The engines round extra fractional digits away
    /// without an error, so a decimal that does not fit is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal_digits: Option<(u32, u32)>,
    /// SQLite's NUMERIC affinity (`DECIMAL`, `NUMERIC`): a decimal is stored
    /// as a 64-bit INTEGER when it is one, else as a REAL, which keeps 15
    /// significant digits; a decimal that needs more is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decimal_as_real: bool,
    /// Fractional-second digits a time or timestamp column keeps
    /// (`datetime(3)`, `timestamp(0)`; `None`: all six). Finer digits are
    /// cut off, as single-precision floats are rounded: the value is what
    /// the column keeps, and the stores write it that way (see [`fit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction_digits: Option<u8>,
    /// `CHAR(n)`: blank-padded, so trailing spaces are not part of the
    /// value and are dropped (see [`fit`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blank_padded: bool,
    /// A field of a document store (MongoDB): its values are typed BSON
    /// values in Ferry's Extended JSON form ([`crate::extjson`]), held as
    /// [`Value::Json`] with [`LogicalType::Json`], and compared by BSON
    /// type and representation (int32 7 is not int64 7).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extended_json: bool,
}

impl ColumnType {
    pub fn new(logical: LogicalType) -> Self {
        ColumnType {
            logical,
            max_chars: None,
            int_range: None,
            float_bits: None,
            decimal_digits: None,
            decimal_as_real: false,
            fraction_digits: None,
            blank_padded: false,
            extended_json: false,
        }
    }
}

/// A double rounded to single precision, written back as the shortest
/// double that prints the same (so 1.1 stays 1.1).
///
/// Near the largest single, that shortest text is beyond it (f32::MAX prints
/// as `3.4028235e38`, which a FLOAT column refuses as out of range): there
/// the exact single is kept.
pub fn round_to_single(f: f64) -> f64 {
    let single = f as f32;
    let shortest: f64 = format!("{single}").parse().unwrap_or(f);
    if single.is_finite() && shortest.abs() > f64::from(f32::MAX) {
        f64::from(single)
    } else {
        shortest
    }
}

/// Why a value cannot be converted to a target column's type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    pub message: String,
}

fn cannot(value: &Value, ty: &ColumnType, why: impl fmt::Display) -> ConvertError {
    ConvertError {
        message: format!(
            "the target column ({}) cannot hold {}: {why}",
            ty.logical,
            value.preview()
        ),
    }
}

/// Converts a raw value into the canonical value of a column of type `ty`.
/// This is the single place where engines meet: a value that cannot be
/// converted is the "target cannot hold it" error, raised at plan time.
pub fn convert(value: &Value, ty: &ColumnType) -> Result<Value, ConvertError> {
    let out = match (ty.logical, value) {
        (_, Value::Null) => Value::Null,
        (LogicalType::Json, v) if ty.extended_json => {
            Value::Json(crate::extjson::from_value(v).map_err(|e| cannot(v, ty, e))?.into())
        }
        (LogicalType::Any, v) => any_canonical(v),
        (LogicalType::Bool, v) => Value::Bool(to_bool(v).ok_or_else(|| cannot(v, ty, "not a boolean"))?),
        (LogicalType::Int, v) => Value::Int(to_int(v).ok_or_else(|| cannot(v, ty, "not an integer"))?),
        (LogicalType::Float, v) => {
            let f = to_float(v).ok_or_else(|| cannot(v, ty, "not a number"))?;
            let f = if ty.float_bits == Some(32) {
                round_to_single(f)
            } else {
                f
            };
            Value::Float(canonical_float(f))
        }
        (LogicalType::Decimal, v) => {
            Value::Decimal(to_decimal(v).ok_or_else(|| cannot(v, ty, "not a decimal number"))?)
        }
        (LogicalType::Text, v) => Value::Text(to_text(v).ok_or_else(|| cannot(v, ty, "not valid UTF-8 text"))?),
        (LogicalType::Bytes, v) => Value::Bytes(match v {
            Value::Bytes(b) => b.clone(),
            Value::Text(s) => s.as_bytes().to_vec(),
            other => return Err(cannot(other, ty, "not binary data")),
        }),
        (LogicalType::Json, v) => Value::Json(to_json(v).map_err(|e| cannot(v, ty, e))?),
        (LogicalType::Date, v) => Value::Date(to_date(v).ok_or_else(|| cannot(v, ty, "not a date (YYYY-MM-DD)"))?),
        (LogicalType::Time, v) => {
            Value::Time(to_time(v).ok_or_else(|| cannot(v, ty, "not a time (HH:MM:SS[.ffffff])"))?)
        }
        (LogicalType::Timestamp, v) => Value::Timestamp(
            to_timestamp(v).ok_or_else(|| cannot(v, ty, "not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])"))?,
        ),
        (LogicalType::TimestampTz, v) => {
            Value::TimestampTz(to_timestamptz(v).ok_or_else(|| cannot(v, ty, "not a timestamp with time zone"))?)
        }
        (LogicalType::Uuid, v) => Value::Uuid(to_uuid(v).ok_or_else(|| cannot(v, ty, "not a UUID"))?),
    };
    let out = fit_owned(out, ty);
    check_limits(&out, ty)?;
    Ok(out)
}

/// [`convert`] of an owned value: a value already of the column's kind is
/// moved, not copied (the common case when both sides share an engine).
pub fn convert_owned(value: Value, ty: &ColumnType) -> Result<Value, ConvertError> {
    let kept = matches!(
        (ty.logical, &value),
        (_, Value::Null)
            | (LogicalType::Int, Value::Int(_))
            | (LogicalType::Bytes, Value::Bytes(_))
            | (LogicalType::Bool, Value::Bool(_))
            | (LogicalType::Text, Value::Text(_))
            | (LogicalType::Any, Value::Int(_) | Value::Text(_) | Value::Bytes(_))
    ) && !ty.extended_json;
    if !kept {
        return convert(&value, ty);
    }
    let out = fit_owned(value, ty);
    check_limits(&out, ty)?;
    Ok(out)
}

/// A value of the column's logical type as the column keeps it: fractional
/// seconds cut to [`ColumnType::fraction_digits`], trailing spaces dropped
/// from a [`ColumnType::blank_padded`] text. [`convert`] applies it, and the
/// stores apply it to what they write, so what is stored is exactly what
/// Ferry compares (an engine that rounds instead of cutting never sees the
/// finer digits).
pub fn fit(value: &Value, ty: &ColumnType) -> Value {
    fit_owned(value.clone(), ty)
}

/// [`fit`] on an owned value: returns it as it is when nothing changes.
pub fn fit_owned(value: Value, ty: &ColumnType) -> Value {
    let cut = |nanos: u32| match ty.fraction_digits {
        Some(d) if d < 9 => {
            let unit = 10u32.pow(9 - u32::from(d));
            nanos / unit * unit
        }
        _ => nanos,
    };
    match &value {
        Value::Text(s) if ty.blank_padded && s.ends_with(' ') => Value::Text(s.trim_end_matches(' ').to_string()),
        Value::Time(t) if ty.fraction_digits.is_some() => {
            Value::Time(t.with_nanosecond(cut(t.nanosecond())).unwrap_or(*t))
        }
        Value::Timestamp(t) if ty.fraction_digits.is_some() => {
            Value::Timestamp(t.with_nanosecond(cut(t.nanosecond())).unwrap_or(*t))
        }
        Value::TimestampTz(t) if ty.fraction_digits.is_some() => {
            Value::TimestampTz(t.with_nanosecond(cut(t.nanosecond())).unwrap_or(*t))
        }
        _ => value,
    }
}

fn check_limits(value: &Value, ty: &ColumnType) -> Result<(), ConvertError> {
    if let Value::Decimal(d) = value {
        check_decimal(value, d, ty)?;
    }
    if let (Some(max), Value::Text(s)) = (ty.max_chars, value) {
        let n = s.chars().count();
        if n > max as usize {
            return Err(cannot(
                value,
                ty,
                format!("{n} characters, the column holds at most {max}"),
            ));
        }
    }
    if let (Some((lo, hi)), Value::Int(i)) = (ty.int_range, value) {
        let i = i128::from(*i);
        if i < lo || i > hi {
            return Err(cannot(value, ty, format!("out of range {lo}..={hi}")));
        }
    }
    Ok(())
}

/// Checks a normalised decimal against [`ColumnType::decimal_digits`] and
/// [`ColumnType::decimal_as_real`].
fn check_decimal(value: &Value, d: &str, ty: &ColumnType) -> Result<(), ConvertError> {
    let unsigned = d.trim_start_matches('-');
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let int_digits = int_part.trim_start_matches('0').len() as u32;
    let frac_digits = frac_part.len() as u32;
    if let Some((precision, scale)) = ty.decimal_digits {
        if frac_digits > scale {
            return Err(cannot(
                value,
                ty,
                format!("{frac_digits} digits after the point, the column keeps {scale}"),
            ));
        }
        if int_digits > precision.saturating_sub(scale) {
            return Err(cannot(
                value,
                ty,
                format!(
                    "{int_digits} digits before the point, the column holds at most {}",
                    precision.saturating_sub(scale)
                ),
            ));
        }
    }
    if ty.decimal_as_real && d.parse::<i64>().is_err() {
        let digits = format!("{int_part}{frac_part}");
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
        if significant > 15 {
            return Err(cannot(
                value,
                ty,
                format!(
                    "{significant} significant digits; SQLite keeps a DECIMAL or NUMERIC value as a 64-bit integer or a double (15 digits), so use a TEXT column for exact decimals"
                ),
            ));
        }
    }
    Ok(())
}

fn any_canonical(v: &Value) -> Value {
    match v {
        Value::Float(f) => Value::Float(canonical_float(*f)),
        other => other.clone(),
    }
}

fn canonical_float(f: f64) -> f64 {
    if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    }
}

fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Int(0) => Some(false),
        Value::Int(1) => Some(true),
        Value::Float(f) if *f == 0.0 => Some(false),
        Value::Float(f) if *f == 1.0 => Some(true),
        Value::Decimal(d) => match normalize_decimal(d)?.as_str() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        },
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
            "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        Value::Decimal(d) | Value::Text(d) => {
            let n = normalize_decimal(d.trim())?;
            n.parse().ok()
        }
        _ => None,
    }
}

fn to_float(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Decimal(d) | Value::Text(d) => d.trim().parse().ok(),
        _ => None,
    }
}

fn to_decimal(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(u8::from(*b).to_string()),
        Value::Float(f) if f.is_finite() => normalize_decimal(&format_float(*f)),
        Value::Decimal(d) | Value::Text(d) => normalize_decimal(d.trim()),
        _ => None,
    }
}

/// Normalises a decimal literal so that two literals are equal by value iff
/// their normal forms are equal strings: no `+`, no leading zeros, no
/// trailing fractional zeros, no exponent, `-0` is `0`. `None` when `s` is
/// not a decimal number.
pub fn normalize_decimal(s: &str) -> Option<String> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    if exp.unsigned_abs() > 10_000 {
        return None;
    }
    let digits: String = format!("{int_part}{frac_part}");
    // Position of the decimal point within `digits`.
    let point = int_part.len() as i64 + exp;
    let (int_digits, frac_digits) = if point <= 0 {
        (String::new(), format!("{}{}", "0".repeat((-point) as usize), digits))
    } else if point as usize >= digits.len() {
        (
            format!("{}{}", digits, "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_string(),
            digits[point as usize..].to_string(),
        )
    };
    let int_digits = int_digits.trim_start_matches('0');
    let frac_digits = frac_digits.trim_end_matches('0');
    let int_digits = if int_digits.is_empty() { "0" } else { int_digits };
    let mut out = String::new();
    if neg && !(int_digits == "0" && frac_digits.is_empty()) {
        out.push('-');
    }
    out.push_str(int_digits);
    if !frac_digits.is_empty() {
        out.push('.');
        out.push_str(frac_digits);
    }
    Some(out)
}

fn format_float(f: f64) -> String {
    // Rust's `Display` for f64 is the shortest representation that round-trips.
    format!("{f}")
}

fn to_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok()?,
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_float(*f),
        Value::Decimal(d) => d.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Json(j) => j.to_string(),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) | Value::Uuid(_) => {
            v.display_text()
        }
        Value::Null => return None,
    })
}

fn to_json(v: &Value) -> Result<Json, String> {
    match v {
        Value::Json(j) => Ok(j.clone()),
        // Text keeps its text, to be written as it is.
        Value::Text(s) => Json::from_text(s).map_err(|e| format!("invalid JSON ({e})")),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Json::from_text(s).map_err(|e| format!("invalid JSON ({e})")),
            Err(e) => Err(format!("invalid JSON ({e})")),
        },
        Value::Int(i) => Ok(serde_json::Value::from(*i).into()),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(|n| serde_json::Value::Number(n).into())
            .ok_or_else(|| "not a finite number".to_string()),
        Value::Bool(b) => Ok(serde_json::Value::Bool(*b).into()),
        _ => Err("not JSON".to_string()),
    }
}

fn to_date(v: &Value) -> Option<NaiveDate> {
    match v {
        Value::Date(d) => Some(*d),
        Value::Timestamp(t) if t.time() == NaiveTime::MIN => Some(t.date()),
        Value::Text(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok(),
        _ => None,
    }
}

fn truncate_micros_time(t: NaiveTime) -> NaiveTime {
    // Leap-second nanos (>= 1e9) fold into the last microsecond.
    let micros = (t.nanosecond() / 1_000).min(999_999);
    t.with_nanosecond(micros * 1_000).unwrap_or(t)
}

fn to_time(v: &Value) -> Option<NaiveTime> {
    match v {
        Value::Time(t) => Some(truncate_micros_time(*t)),
        Value::Text(s) => {
            let s = s.trim();
            NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                .ok()
                .map(truncate_micros_time)
        }
        _ => None,
    }
}

fn parse_naive_timestamp(s: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        })
}

fn parse_tz_timestamp(s: &str) -> Option<DateTime<Utc>> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.fZ",
        "%Y-%m-%dT%H:%M:%S%.fZ",
    ];
    DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| FORMATS.iter().find_map(|f| DateTime::parse_from_str(s, f).ok()))
        .map(|d| d.with_timezone(&Utc))
}

fn truncate_micros(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_time(truncate_micros_time(t.time()))
}

fn to_timestamp(v: &Value) -> Option<NaiveDateTime> {
    match v {
        Value::Timestamp(t) => Some(truncate_micros(*t)),
        Value::TimestampTz(t) => Some(truncate_micros(t.naive_utc())),
        Value::Date(d) => Some(d.and_time(NaiveTime::MIN)),
        Value::Text(s) => {
            let s = s.trim();
            parse_naive_timestamp(s)
                .or_else(|| parse_tz_timestamp(s).map(|t| t.naive_utc()))
                .map(truncate_micros)
        }
        _ => None,
    }
}

fn to_timestamptz(v: &Value) -> Option<DateTime<Utc>> {
    let naive = match v {
        Value::TimestampTz(t) => t.naive_utc(),
        // A timestamp without zone is taken as UTC.
        Value::Timestamp(t) => *t,
        Value::Text(s) => {
            let s = s.trim();
            parse_tz_timestamp(s)
                .map(|t| t.naive_utc())
                .or_else(|| parse_naive_timestamp(s))?
        }
        _ => return None,
    };
    Some(truncate_micros(naive).and_utc())
}

fn to_uuid(v: &Value) -> Option<[u8; 16]> {
    match v {
        Value::Uuid(u) => Some(*u),
        Value::Bytes(b) if b.len() == 16 => b.as_slice().try_into().ok(),
        Value::Text(s) => parse_uuid(s.trim()),
        _ => None,
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || (s.len() != 32 && s.len() != 36) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a person reads it (no quotes; bytes as hex preview).
    pub fn display_text(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Decimal(d) => d.clone(),
            Value::Text(s) => s.clone(),
            Value::Bytes(b) => format!(
                "<{} bytes {}>",
                b.len(),
                blake3::hash(b).to_hex().get(..12).unwrap_or("")
            ),
            Value::Json(j) => j.to_string(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Time(t) => t.format("%H:%M:%S%.f").to_string(),
            Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            Value::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%.f+00:00").to_string(),
            Value::Uuid(u) => format_uuid(u),
        }
    }

    /// A short, quoted preview for error messages.
    pub fn preview(&self) -> String {
        let text = self.display_text();
        let quoted = matches!(self, Value::Text(_) | Value::Decimal(_));
        let mut short: String = text.chars().take(40).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        if quoted {
            format!("{short:?}")
        } else {
            short
        }
    }

    /// The value as plain JSON for people and `--json` output (lossy for
    /// bytes, which become base64 strings; use [`Value::to_tagged`] to keep
    /// everything).
    pub fn to_plain_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or_else(|| J::String(format_float(*f)), J::Number),
            Value::Json(j) => j.value().clone(),
            Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
            other => J::String(other.display_text()),
        }
    }

    /// A lossless JSON encoding: `null` or `[tag, text]`. Used for the
    /// journal's row images and for saved plans.
    pub fn to_tagged(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let (tag, text) = match self {
            Value::Null => return J::Null,
            Value::Bool(b) => ("bool", b.to_string()),
            Value::Int(i) => ("int", i.to_string()),
            Value::Float(f) => ("float", format!("{:016x}", f.to_bits())),
            Value::Decimal(d) => ("dec", d.clone()),
            Value::Text(s) => ("text", s.clone()),
            Value::Bytes(b) => ("bytes", base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Json(j) => ("json", j.to_string()),
            Value::Date(_) => ("date", self.display_text()),
            Value::Time(_) => ("time", self.display_text()),
            Value::Timestamp(_) => ("ts", self.display_text()),
            Value::TimestampTz(t) => ("tstz", t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            Value::Uuid(_) => ("uuid", self.display_text()),
        };
        J::Array(vec![J::String(tag.into()), J::String(text)])
    }

    /// Inverse of [`Value::to_tagged`].
    pub fn from_tagged(j: &serde_json::Value) -> Option<Value> {
        if j.is_null() {
            return Some(Value::Null);
        }
        let arr = j.as_array()?;
        let tag = arr.first()?.as_str()?;
        let text = arr.get(1)?.as_str()?;
        Some(match tag {
            "bool" => Value::Bool(text.parse().ok()?),
            "int" => Value::Int(text.parse().ok()?),
            "float" => Value::Float(f64::from_bits(u64::from_str_radix(text, 16).ok()?)),
            "dec" => Value::Decimal(text.to_string()),
            "text" => Value::Text(text.to_string()),
            "bytes" => Value::Bytes(base64::engine::general_purpose::STANDARD.decode(text).ok()?),
            "json" => Value::Json(Json::from_text(text).ok()?),
            "date" => Value::Date(NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?),
            "time" => Value::Time(NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()?),
            "ts" => Value::Timestamp(NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?),
            "tstz" => Value::TimestampTz(DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc)),
            "uuid" => Value::Uuid(parse_uuid(text)?),
            _ => return None,
        })
    }

    /// Rank of the value's kind in key order: NULL, numbers, text, bytes,
    /// then the rest. This is SQLite's order and matches `ORDER BY` with a
    /// binary collation on every engine for the key types people use.
    fn kind_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 1,
            Value::Text(_) => 2,
            Value::Bytes(_) => 3,
            Value::Uuid(_) => 4,
            Value::Date(_) => 5,
            Value::Time(_) => 6,
            Value::Timestamp(_) => 7,
            Value::TimestampTz(_) => 8,
            Value::Json(_) => 9,
        }
    }

    /// Total order used to merge two key-ordered streams.
    pub fn key_cmp(&self, other: &Value) -> Ordering {
        let rank = self.kind_rank().cmp(&other.kind_rank());
        if rank != Ordering::Equal {
            return rank;
        }
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Time(a), Value::Time(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::TimestampTz(a), Value::TimestampTz(b)) => a.cmp(b),
            (Value::Null, Value::Null) => Ordering::Equal,
            (a, b) if a.kind_rank() == 1 => {
                let (x, y) = (to_float(a).unwrap_or(f64::NAN), to_float(b).unwrap_or(f64::NAN));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
            (a, b) => a.display_text().cmp(&b.display_text()),
        }
    }
}

/// Compares two keys column by column with [`Value::key_cmp`].
pub fn key_cmp(a: &[Value], b: &[Value]) -> Ordering {
    key_cmp_with(a, b, |_| false)
}

/// Compares two keys column by column as [`key_cmp`] does, except that two
/// `Json` values of a column for which `bson(column index)` holds (a column
/// with [`ColumnType::extended_json`]: a MongoDB field) compare in
/// MongoDB's BSON order ([`crate::extjson::bson_cmp`]), the order the
/// server sorts them in. Other JSON (an SQL JSON column) keeps its text
/// order, which the SQL stores' `ORDER BY` gives.
pub fn key_cmp_with(a: &[Value], b: &[Value], bson: impl Fn(usize) -> bool) -> Ordering {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let o = match (x, y) {
            (Value::Json(p), Value::Json(q)) if bson(i) => crate::extjson::bson_cmp(p.value(), q.value()),
            _ => x.key_cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// [`key_cmp_with`] for keys whose every column is a document field
/// (extended JSON): the MongoDB store's own order.
pub fn bson_key_cmp(a: &[Value], b: &[Value]) -> Ordering {
    key_cmp_with(a, b, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_the_column_would_round_or_cut_is_refused() {
        let numeric = ColumnType {
            decimal_digits: Some((6, 2)),
            ..ColumnType::new(LogicalType::Decimal)
        };
        let ok = |s: &str| convert(&Value::Text(s.into()), &numeric).map(|v| v.display_text());
        assert_eq!(ok("1234.50"), Ok("1234.5".into()));
        assert_eq!(ok("-0.01"), Ok("-0.01".into()));
        assert!(ok("1.234")
            .unwrap_err()
            .message
            .contains("3 digits after the point, the column keeps 2"));
        assert!(ok("12345.6")
            .unwrap_err()
            .message
            .contains("5 digits before the point, the column holds at most 4"));
        let sqlite = ColumnType {
            decimal_as_real: true,
            ..ColumnType::new(LogicalType::Decimal)
        };
        let real = |s: &str| convert(&Value::Text(s.into()), &sqlite);
        assert!(real("123456789012345.6").is_err(), "16 significant digits");
        assert!(real("12345678901234.5").is_ok(), "15 significant digits");
        assert!(real("9223372036854775807").is_ok(), "a 64-bit integer");
        assert!(real("100000000000000000000").is_ok(), "one significant digit");
    }

    #[test]
    fn values_are_fitted_to_what_the_column_keeps() {
        let seconds = ColumnType {
            fraction_digits: Some(0),
            ..ColumnType::new(LogicalType::Timestamp)
        };
        let at = convert(&Value::Text("2024-12-31 23:59:59.999999".into()), &seconds).unwrap();
        assert_eq!(at.display_text(), "2024-12-31 23:59:59", "cut, not rounded");
        let millis = ColumnType {
            fraction_digits: Some(3),
            ..ColumnType::new(LogicalType::Time)
        };
        let t = convert(&Value::Text("10:00:00.123456".into()), &millis).unwrap();
        assert_eq!(t.display_text(), "10:00:00.123");
        let char3 = ColumnType {
            blank_padded: true,
            max_chars: Some(3),
            ..ColumnType::new(LogicalType::Text)
        };
        assert_eq!(
            convert(&Value::Text("ab ".into()), &char3),
            Ok(Value::Text("ab".into()))
        );
        assert_eq!(
            convert(&Value::Text("abc  ".into()), &char3),
            Ok(Value::Text("abc".into()))
        );
        assert_eq!(convert(&Value::Text(" a".into()), &char3), Ok(Value::Text(" a".into())));
    }

    #[test]
    fn the_largest_single_stays_a_single() {
        let max = round_to_single(f64::from(f32::MAX));
        assert!(max <= f64::from(f32::MAX), "{max:e}");
        assert_eq!(max as f32, f32::MAX);
        assert_eq!(round_to_single(1.1), 1.1);
        assert_eq!(round_to_single(16_777_217.0), 16_777_216.0);
    }

    #[test]
    fn decimals_normalise_by_value() {
        for (input, want) in [
            ("1.50", "1.5"),
            ("001.0", "1"),
            ("-0.00", "0"),
            ("+12", "12"),
            ("1e3", "1000"),
            ("1.5E-3", "0.0015"),
            (".5", "0.5"),
            (
                "123456789012345678901234567890.000000000000000000001",
                "123456789012345678901234567890.000000000000000000001",
            ),
        ] {
            assert_eq!(normalize_decimal(input).as_deref(), Some(want), "{input}");
        }
        for bad in ["", "-", "1.2.3", "abc", "1e", "."] {
            assert_eq!(normalize_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_timestamps_convert_at_microsecond_precision() {
        let ty = ColumnType::new(LogicalType::Timestamp);
        let a = convert(&Value::Text("2024-05-01 10:00:00.1234567".into()), &ty).unwrap();
        let b = convert(&Value::Text("2024-05-01T10:00:00.123456".into()), &ty).unwrap();
        assert_eq!(a, b);
        let tz = ColumnType::new(LogicalType::TimestampTz);
        let c = convert(&Value::Text("2024-05-01T12:00:00+02:00".into()), &tz).unwrap();
        let d = convert(&Value::Text("2024-05-01 10:00:00".into()), &tz).unwrap();
        assert_eq!(c, d);
    }

    #[test]
    fn owned_conversion_equals_borrowed() {
        let mut ty = ColumnType::new(LogicalType::Text);
        ty.blank_padded = true;
        for (v, ty) in [
            (Value::Text("ab  ".into()), ty.clone()),
            (Value::Int(3), ColumnType::new(LogicalType::Int)),
            (Value::Text("7".into()), ColumnType::new(LogicalType::Int)),
            (Value::Null, ColumnType::new(LogicalType::Json)),
            (Value::Bytes(vec![1]), ColumnType::new(LogicalType::Any)),
        ] {
            assert_eq!(convert_owned(v.clone(), &ty), convert(&v, &ty), "{v:?}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut ty = ColumnType::new(LogicalType::Text);
        ty.max_chars = Some(3);
        assert!(convert(&Value::Text("héé".into()), &ty).is_ok());
        let err = convert(&Value::Text("héé!".into()), &ty).unwrap_err();
        assert!(err.message.contains("4 characters"), "{err}");
        let mut ty = ColumnType::new(LogicalType::Int);
        ty.int_range = Some((-128, 127));
        assert!(convert(&Value::Int(128), &ty).is_err());
    }

    #[test]
    fn tagged_round_trips() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(-0.1),
            Value::Decimal("12.5".into()),
            Value::Text("héllo 🦀\n\"NULL\"".into()),
            Value::Bytes(vec![0, 255, 10]),
            Value::Json(serde_json::json!({"b": [1, 2.5], "a": null}).into()),
            Value::Json(Json::from_text("{\"b\": [1,  2.50], \"a\": null}\n").unwrap()),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(1, 2, 3, 4)
                    .unwrap(),
            ),
            Value::TimestampTz(
                NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(1, 2, 3, 4)
                    .unwrap()
                    .and_utc(),
            ),
            Value::Uuid([7; 16]),
        ];
        for v in values {
            assert_eq!(Value::from_tagged(&v.to_tagged()), Some(v.clone()), "{v:?}");
            // JSON keeps its text too, not only its value.
            assert_eq!(
                Value::from_tagged(&v.to_tagged()).map(|v| v.display_text()),
                Some(v.display_text())
            );
        }
    }

    #[test]
    fn json_text_is_kept_and_compared_parsed() {
        let ty = ColumnType::new(LogicalType::Json);
        let spaced = convert(&Value::Text("{\"a\": 1}".into()), &ty).unwrap();
        let compact = convert(&Value::Bytes(b"{\"a\":1}".to_vec()), &ty).unwrap();
        assert_eq!(spaced, compact);
        assert_eq!(spaced.display_text(), "{\"a\": 1}");
        assert_eq!(compact.display_text(), "{\"a\":1}");
        // Converted again (into another JSON column, or text), the text stays.
        assert_eq!(convert(&spaced, &ty).unwrap().display_text(), "{\"a\": 1}");
        let text = convert(&spaced, &ColumnType::new(LogicalType::Text)).unwrap();
        assert_eq!(text, Value::Text("{\"a\": 1}".into()));
        // A value that came parsed is written compactly.
        assert_eq!(convert(&Value::Int(2), &ty).unwrap().display_text(), "2");
        let parsed = Value::Json(serde_json::json!({"a": 1}).into());
        assert_eq!(parsed.display_text(), "{\"a\":1}");
        assert_eq!(parsed, spaced);
    }
}
