//! BSON to and from Ferry's values: a document field is a
//! [`Value::Json`] in Ferry's Extended JSON form
//! ([`ferry_core::extjson`]), an absent field is [`Value::Null`]; the
//! fields of Ferry's own `_ferry_*` collections are plain strings,
//! 64-bit integers and binaries, typed by their record schema.
//!
//! Both directions are written here (not through the driver's Extended
//! JSON parser), so a value read and written back is the same BSON: the
//! same type, the same bits, embedded fields in the same order.

use base64::Engine as _;
use ferry_core::extjson;
use ferry_core::value::{ColumnType, LogicalType};
use ferry_core::Value;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{self, Bson, Document};
use serde_json::{json, Map, Value as J};

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A BSON value in Ferry's Extended JSON form.
pub fn to_json(b: &Bson) -> J {
    match b {
        Bson::Int32(i) => J::from(*i),
        Bson::String(s) => J::String(s.clone()),
        Bson::Boolean(x) => J::Bool(*x),
        Bson::Null => J::Null,
        Bson::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Bson::Document(d) => J::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Bson::Int64(i) => extjson::int64(*i),
        Bson::Double(f) => extjson::double(*f),
        Bson::DateTime(d) => extjson::date_millis(d.timestamp_millis()),
        Bson::Decimal128(d) => json!({ "$numberDecimal": d.to_string() }),
        Bson::ObjectId(o) => json!({ "$oid": o.to_hex() }),
        Bson::Binary(bin) => json!({ "$binary": {
            "base64": b64().encode(&bin.bytes),
            "subType": format!("{:02x}", u8::from(bin.subtype)),
        }}),
        Bson::RegularExpression(r) => json!({ "$regularExpression": {
            "pattern": r.pattern,
            "options": r.options,
        }}),
        Bson::Timestamp(t) => json!({ "$timestamp": { "t": t.time, "i": t.increment } }),
        // Symbols, code, MinKey/MaxKey, undefined, DBPointer: the driver's
        // canonical Extended JSON, which its parser reads back.
        other => other.clone().into_canonical_extjson(),
    }
}

/// Ferry's Extended JSON form back to BSON (the inverse of [`to_json`]).
pub fn from_json(j: &J) -> Result<Bson, String> {
    Ok(match j {
        J::Null => Bson::Null,
        J::Bool(b) => Bson::Boolean(*b),
        J::String(s) => Bson::String(s.clone()),
        J::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(small) => Bson::Int32(small),
                Err(_) => Bson::Int64(i),
            },
            None => Bson::Double(n.as_f64().ok_or_else(|| format!("{n} is not a number BSON holds"))?),
        },
        J::Array(items) => Bson::Array(items.iter().map(from_json).collect::<Result<_, _>>()?),
        J::Object(map) => typed(map)?.map_or_else(|| document(map).map(Bson::Document), Ok)?,
    })
}

/// An embedded document, its fields in the order given.
fn document(map: &Map<String, J>) -> Result<Document, String> {
    let mut d = Document::new();
    for (k, v) in map {
        d.insert(k.clone(), from_json(v)?);
    }
    Ok(d)
}

/// A typed value (`{"$oid": ...}`, ...), or `None` for a plain document.
fn typed(map: &Map<String, J>) -> Result<Option<Bson>, String> {
    let Some(first) = map.keys().next() else {
        return Ok(None);
    };
    if !first.starts_with('$') {
        return Ok(None);
    }
    let text = |k: &str| {
        map.get(k)
            .and_then(J::as_str)
            .ok_or_else(|| format!("`{k}` takes a string"))
    };
    let sub = |k: &str| {
        map.get(k)
            .and_then(J::as_object)
            .ok_or_else(|| format!("`{k}` takes a document"))
    };
    Ok(Some(match first.as_str() {
        "$oid" => Bson::ObjectId(bson::oid::ObjectId::parse_str(text("$oid")?).map_err(|e| e.to_string())?),
        "$numberLong" => Bson::Int64(text("$numberLong")?.parse().map_err(|e| format!("$numberLong: {e}"))?),
        "$numberInt" => Bson::Int32(text("$numberInt")?.parse().map_err(|e| format!("$numberInt: {e}"))?),
        "$numberDouble" => {
            let s = text("$numberDouble")?;
            Bson::Double(extjson::parse_double(s).ok_or_else(|| format!("`{s}` is not a double"))?)
        }
        "$numberDecimal" => {
            let s = text("$numberDecimal")?;
            Bson::Decimal128(s.parse().map_err(|e| format!("`{s}` is not a Decimal128: {e}"))?)
        }
        "$date" => match extjson::normalize(&J::Object(map.clone()))? {
            J::Object(m) => {
                let ms = m
                    .get("$date")
                    .and_then(|d| d.get("$numberLong"))
                    .and_then(J::as_str)
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or("$date takes milliseconds")?;
                Bson::DateTime(bson::DateTime::from_millis(ms))
            }
            _ => return Err("$date takes milliseconds".into()),
        },
        "$binary" => {
            let b = sub("$binary")?;
            let bytes = b
                .get("base64")
                .and_then(J::as_str)
                .ok_or("$binary takes base64")
                .and_then(|s| b64().decode(s).map_err(|_| "$binary: bad base64"))?;
            let st = b.get("subType").and_then(J::as_str).ok_or("$binary takes a subType")?;
            let st = u8::from_str_radix(st, 16).map_err(|_| format!("`{st}` is not a binary subtype"))?;
            Bson::Binary(bson::Binary {
                subtype: BinarySubtype::from(st),
                bytes,
            })
        }
        "$regularExpression" => {
            let r = sub("$regularExpression")?;
            let s = |k: &str| r.get(k).and_then(J::as_str).map(str::to_string).unwrap_or_default();
            // Built field by field: the options stay as they were read.
            Bson::RegularExpression(bson::Regex {
                pattern: s("pattern"),
                options: s("options"),
            })
        }
        "$timestamp" => {
            let t = sub("$timestamp")?;
            let n = |k: &str| {
                t.get(k)
                    .and_then(J::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(format!("$timestamp takes `{k}`"))
            };
            Bson::Timestamp(bson::Timestamp {
                time: n("t")?,
                increment: n("i")?,
            })
        }
        _ => Bson::try_from(J::Object(map.clone())).map_err(|e| e.to_string())?,
    }))
}

/// The value of a field read from a document (`None`: absent).
pub fn decode(b: Option<&Bson>, ty: &ColumnType) -> Result<Value, String> {
    let Some(b) = b else { return Ok(Value::Null) };
    if ty.extended_json {
        return Ok(Value::Json(to_json(b).into()));
    }
    Ok(match (ty.logical, b) {
        (_, Bson::Null) => Value::Null,
        (LogicalType::Int, Bson::Int64(i)) => Value::Int(*i),
        (LogicalType::Int, Bson::Int32(i)) => Value::Int(i64::from(*i)),
        (LogicalType::Bytes, Bson::Binary(bin)) => Value::Bytes(bin.bytes.clone()),
        (LogicalType::Text, Bson::String(s)) => Value::Text(s.clone()),
        (LogicalType::Bool, Bson::Boolean(x)) => Value::Bool(*x),
        (l, other) => return Err(format!("holds {other} where Ferry keeps a {l}")),
    })
}

/// The BSON a value is written as (`None`: leave the field absent).
pub fn encode(v: &Value, ty: &ColumnType) -> Result<Option<Bson>, String> {
    if v.is_null() {
        return Ok((!ty.extended_json).then_some(Bson::Null));
    }
    if ty.extended_json {
        return from_json(&extjson::from_value(v)?).map(Some);
    }
    Ok(Some(match v {
        Value::Int(i) => Bson::Int64(*i),
        Value::Bytes(b) => Bson::Binary(bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes: b.clone(),
        }),
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Text(s) => Bson::String(s.clone()),
        other => Bson::String(other.display_text()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bson_type_reads_back_as_it_was() {
        let doc = bson::doc! {
            "s": "é😀", "i32": 7i32, "i64": 7i64, "d": 7.0f64, "negzero": -0.0f64,
            "nan": f64::NAN, "dec": Bson::Decimal128("1.10".parse().unwrap()),
            "b": true, "date": bson::DateTime::from_millis(1_700_000_000_123),
            "ts": bson::Timestamp { time: 5, increment: 9 },
            "bin": bson::Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![0, 1, 255] },
            "null": Bson::Null, "arr": [1i32, "x", {"z": 1i32, "a": 2i32}],
            "re": bson::Regex { pattern: "^a".into(), options: "mi".into() },
            "oid": bson::oid::ObjectId::parse_str("64b000000000000000000001").unwrap(),
            "min": Bson::MinKey,
        };
        for (k, v) in &doc {
            let j = to_json(v);
            let back = from_json(&j).unwrap_or_else(|e| panic!("{k}: {e}"));
            let (a, b) = (bson::doc! {"v": v.clone()}, bson::doc! {"v": back});
            assert_eq!(bson::to_vec(&a).unwrap(), bson::to_vec(&b).unwrap(), "{k}: {j}");
        }
        assert_ne!(to_json(&Bson::Int32(7)), to_json(&Bson::Int64(7)));
        assert_ne!(
            to_json(&Bson::Decimal128("1.10".parse().unwrap())),
            to_json(&Bson::Decimal128("1.1".parse().unwrap()))
        );
    }
}
