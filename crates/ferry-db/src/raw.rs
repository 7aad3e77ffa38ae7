//! Rows read for comparison only: each row's key decoded into [`Value`]s,
//! its other columns kept as one *image* of the bytes the engine sent.
//!
//! Two rows read by the same engine from columns of the same declared types
//! hold the same values when their images are equal, so the planner can
//! drop equal rows without decoding, converting or hashing a cell. Images
//! that differ say nothing (JSON `{"a":1, "b":2}` and `{"b":2,"a":1}` are
//! equal values): those rows are read again whole and compared canonically.

use std::sync::{Arc, Mutex};

use ferry_core::Value;
use tokio::sync::mpsc;

use crate::DbError;

/// Batches read but not yet consumed, per scan: a few, so reading runs
/// ahead of the merge without holding much of a table.
const IN_FLIGHT: usize = 4;

/// Consumed batches, handed back to the reader to fill again: a scan
/// reuses a handful of buffers instead of allocating (and the allocator
/// zeroing fresh pages for) one per batch.
type Pool = Arc<Mutex<Vec<RawBatch>>>;

/// Turns one row's image back into the values a fetch of the row returns
/// (in the scan's column order, the key left out), or `None` when it
/// cannot: then the row is read again.
pub type ImageDecoder = Arc<dyn Fn(&[u8]) -> Option<Vec<Value>> + Send + Sync>;

/// The receiving end of a raw scan ([`crate::Store::scan_raw`]).
pub struct RawBatches {
    rx: mpsc::Receiver<Result<RawBatch, DbError>>,
    pool: Pool,
    decoder: Option<ImageDecoder>,
}

impl RawBatches {
    /// The scan's images decode with `decoder`.
    pub fn with_decoder(mut self, decoder: ImageDecoder) -> RawBatches {
        self.decoder = Some(decoder);
        self
    }

    /// The values of an image, when the store said how to decode them.
    pub fn decode(&self, image: &[u8]) -> Option<Vec<Value>> {
        self.decoder.as_ref().and_then(|d| d(image))
    }

    /// The next batch; `None` at the end of the scan. An error ends it.
    pub async fn recv(&mut self) -> Option<Result<RawBatch, DbError>> {
        self.rx.recv().await
    }

    /// Hands a consumed batch back to the reader.
    pub fn recycle(&self, mut batch: RawBatch) {
        batch.clear();
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < IN_FLIGHT + 2 {
                pool.push(batch);
            }
        }
    }
}

/// The sending end of a raw scan.
pub struct RawSender {
    pub(crate) tx: mpsc::Sender<Result<RawBatch, DbError>>,
    pool: Pool,
    key_len: usize,
}

impl RawSender {
    /// An empty batch: a recycled one, or a new one.
    pub fn fresh(&self) -> RawBatch {
        let recycled = self.pool.lock().ok().and_then(|mut p| p.pop());
        recycled.unwrap_or_else(|| RawBatch::new(self.key_len))
    }

    pub async fn send(&self, batch: Result<RawBatch, DbError>) -> bool {
        self.tx.send(batch).await.is_ok()
    }
}

/// A raw scan's channel, for rows with `key_len` key columns.
pub fn channel(key_len: usize) -> (RawSender, RawBatches) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let pool = Pool::default();
    (
        RawSender {
            tx,
            pool: pool.clone(),
            key_len,
        },
        RawBatches {
            rx,
            pool,
            decoder: None,
        },
    )
}

/// A raw batch is also full at this many bytes of images: small enough to
/// stay in the CPU's cache and in the allocator's reused pages (rows with
/// 2 KB blobs would otherwise make 2 MB batches, fresh memory each time).
const BATCH_BYTES: usize = 256 * 1024;

/// Tag bytes of the cells of an image. Each cell is a tag, then (except for
/// NULL) a 4-byte little-endian length and the bytes.
pub mod tag {
    pub const NULL: u8 = 0;
    pub const INTEGER: u8 = 1;
    pub const REAL: u8 = 2;
    pub const TEXT: u8 = 3;
    pub const BLOB: u8 = 4;
    /// The engine's own binary encoding of a value (PostgreSQL, MySQL).
    pub const BYTES: u8 = 5;
}

/// Up to [`crate::BATCH_ROWS`] rows (or [`BATCH_BYTES`] of images): keys, images and exclusion flags,
/// stored flat so a batch costs a few allocations, not a few per row.
#[derive(Debug, Default)]
pub struct RawBatch {
    key_len: usize,
    keys: Vec<Value>,
    data: Vec<u8>,
    /// End offset in `data` of each row's image.
    ends: Vec<usize>,
    flags: Vec<bool>,
}

impl RawBatch {
    pub fn new(key_len: usize) -> RawBatch {
        RawBatch {
            key_len,
            keys: Vec::with_capacity(key_len * crate::BATCH_ROWS),
            data: Vec::with_capacity(BATCH_BYTES + 4096),
            ends: Vec::with_capacity(crate::BATCH_ROWS),
            flags: Vec::with_capacity(crate::BATCH_ROWS),
        }
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.data.clear();
        self.ends.clear();
        self.flags.clear();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn key(&self, i: usize) -> &[Value] {
        &self.keys[i * self.key_len..(i + 1) * self.key_len]
    }

    /// The key of row `i`, moved out (the batch keeps a NULL in its place).
    pub fn take_key(&mut self, i: usize) -> Vec<Value> {
        self.keys[i * self.key_len..(i + 1) * self.key_len]
            .iter_mut()
            .map(|v| std::mem::replace(v, Value::Null))
            .collect()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Whether row `i` matched the scan's flag predicate.
    pub fn flag(&self, i: usize) -> bool {
        self.flags[i]
    }

    /// Appends a key value of the row being built.
    pub fn push_key(&mut self, v: Value) {
        self.keys.push(v);
    }

    /// Appends a NULL cell to the image of the row being built.
    pub fn push_null(&mut self) {
        self.data.push(tag::NULL);
    }

    /// Appends a cell to the image of the row being built.
    pub fn push_cell(&mut self, tag: u8, bytes: &[u8]) {
        self.data.push(tag);
        // Cells are at most 1 GB on every engine Ferry reads.
        self.data.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.data.extend_from_slice(bytes);
    }

    /// Appends a cell whose bytes come in parts.
    pub fn push_cell_parts(&mut self, tag: u8, head: &[u8], rest: &[u8]) {
        self.data.push(tag);
        self.data
            .extend_from_slice(&((head.len() + rest.len()) as u32).to_le_bytes());
        self.data.extend_from_slice(head);
        self.data.extend_from_slice(rest);
    }

    /// Ends the row being built.
    pub fn end_row(&mut self, flag: bool) {
        self.ends.push(self.data.len());
        self.flags.push(flag);
    }

    /// Sets row `i`'s flag (a store that learns the flags of a batch's
    /// rows once it holds them all, from one query).
    pub fn set_flag(&mut self, i: usize, flag: bool) {
        self.flags[i] = flag;
    }
}

/// The value of a TEXT cell: a string, or its exact bytes when they are not
/// UTF-8.
pub fn text_value(t: &[u8]) -> Value {
    match std::str::from_utf8(t) {
        Ok(s) => Value::Text(s.to_string()),
        Err(_) => Value::Bytes(t.to_vec()),
    }
}

/// One cell of an image: its tag and bytes (`None` for NULL).
pub type Cell<'a> = (u8, Option<&'a [u8]>);

/// The cells of an image, or `None` for an image that does not parse.
pub fn cells(image: &[u8]) -> Option<Vec<Cell<'_>>> {
    let mut out = Vec::new();
    let mut rest = image;
    while let Some((&t, after)) = rest.split_first() {
        if t == tag::NULL {
            out.push((t, None));
            rest = after;
            continue;
        }
        let len = u32::from_le_bytes(after.get(..4)?.try_into().ok()?) as usize;
        out.push((t, Some(after.get(4..4 + len)?)));
        rest = &after[4 + len..];
    }
    Some(out)
}

/// A decoder of images whose cells hold an engine's binary values of the
/// given column types (the key left out), each decoded by `decode`: the
/// whole image decodes, or `None` and the row is read again.
pub fn typed_decoder(types: Vec<String>, decode: fn(&str, &[u8]) -> Option<Value>) -> ImageDecoder {
    Arc::new(move |image: &[u8]| {
        let cells = cells(image)?;
        if cells.len() != types.len() {
            return None;
        }
        cells
            .into_iter()
            .zip(&types)
            .map(|((_, bytes), ty)| match bytes {
                None => Some(Value::Null),
                Some(b) => decode(ty, b),
            })
            .collect()
    })
}

/// The values of an image whose cells are storage classes (SQLite's),
/// decoded exactly as the store decodes them, so a differing row need not
/// be read again. `None` when a cell holds an engine's own binary encoding
/// ([`tag::BYTES`]), which only that engine decodes.
pub fn decode_image(image: &[u8]) -> Option<Vec<Value>> {
    cells(image)?
        .into_iter()
        .map(|(t, bytes)| {
            Some(match (t, bytes) {
                (_, None) => Value::Null,
                (tag::INTEGER, Some(b)) => Value::Int(i64::from_le_bytes(b.try_into().ok()?)),
                (tag::REAL, Some(b)) => Value::Float(f64::from_bits(u64::from_le_bytes(b.try_into().ok()?))),
                (tag::TEXT, Some(b)) => text_value(b),
                (tag::BLOB, Some(b)) => Value::Bytes(b.to_vec()),
                _ => return None,
            })
        })
        .collect()
}

impl crate::Batch for RawBatch {
    fn is_empty(&self) -> bool {
        RawBatch::is_empty(self)
    }
    fn is_full(&self) -> bool {
        self.len() >= crate::BATCH_ROWS || self.data.len() >= BATCH_BYTES
    }
}

/// Whether a flag column's value is true, as the stores return it.
pub fn is_true(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Int(1) | Value::Bool(true)))
}

/// The image of decoded values, for stores without a byte-level path: the
/// canonical encoding of each value.
pub fn push_values(batch: &mut RawBatch, values: &[Value]) {
    let mut buf = Vec::new();
    for v in values {
        buf.clear();
        ferry_core::canonical::encode_value(&mut buf, v);
        batch.push_cell(tag::BYTES, &buf);
    }
}

/// A raw scan made of a decoded one (key `k` columns, `n` columns, then
/// the flag): each row's values after the key encoded as its image.
pub fn from_rows(mut rows: crate::RowBatches, k: usize, n: usize) -> RawBatches {
    let (tx, rx) = channel(k);
    tokio::spawn(async move {
        while let Some(batch) = rows.recv().await {
            let out = batch.map(|rows| {
                let mut b = tx.fresh();
                for row in rows {
                    row[..k].iter().for_each(|v| b.push_key(v.clone()));
                    push_values(&mut b, &row[k..n]);
                    b.end_row(is_true(row.get(n)));
                }
                b
            });
            if !tx.send(out).await {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_keys_images_and_flags_apart() {
        let mut b = RawBatch::new(1);
        b.push_key(Value::Int(1));
        b.push_cell(tag::TEXT, b"ab");
        b.push_null();
        b.end_row(false);
        b.push_key(Value::Int(2));
        b.push_cell(tag::TEXT, b"a");
        b.push_cell(tag::TEXT, b"b");
        b.end_row(true);
        assert_eq!(b.len(), 2);
        assert_eq!(b.key(1), &[Value::Int(2)]);
        assert!(!b.flag(0) && b.flag(1));
        // "ab" + NULL and "a" + "b" must not look alike.
        assert_ne!(b.image(0), b.image(1));
        assert_eq!(b.take_key(0), vec![Value::Int(1)]);
    }

    #[test]
    fn storage_class_images_decode_to_the_values_read() {
        let mut b = RawBatch::new(0);
        b.push_cell(tag::INTEGER, &(-7i64).to_le_bytes());
        b.push_null();
        b.push_cell(tag::REAL, &2.5f64.to_bits().to_le_bytes());
        b.push_cell(tag::TEXT, "é🚀".as_bytes());
        b.push_cell(tag::TEXT, &[0xff, 0x00]);
        b.push_cell(tag::BLOB, &[1, 2]);
        b.push_cell(tag::TEXT, b"");
        b.end_row(false);
        let want = vec![
            Value::Int(-7),
            Value::Null,
            Value::Float(2.5),
            Value::Text("é🚀".into()),
            Value::Bytes(vec![0xff, 0x00]),
            Value::Bytes(vec![1, 2]),
            Value::Text(String::new()),
        ];
        assert_eq!(decode_image(b.image(0)), Some(want));
        assert_eq!(decode_image(&[]), Some(Vec::new()));
        // An engine's own encoding is not decoded here.
        let mut pg = RawBatch::new(0);
        pg.push_cell(tag::BYTES, &[0, 0, 0, 1]);
        pg.end_row(false);
        assert_eq!(decode_image(pg.image(0)), None);
        // A truncated image is refused, not misread.
        assert_eq!(decode_image(&b.image(0)[..3]), None);
    }

    /// A toy engine: "N" cells are one byte, anything else is left to sqlx.
    fn one_byte(ty: &str, b: &[u8]) -> Option<Value> {
        match (ty, b) {
            ("N", [x]) => Some(Value::Int((*x).into())),
            _ => None,
        }
    }

    #[test]
    fn a_typed_image_decodes_whole_or_not_at_all() {
        let mut b = RawBatch::new(0);
        b.push_cell(tag::BYTES, &[7]);
        b.push_null();
        b.end_row(false);
        b.push_cell(tag::BYTES, &[7]);
        b.push_cell(tag::BYTES, &[1, 2]);
        b.end_row(false);
        let types = vec!["N".to_string(), "N".to_string()];
        let decode = typed_decoder(types.clone(), one_byte);
        assert_eq!(decode(b.image(0)), Some(vec![Value::Int(7), Value::Null]));
        // One cell that does not decode: the row is read again.
        assert_eq!(decode(b.image(1)), None);
        // Types that do not match the image's cells: refused, not misread.
        assert_eq!(typed_decoder(types[..1].to_vec(), one_byte)(b.image(0)), None);
        assert_eq!(typed_decoder(vec!["X".into(), "N".into()], one_byte)(b.image(0)), None);
    }
}
