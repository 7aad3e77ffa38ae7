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
}
