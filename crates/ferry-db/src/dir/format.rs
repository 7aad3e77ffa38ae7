//! The file format of a directory store (`docs/dir-format.md`): a row as
//! canonical JSON text (sorted column names, two-space indent, each value on
//! one line, one trailing newline), the typed encoding of values JSON cannot
//! carry exactly, and the file name of a row's key.

use ferry_core::schema::TableSchema;
use ferry_core::value::{convert, Json};
use ferry_core::Value;
use serde_json::Value as J;

/// Integers beyond this magnitude are written as `{"$int": "..."}`: a
/// JSON reader that keeps numbers as doubles keeps them exactly up to here.
const SAFE_INT: i64 = 1 << 53;

/// Longest file name stem before it is shortened with a hash.
const MAX_STEM: usize = 200;

/// One value as the JSON a row file holds.
pub(crate) fn encode_value(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) if (-SAFE_INT..=SAFE_INT).contains(i) => J::from(*i),
        Value::Float(f) if f.is_finite() => serde_json::Number::from_f64(*f).map_or_else(|| tagged(v), J::Number),
        Value::Text(s) => J::String(s.clone()),
        Value::Json(j) => {
            let compact = j.value().to_string();
            match j.source_text() {
                Some(t) if t != compact => one("$json_text", J::String(t.to_string())),
                _ => one("$json", j.value().clone()),
            }
        }
        _ => tagged(v),
    }
}

fn one(key: &str, value: J) -> J {
    let mut m = serde_json::Map::new();
    m.insert(key.to_string(), value);
    J::Object(m)
}

/// `{"$TAG": TEXT}` from [`Value::to_tagged`]'s `[TAG, TEXT]`.
fn tagged(v: &Value) -> J {
    match v.to_tagged() {
        J::Array(mut a) if a.len() == 2 => {
            let text = a.pop().unwrap_or(J::Null);
            let tag = a.pop().and_then(|t| t.as_str().map(str::to_string)).unwrap_or_default();
            one(&format!("${tag}"), text)
        }
        other => other,
    }
}

/// Reads a value written by [`encode_value`] (or by a person: a plain JSON
/// string or number is converted to the column's type by the caller).
pub(crate) fn decode_value(j: &J) -> Result<Value, String> {
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.is_f64()) {
            (Some(i), false) => Value::Int(i),
            (_, true) => Value::Float(n.as_f64().ok_or("a number out of range")?),
            _ => {
                return Err(format!(
                    "the integer {n} is out of range (write integers beyond 2^53 as {{\"$int\": \"{n}\"}})"
                ))
            }
        },
        J::String(s) => Value::Text(s.clone()),
        J::Object(m) if m.len() == 1 => {
            let (tag, inner) = m.iter().next().ok_or("an empty object")?;
            match tag.as_str() {
                "$json" => Value::Json(Json::from(inner.clone())),
                "$json_text" => {
                    let text = inner.as_str().ok_or("`$json_text` holds no string")?;
                    Value::Json(Json::from_text(text).map_err(|e| format!("`$json_text` is no JSON: {e}"))?)
                }
                t if t.starts_with('$') => {
                    let pair = J::Array(vec![J::String(t[1..].to_string()), inner.clone()]);
                    Value::from_tagged(&pair)
                        .ok_or_else(|| format!("`{{\"{t}\": {inner}}}` is no value Ferry reads"))?
                }
                _ => return Err(not_a_value(j)),
            }
        }
        _ => return Err(not_a_value(j)),
    })
}

fn not_a_value(j: &J) -> String {
    let text: String = j.to_string().chars().take(60).collect();
    format!("`{text}` is no value Ferry reads (a JSON document is written as {{\"$json\": ...}})")
}

/// The text of a row file: `names` and `row` in the schema's order, written
/// with sorted names, one value per line, and a trailing newline.
pub(crate) fn row_text(schema: &TableSchema, row: &[Value]) -> String {
    let mut fields: Vec<(&str, &Value)> = schema.columns.iter().map(|c| c.name.as_str()).zip(row).collect();
    fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if fields.is_empty() {
        return "{}\n".into();
    }
    let mut out = String::from("{\n");
    for (i, (name, value)) in fields.iter().enumerate() {
        out.push_str("  ");
        out.push_str(&J::String(name.to_string()).to_string());
        out.push_str(": ");
        out.push_str(&encode_value(value).to_string());
        out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
    }
    out.push_str("}\n");
    out
}

/// A row file's text as a row in the schema's column order, each value
/// converted to its column's type. A column the file leaves out is NULL;
/// a field the schema does not know is an error.
pub(crate) fn parse_row(schema: &TableSchema, text: &str) -> Result<Vec<Value>, String> {
    let j: J = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let J::Object(mut m) = j else {
        return Err("not a JSON object".into());
    };
    let mut row = Vec::with_capacity(schema.columns.len());
    for c in &schema.columns {
        let v = match m.remove(&c.name) {
            Some(j) => decode_value(&j).map_err(|e| format!("column `{}`: {e}", c.name))?,
            None => Value::Null,
        };
        if v.is_null() && !c.nullable && !c.has_default {
            return Err(format!(
                "column `{}` is NULL or missing, and it may not be NULL",
                c.name
            ));
        }
        row.push(convert(&v, &c.ty).map_err(|e| format!("column `{}`: {e}", c.name))?);
    }
    if let Some(extra) = m.keys().next() {
        return Err(format!(
            "field `{extra}` is no column of the table (see its schema under _ferry/schema)"
        ));
    }
    Ok(row)
}

/// The file name (without `.json`) of a row with these key values: each
/// part made file-name safe by percent-encoding (reversibly), the parts
/// joined with `,`. A single integer key 1 is `1`.
pub(crate) fn stem(key: &[Value]) -> Result<String, String> {
    let mut parts = Vec::with_capacity(key.len());
    for v in key {
        parts.push(match v {
            Value::Null => return Err("a key value is NULL".into()),
            Value::Int(i) => i.to_string(),
            Value::Text(s) => encode_part(s),
            Value::Bytes(b) => ferry_core::canonical::hex(b),
            other => encode_part(&other.display_text()),
        });
    }
    let joined = parts.join(",");
    if joined.len() <= MAX_STEM {
        return Ok(joined);
    }
    let mut cut = MAX_STEM - 34;
    while !joined.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = blake3::hash(joined.as_bytes()).to_hex();
    Ok(format!("{}~{}", &joined[..cut], &hash[..32]))
}

/// Percent-encodes every byte outside `[A-Za-z0-9_.-]` (and a leading `.`,
/// so no file is hidden); the empty text is `%`.
pub(crate) fn encode_part(s: &str) -> String {
    if s.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_part`].
pub fn decode_part(s: &str) -> Option<String> {
    if s == "%" {
        return Some(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::schema::ColumnSchema;
    use ferry_core::value::{ColumnType, LogicalType};

    fn col(name: &str, l: LogicalType) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            declared: l.name().into(),
            ty: ColumnType::new(l),
            nullable: true,
            has_default: false,
            auto_increment: false,
        }
    }

    #[test]
    fn every_value_reads_back_exactly() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(1),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Float(0.1),
            Value::Float(-0.0),
            Value::Float(1e300),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Decimal("12.50".into()),
            Value::Text("x\n\"y\"".into()),
            Value::Bytes(vec![0, 255, 10]),
            Value::Json(Json::from_text("{\"b\": 1, \"a\": [1.5]}").unwrap()),
            Value::Json(Json::from_text("{\"b\":1}").unwrap()),
            Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Uuid([7; 16]),
        ];
        for v in values {
            let text = encode_value(&v).to_string();
            assert!(!text.contains('\n'), "{text}");
            let back = decode_value(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(v.to_tagged(), back.to_tagged(), "{text}");
            if let (Value::Json(a), Value::Json(b)) = (&v, &back) {
                assert_eq!(a.to_string(), b.to_string());
            }
        }
    }

    #[test]
    fn rows_are_sorted_one_field_a_line() {
        let schema = TableSchema {
            name: "t".into(),
            columns: vec![
                col("id", LogicalType::Int),
                col("b", LogicalType::Text),
                col("a", LogicalType::Decimal),
            ],
            primary_key: vec!["id".into()],
            foreign_keys: vec![],
            unique: vec![],
            open_fields: None,
            carried: Vec::new(),
        };
        let row = vec![Value::Int(1), Value::Text("hi".into()), Value::Decimal("1.5".into())];
        let text = row_text(&schema, &row);
        assert_eq!(
            text,
            "{\n  \"a\": {\"$dec\":\"1.5\"},\n  \"b\": \"hi\",\n  \"id\": 1\n}\n"
        );
        assert_eq!(parse_row(&schema, &text).unwrap(), row);
        assert!(parse_row(&schema, "{\"id\": 1, \"c\": 2}").unwrap_err().contains("`c`"));
    }

    #[test]
    fn key_file_names_are_safe_and_reversible() {
        assert_eq!(stem(&[Value::Int(1)]).unwrap(), "1");
        assert_eq!(
            stem(&[Value::Text("a/b c".into()), Value::Int(2)]).unwrap(),
            "a%2Fb%20c,2"
        );
        for s in ["", ".hidden", "a,b", "é%/\\:*?", "con.txt"] {
            let e = encode_part(s);
            assert!(
                !e.contains(['/', '\\', ',', ':', '*', '?']) && !e.starts_with('.'),
                "{e}"
            );
            assert_eq!(decode_part(&e).as_deref(), Some(s));
        }
        let long = stem(&[Value::Text("x".repeat(500))]).unwrap();
        assert!(long.len() <= MAX_STEM);
    }
}
