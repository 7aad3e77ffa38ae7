//! The canonical, typed, length-prefixed encoding of values and rows, and
//! the blake3 hashes built on it. See `docs/canonical.md`.
//!
//! Only canonical values (the output of [`crate::value::convert`]) are
//! encoded, so the same content read from two engines encodes to the same
//! bytes.

use crate::value::Value;

/// Length of a stored row hash in bytes (128 bits).
pub const ROW_HASH_LEN: usize = 16;
/// Length of a stored per-field hash in bytes.
pub const FIELD_HASH_LEN: usize = 8;

pub type RowHash = [u8; ROW_HASH_LEN];
pub type FieldHash = [u8; FIELD_HASH_LEN];

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends the canonical encoding of one value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0x00),
        Value::Bool(b) => {
            out.push(0x01);
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(0x02);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(0x03);
            let f = if *f == 0.0 { 0.0 } else { *f };
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Decimal(d) => put_bytes(out, 0x04, d.as_bytes()),
        Value::Text(s) => put_bytes(out, 0x05, s.as_bytes()),
        Value::Bytes(b) => put_bytes(out, 0x06, b),
        Value::Json(j) => put_bytes(out, 0x07, canonical_json(j).as_bytes()),
        Value::Date(_) => put_bytes(out, 0x08, v.display_text().as_bytes()),
        Value::Time(_) => put_bytes(out, 0x09, v.display_text().as_bytes()),
        Value::Timestamp(_) => put_bytes(out, 0x0A, v.display_text().as_bytes()),
        Value::TimestampTz(_) => put_bytes(out, 0x0B, v.display_text().as_bytes()),
        Value::Uuid(u) => {
            out.push(0x0C);
            out.extend_from_slice(u);
        }
    }
}

/// JSON text with object keys sorted and numbers written by value (`1.0`
/// and `1` are the same number), no insignificant white space.
pub fn canonical_json(j: &serde_json::Value) -> String {
    let mut out = String::new();
    write_json(&mut out, j);
    out
}

fn write_json(out: &mut String, j: &serde_json::Value) {
    use serde_json::Value as J;
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    out.push_str(&(f as i64).to_string());
                } else {
                    out.push_str(&format!("{f:e}"));
                }
            }
        }
        J::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        J::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_json(out, &map[k]);
            }
            out.push('}');
        }
    }
}

/// Hashes of one row's compared columns: the whole row and every field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowHashes {
    pub row: RowHash,
    /// One per compared column, in the order of the names given to [`hash_row`].
    pub fields: Vec<FieldHash>,
}

/// Hashes a row given as `(column name, canonical value)` pairs. The pairs
/// must be sorted by column name (the table spec keeps its compared columns
/// sorted), so that column order in a database never matters.
pub fn hash_row<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>) -> RowHashes {
    let mut row = blake3::Hasher::new();
    let mut field_hashes = Vec::new();
    let mut buf = Vec::with_capacity(64);
    for (name, value) in fields {
        buf.clear();
        put_len(&mut buf, name.len());
        buf.extend_from_slice(name.as_bytes());
        encode_value(&mut buf, value);
        row.update(&buf);
        let fh = blake3::hash(&buf);
        let mut short = [0u8; FIELD_HASH_LEN];
        short.copy_from_slice(&fh.as_bytes()[..FIELD_HASH_LEN]);
        field_hashes.push(short);
    }
    let mut hash = [0u8; ROW_HASH_LEN];
    hash.copy_from_slice(&row.finalize().as_bytes()[..ROW_HASH_LEN]);
    RowHashes {
        row: hash,
        fields: field_hashes,
    }
}

/// A key as stable text (a JSON array), used to record rows in Ferry's
/// own tables: the same canonical key always gives the same text.
pub fn key_text(key: &[Value]) -> String {
    let array = serde_json::Value::Array(key.iter().map(Value::to_plain_json).collect());
    // The same text as `Display` writes, without its formatter per token.
    serde_json::to_string(&array).unwrap_or_else(|_| array.to_string())
}

/// The row hash of [`hash_row`] alone, without the per-field hashes.
pub fn row_digest<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>) -> RowHash {
    let mut row = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(256);
    for (name, value) in fields {
        put_len(&mut buf, name.len());
        buf.extend_from_slice(name.as_bytes());
        encode_value(&mut buf, value);
    }
    row.update(&buf);
    let mut hash = [0u8; ROW_HASH_LEN];
    hash.copy_from_slice(&row.finalize().as_bytes()[..ROW_HASH_LEN]);
    hash
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    // A table, not `format!` per byte: a promotion writes two hex strings
    // per journalled row, and `format!` made them over a quarter of the
    // apply's own CPU.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Parses lower- or upper-case hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte_and_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = hex(&bytes);
        let slow: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(text, slow);
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(unhex(&text), Some(bytes));
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn key_text_is_the_compact_json_array() {
        let key = [Value::Int(7), Value::Text("a\"b".into()), Value::Null];
        assert_eq!(key_text(&key), r#"[7,"a\"b",null]"#);
    }

    #[test]
    fn json_is_compared_parsed() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b": 1.0, "a": [true, "x"]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[true,"x"],"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":[true,"x"],"b":1}"#);
    }

    #[test]
    fn length_prefix_keeps_fields_apart() {
        let (a1, a2) = (Value::Text("ab".into()), Value::Text("c".into()));
        let (b1, b2) = (Value::Text("a".into()), Value::Text("bc".into()));
        let h1 = hash_row([("x", &a1), ("y", &a2)]);
        let h2 = hash_row([("x", &b1), ("y", &b2)]);
        assert_ne!(h1.row, h2.row);
    }

    #[test]
    fn the_row_digest_is_the_row_hash() {
        let (a, b) = (Value::Text("é🦀".into()), Value::Int(7));
        let fields = [("x", &a), ("y", &b)];
        assert_eq!(row_digest(fields), hash_row(fields).row);
    }

    #[test]
    fn null_differs_from_the_text_null() {
        let n = Value::Null;
        let t = Value::Text("NULL".into());
        assert_ne!(hash_row([("x", &n)]).row, hash_row([("x", &t)]).row);
    }
}
