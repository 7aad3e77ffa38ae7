//! Ferry's text form of typed document values (BSON, from MongoDB stores):
//! MongoDB Extended JSON v2, canonical mode, except that an int32 is a
//! plain JSON integer. Pure: the store maps BSON to and from this form,
//! the core compares, hashes and shows it as a [`crate::value::Json`].
//!
//! Every value has exactly one form, so comparing the forms compares the
//! values by BSON type and representation: int32 `7`, int64
//! `{"$numberLong":"7"}` and double `{"$numberDouble":"7.0"}` differ,
//! Decimal128 `{"$numberDecimal":"1.10"}` and `"1.1"` differ, `-0.0`
//! differs from `0.0`, and every NaN is `{"$numberDouble":"NaN"}`. Field
//! order in an embedded document does not count (the canonical encoding
//! sorts keys) but is kept as the source wrote it. The rules are in
//! `docs/canonical.md`.

use std::cmp::Ordering;

use serde_json::{json, Map, Value as J};

use crate::value::Value;

/// The text of a double in `{"$numberDouble": ...}`: `NaN`, `Infinity`,
/// `-Infinity`, or the shortest text that reads back to the same bits
/// (`7.0`, `-0.0`, `1e300`).
pub fn double_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{f:?}")
    }
}

/// Parses the text of a `$numberDouble`.
pub fn parse_double(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// A double in Ferry's form.
pub fn double(f: f64) -> J {
    json!({ "$numberDouble": double_text(f) })
}

/// A 64-bit integer in Ferry's form (always `$numberLong`: an int64 stays
/// an int64 whatever its value).
pub fn int64(i: i64) -> J {
    json!({ "$numberLong": i.to_string() })
}

/// A BSON date (milliseconds since the epoch, UTC).
pub fn date_millis(ms: i64) -> J {
    json!({ "$date": { "$numberLong": ms.to_string() } })
}

/// Reads a value a person wrote (an `--id` key part, a draft value) as
/// Ferry's form: JSON text is read as Extended JSON (`7` is an int32,
/// `"7"` a string, `{"$oid": "..."}` an ObjectId); text that is not JSON
/// is a string.
pub fn from_user_text(text: &str) -> Result<J, String> {
    match serde_json::from_str::<J>(text) {
        Ok(j) => normalize(&j),
        Err(_) => Ok(J::String(text.to_string())),
    }
}

/// A Ferry value in this form (a value of another store or a stamp):
/// integers in the int32 range are int32, wider ones int64; floats are
/// doubles; decimals Decimal128; timestamps BSON dates (milliseconds);
/// bytes binary subtype 0; UUIDs binary subtype 4; NULL stays NULL.
pub fn from_value(v: &Value) -> Result<J, String> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => int(*i),
        Value::Float(f) => double(*f),
        Value::Decimal(d) => json!({ "$numberDecimal": d }),
        Value::Text(s) => return from_user_text(s),
        Value::Bytes(b) => json!({ "$binary": { "base64": b64(b), "subType": "00" } }),
        Value::Uuid(u) => json!({ "$binary": { "base64": b64(u), "subType": "04" } }),
        Value::Json(j) => return normalize(j.value()),
        Value::TimestampTz(t) => date_millis(t.timestamp_millis()),
        Value::Timestamp(t) => date_millis(t.and_utc().timestamp_millis()),
        Value::Date(d) => date_millis(d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis())),
        Value::Time(_) => return Err("a time of day has no BSON type".into()),
    })
}

fn int(i: i64) -> J {
    match i32::try_from(i) {
        Ok(small) => J::from(small),
        Err(_) => int64(i),
    }
}

/// Brings Extended JSON (canonical or relaxed) to Ferry's one form: plain
/// integers are int32 when they fit, else int64; plain fractions are
/// doubles; `$numberInt` becomes a plain integer; `$numberLong`,
/// `$numberDouble` and `$date` get their one text. Other `$` forms are
/// kept as written.
pub fn normalize(j: &J) -> Result<J, String> {
    Ok(match j {
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                int(i)
            } else if let Some(f) = n.as_f64() {
                if n.is_u64() {
                    return Err(format!("{n} is beyond a 64-bit integer"));
                }
                double(f)
            } else {
                return Err(format!("{n} is not a number BSON holds"));
            }
        }
        J::Array(items) => J::Array(items.iter().map(normalize).collect::<Result<_, _>>()?),
        J::Object(map) => {
            let one = |k: &str| map.len() == 1 && map.contains_key(k);
            let text = |k: &str| map.get(k).and_then(J::as_str);
            if one("$numberInt") {
                let s = text("$numberInt").ok_or("$numberInt takes a string")?;
                let i: i32 = s.parse().map_err(|_| format!("`{s}` is not an int32"))?;
                J::from(i)
            } else if one("$numberLong") {
                let s = text("$numberLong").ok_or("$numberLong takes a string")?;
                let i: i64 = s.parse().map_err(|_| format!("`{s}` is not an int64"))?;
                int64(i)
            } else if one("$numberDouble") {
                let s = text("$numberDouble").ok_or("$numberDouble takes a string")?;
                double(parse_double(s).ok_or_else(|| format!("`{s}` is not a double"))?)
            } else if one("$date") {
                let d = &map["$date"];
                let ms = match d {
                    J::Object(_) => match normalize(d)? {
                        J::Object(m) => m
                            .get("$numberLong")
                            .and_then(J::as_str)
                            .and_then(|s| s.parse::<i64>().ok())
                            .ok_or("$date takes {\"$numberLong\": \"MILLISECONDS\"}")?,
                        J::Number(n) => n.as_i64().ok_or("$date takes milliseconds")?,
                        _ => return Err("$date takes {\"$numberLong\": \"MILLISECONDS\"}".into()),
                    },
                    J::Number(n) => n.as_i64().ok_or("$date takes whole milliseconds")?,
                    J::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                        .map_err(|e| format!("`{s}` is not an ISO-8601 date ({e})"))?
                        .timestamp_millis(),
                    _ => return Err("$date takes a date".into()),
                };
                date_millis(ms)
            } else if map.keys().next().is_some_and(|k| k.starts_with('$')) {
                // Other typed values ($oid, $binary, $timestamp, ...) are
                // already in their one canonical form.
                j.clone()
            } else {
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), normalize(v)?);
                }
                J::Object(out)
            }
        }
        other => other.clone(),
    })
}

/// MongoDB's order of BSON types (its canonical type ranks), for the
/// first comparison of two values: MinKey < undefined < null < numbers <
/// strings (and symbols) < documents < arrays < binary < ObjectId < bool <
/// date < timestamp < regex < DBPointer < code < code with scope < MaxKey.
fn type_rank(j: &J) -> u8 {
    match j {
        J::Null => 2,
        J::Number(_) => 3,
        J::String(_) => 4,
        J::Array(_) => 6,
        J::Bool(_) => 9,
        J::Object(m) => match m.keys().next().map(String::as_str) {
            Some("$minKey") => 0,
            Some("$undefined") => 1,
            Some("$numberLong" | "$numberDouble" | "$numberDecimal" | "$numberInt") => 3,
            Some("$symbol") => 4,
            Some("$binary") => 7,
            Some("$oid") => 8,
            Some("$date") => 10,
            Some("$timestamp") => 11,
            Some("$regularExpression") => 12,
            Some("$dbPointer") => 13,
            Some("$code") if m.contains_key("$scope") => 15,
            Some("$code") => 14,
            Some("$maxKey") => 16,
            _ => 5,
        },
    }
}

/// Compares two values of Ferry's form in MongoDB's BSON sort order: by
/// type rank ([`type_rank`]), then numbers by value across int32, int64,
/// double and Decimal128 (NaN below every other number), strings by
/// UTF-8 bytes (no collation), documents field by field (type, name,
/// value) with their fields sorted by name (field order does not make two
/// documents different in Ferry, so it does not order them either),
/// arrays element by element, binaries by length, subtype then bytes,
/// ObjectIds by bytes, dates and timestamps by time, regexes by pattern
/// then options. Values the server holds equal but Ferry does not (int32
/// `7` and int64 `7`, Decimal128 `1.10` and `1.1`, `-0.0` and `0.0`) are
/// ordered by their number type (int32, int64, double, Decimal128), then
/// their text: a total order whose `Equal` is exactly Ferry's equality.
pub fn bson_cmp(a: &J, b: &J) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    let text = |j: &J, k: &str| j.get(k).and_then(J::as_str).unwrap_or_default().to_string();
    match (a, b) {
        (J::Null, J::Null) => Ordering::Equal,
        (J::Bool(x), J::Bool(y)) => x.cmp(y),
        (J::String(x), J::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (J::Array(x), J::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = bson_cmp(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => match ra {
            3 => number_cmp(a, b),
            4 => symbol_text(a).as_bytes().cmp(symbol_text(b).as_bytes()),
            5 => document_cmp(a, b),
            7 => binary(a)
                .cmp(&binary(b))
                .then_with(|| a.to_string().cmp(&b.to_string())),
            8 => text(a, "$oid")
                .to_ascii_lowercase()
                .cmp(&text(b, "$oid").to_ascii_lowercase())
                .then_with(|| a.to_string().cmp(&b.to_string())),
            10 => date_of(a)
                .cmp(&date_of(b))
                .then_with(|| a.to_string().cmp(&b.to_string())),
            11 => {
                let ts = |j: &J| {
                    let t = j.get("$timestamp");
                    let n = |k: &str| t.and_then(|t| t.get(k)).and_then(J::as_u64).unwrap_or(0);
                    (n("t"), n("i"))
                };
                ts(a).cmp(&ts(b)).then_with(|| a.to_string().cmp(&b.to_string()))
            }
            12 => {
                let re = |j: &J| {
                    let r = j.get("$regularExpression");
                    let s = |k: &str| {
                        r.and_then(|r| r.get(k))
                            .and_then(J::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    (s("pattern"), s("options"))
                };
                re(a).cmp(&re(b)).then_with(|| a.to_string().cmp(&b.to_string()))
            }
            _ => a.to_string().cmp(&b.to_string()),
        },
    }
}

/// The text of a string or a `{"$symbol": ...}`.
fn symbol_text(j: &J) -> &str {
    match j {
        J::String(s) => s,
        _ => j.get("$symbol").and_then(J::as_str).unwrap_or_default(),
    }
}

/// A binary's (length, subtype, bytes), MongoDB's order of binaries.
fn binary(j: &J) -> (usize, u8, Vec<u8>) {
    use base64::Engine as _;
    let b = j.get("$binary");
    let bytes = b
        .and_then(|b| b.get("base64"))
        .and_then(J::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default();
    let sub = b
        .and_then(|b| b.get("subType"))
        .and_then(J::as_str)
        .and_then(|s| u8::from_str_radix(s, 16).ok())
        .unwrap_or(0);
    (bytes.len(), sub, bytes)
}

/// A date's milliseconds.
fn date_of(j: &J) -> i64 {
    match normalize(j) {
        Ok(n) => n
            .get("$date")
            .and_then(|d| d.get("$numberLong"))
            .and_then(J::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Documents field by field, their fields sorted by name: each pair by
/// its value's type rank, then name, then value; a shorter document
/// (a prefix of the other) first.
fn document_cmp(a: &J, b: &J) -> Ordering {
    fn sorted(j: &J) -> Vec<(&String, &J)> {
        let mut f: Vec<(&String, &J)> = j.as_object().map(|m| m.iter().collect()).unwrap_or_default();
        f.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
        f
    }
    let (x, y) = (sorted(a), sorted(b));
    for ((ka, va), (kb, vb)) in x.iter().zip(&y) {
        let o = type_rank(va)
            .cmp(&type_rank(vb))
            .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
            .then_with(|| bson_cmp(va, vb));
        if o != Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

/// A number of Ferry's form, for comparing by value.
enum Num {
    Int(i64),
    Double(f64),
    /// Decimal128 text.
    Decimal(String),
}

impl Num {
    fn of(j: &J) -> (Num, u8) {
        let text = |k: &str| j.get(k).and_then(J::as_str).unwrap_or_default();
        match j {
            J::Number(n) => match n.as_i64() {
                Some(i) => (Num::Int(i), 0),
                None => (Num::Double(n.as_f64().unwrap_or(f64::NAN)), 2),
            },
            _ if j.get("$numberInt").is_some() => (Num::Int(text("$numberInt").parse().unwrap_or(0)), 0),
            _ if j.get("$numberLong").is_some() => (Num::Int(text("$numberLong").parse().unwrap_or(0)), 1),
            _ if j.get("$numberDouble").is_some() => {
                (Num::Double(parse_double(text("$numberDouble")).unwrap_or(f64::NAN)), 2)
            }
            _ => (Num::Decimal(text("$numberDecimal").to_string()), 3),
        }
    }

    fn is_nan(&self) -> bool {
        match self {
            Num::Int(_) => false,
            Num::Double(f) => f.is_nan(),
            Num::Decimal(s) => Exact::parse(s).is_none(),
        }
    }

    /// A nearby double (exact for int32, doubles, and integers up to
    /// 2^53): rounding keeps order, so two numbers whose doubles differ are
    /// ordered by them.
    fn approx(&self) -> f64 {
        match self {
            Num::Int(i) => *i as f64,
            Num::Double(f) => *f,
            Num::Decimal(s) => match Exact::parse(s) {
                Some(Exact::Inf(neg)) => {
                    if neg {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    }
                }
                _ => s.to_ascii_lowercase().replace("e+", "e").parse().unwrap_or(f64::NAN),
            },
        }
    }

    fn exact(&self) -> Option<Exact> {
        match self {
            Num::Int(i) => Exact::parse(&i.to_string()),
            Num::Double(f) if f.is_infinite() => Some(Exact::Inf(*f < 0.0)),
            // Every finite double is a decimal of at most 767 significant
            // digits: written with 800, exactly.
            Num::Double(f) => Exact::parse(&format!("{f:.800e}")),
            Num::Decimal(s) => Exact::parse(s),
        }
    }
}

/// Two numbers by value (NaN below all, equal to NaN), then by number type
/// and text.
fn number_cmp(a: &J, b: &J) -> Ordering {
    let ((x, tx), (y, ty)) = (Num::of(a), Num::of(b));
    let by_value = match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => match (&x, &y) {
            (Num::Int(p), Num::Int(q)) => p.cmp(q),
            _ => {
                let (p, q) = (x.approx(), y.approx());
                match p.partial_cmp(&q) {
                    Some(Ordering::Equal) | None => match (x.exact(), y.exact()) {
                        (Some(p), Some(q)) => p.cmp(&q),
                        _ => Ordering::Equal,
                    },
                    Some(o) => o,
                }
            }
        },
    };
    by_value
        .then(tx.cmp(&ty))
        .then_with(|| a.to_string().cmp(&b.to_string()))
}

/// A number's exact value: ±infinity, or a sign, significant digits (no
/// leading or trailing zeros; none for zero) and the power of ten of the
/// first one.
#[derive(PartialEq, Eq, Debug)]
enum Exact {
    Inf(bool),
    Finite { neg: bool, digits: Vec<u8>, exp: i64 },
}

impl Exact {
    /// Reads `-12.50E+3`, `1e-7`, `Infinity`, ...; `None` for NaN or text
    /// that is not a number.
    fn parse(s: &str) -> Option<Exact> {
        let (neg, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if rest.eq_ignore_ascii_case("infinity") || rest.eq_ignore_ascii_case("inf") {
            return Some(Exact::Inf(neg));
        }
        let (mantissa, e) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].trim_start_matches('+').parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|c| c - b'0').collect();
        let lead = all.iter().take_while(|&&d| d == 0).count();
        let mut digits = all[lead..].to_vec();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        let exp = e + int.len() as i64 - lead as i64;
        Some(Exact::Finite { neg, digits, exp })
    }

    fn cmp(&self, other: &Exact) -> Ordering {
        // (class, magnitude order) with -inf < negatives < zero < positives < +inf.
        let class = |x: &Exact| match x {
            Exact::Inf(true) => 0,
            Exact::Finite { neg: true, digits, .. } if !digits.is_empty() => 1,
            Exact::Finite { digits, .. } if digits.is_empty() => 2,
            Exact::Finite { .. } => 3,
            Exact::Inf(false) => 4,
        };
        let (ca, cb) = (class(self), class(other));
        if ca != cb || ca != 1 && ca != 3 {
            return ca.cmp(&cb);
        }
        let (
            Exact::Finite {
                digits: da, exp: ea, ..
            },
            Exact::Finite {
                digits: db, exp: eb, ..
            },
        ) = (self, other)
        else {
            return Ordering::Equal;
        };
        let magnitude = ea.cmp(eb).then_with(|| da.cmp(db));
        if ca == 1 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_type_has_one_form() {
        assert_eq!(normalize(&json!(7)).unwrap(), json!(7));
        assert_eq!(normalize(&json!({"$numberInt": "7"})).unwrap(), json!(7));
        assert_eq!(normalize(&json!(5_000_000_000i64)).unwrap(), int64(5_000_000_000));
        assert_eq!(normalize(&json!({"$numberLong": "7"})).unwrap(), int64(7));
        assert_ne!(normalize(&json!(7)).unwrap(), int64(7));
        assert_eq!(normalize(&json!(7.0)).unwrap(), double(7.0));
        assert_eq!(double(-0.0), json!({"$numberDouble": "-0.0"}));
        assert_ne!(double(-0.0), double(0.0));
        assert_eq!(double(f64::NAN), json!({"$numberDouble": "NaN"}));
        assert_eq!(parse_double(&double_text(1e300)), Some(1e300));
        assert_eq!(
            normalize(&json!({"$date": "1970-01-01T00:00:01Z"})).unwrap(),
            date_millis(1000)
        );
    }

    #[test]
    fn user_text_is_extended_json_or_a_string() {
        assert_eq!(from_user_text("7").unwrap(), json!(7));
        assert_eq!(from_user_text("\"7\"").unwrap(), json!("7"));
        assert_eq!(from_user_text("abc").unwrap(), json!("abc"));
        let oid = json!({"$oid": "64b000000000000000000001"});
        assert_eq!(from_user_text(&oid.to_string()).unwrap(), oid);
    }

    fn f(text: &str) -> J {
        from_user_text(text).expect("extended JSON")
    }

    #[test]
    fn bson_order_ranks_types_then_values() {
        // Ascending, as MongoDB sorts them.
        let sorted = [
            r#"{"$minKey": 1}"#,
            "null",
            r#"{"$numberDouble": "NaN"}"#,
            r#"{"$numberDouble": "-Infinity"}"#,
            r#"{"$numberDecimal": "-1E+400"}"#,
            r#"{"$numberLong": "-9223372036854775808"}"#,
            "-3",
            r#"{"$numberDouble": "-2.5"}"#,
            "0",
            r#"{"$numberDouble": "-0.0"}"#,
            r#"{"$numberDouble": "0.0"}"#,
            r#"{"$numberDecimal": "0.1"}"#,
            r#"{"$numberDouble": "0.1"}"#,
            r#"{"$numberDecimal": "1.1"}"#,
            r#"{"$numberDecimal": "1.10"}"#,
            "7",
            r#"{"$numberLong": "7"}"#,
            r#"{"$numberDouble": "7.0"}"#,
            r#"{"$numberDecimal": "7"}"#,
            "9",
            "10",
            r#"{"$numberDouble": "9007199254740992.0"}"#,
            r#"{"$numberLong": "9007199254740993"}"#,
            r#"{"$numberLong": "9223372036854775807"}"#,
            r#"{"$numberDouble": "9.223372036854776e18"}"#,
            r#"{"$numberDecimal": "1E+400"}"#,
            r#"{"$numberDouble": "Infinity"}"#,
            r#""""#,
            r#"" x""#,
            r#""10""#,
            r#""9""#,
            r#""Z""#,
            r#""a""#,
            r#""é""#,
            "{}",
            r#"{"a": 1}"#,
            r#"{"b": 1, "a": 1}"#,
            r#"{"b": 0}"#,
            r#"{"a": "x"}"#,
            "[]",
            "[1, 2]",
            r#"[1, "a"]"#,
            r#"{"$binary": {"base64": "/w==", "subType": "00"}}"#,
            r#"{"$binary": {"base64": "AA==", "subType": "04"}}"#,
            r#"{"$binary": {"base64": "AAA=", "subType": "00"}}"#,
            r#"{"$oid": "000000000000000000000001"}"#,
            r#"{"$oid": "64b000000000000000000001"}"#,
            "false",
            "true",
            r#"{"$date": {"$numberLong": "-1"}}"#,
            r#"{"$date": {"$numberLong": "1000"}}"#,
            r#"{"$timestamp": {"t": 1, "i": 9}}"#,
            r#"{"$timestamp": {"t": 2, "i": 0}}"#,
            r#"{"$regularExpression": {"pattern": "a", "options": ""}}"#,
            r#"{"$maxKey": 1}"#,
        ];
        let values: Vec<J> = sorted.iter().map(|t| f(t)).collect();
        for (i, a) in values.iter().enumerate() {
            for (k, b) in values.iter().enumerate() {
                assert_eq!(bson_cmp(a, b), i.cmp(&k), "{a} against {b}");
            }
        }
    }

    #[test]
    fn bson_order_is_equal_exactly_when_ferry_is() {
        let a = f(r#"{"z": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}}"#);
        let b = f(r#"{"a": {"x": null, "y": [1, {"p": 3, "q": 2}]}, "z": 1}"#);
        assert_eq!(a, b);
        assert_eq!(bson_cmp(&a, &b), Ordering::Equal);
        let nan = f(r#"{"$numberDouble": "NaN"}"#);
        assert_eq!(bson_cmp(&nan, &nan), Ordering::Equal);
        let dnan = f(r#"{"$numberDecimal": "NaN"}"#);
        assert_eq!(bson_cmp(&nan, &dnan), Ordering::Less);
        assert_eq!(bson_cmp(&dnan, &f("-1")), Ordering::Less);
    }
}
