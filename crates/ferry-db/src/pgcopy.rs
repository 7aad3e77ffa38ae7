//! PostgreSQL's binary `COPY (SELECT ...) TO STDOUT` stream, split into
//! tuples for a raw scan.
//!
//! A raw scan of PostgreSQL reads through `COPY` rather than a query: the
//! values are the same binary encodings a query's binary results carry, but
//! the client only splits length-prefixed fields instead of building a row
//! object per row, which is most of what sqlx costs a scan. Format:
//! <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>.

use std::ops::Range;

use ferry_core::Value;
use futures_util::{Stream, TryStreamExt};

use crate::raw::{tag, RawBatch, RawSender};
use crate::Batch;

/// The first bytes of a binary `COPY` stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Decodes one binary value of a column of the named type (`INT8`, ...).
pub(crate) type DecodeBinary = fn(&str, &[u8]) -> Option<Value>;

/// Splits a binary `COPY` stream into tuples, whatever the chunks' bounds.
#[derive(Default)]
struct Tuples {
    /// Bytes of a tuple split across chunks.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
    /// The current tuple's fields, as ranges of the bytes parsed.
    fields: Vec<Option<Range<usize>>>,
}

/// One tuple: field `i` is `None` for NULL.
struct Tuple<'a> {
    data: &'a [u8],
    fields: &'a [Option<Range<usize>>],
}

impl Tuple<'_> {
    fn len(&self) -> usize {
        self.fields.len()
    }

    fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields.get(i)?.clone().map(|r| &self.data[r])
    }
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Tuples {
    /// Hands every complete tuple of `chunk` (after what is pending) to
    /// `each`, keeping an incomplete one for the next chunk.
    fn feed(&mut self, chunk: &[u8], each: &mut dyn FnMut(Tuple) -> Result<(), String>) -> Result<(), String> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, each)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(chunk);
            let used = self.parse(&data, each)?;
            data.drain(..used);
            self.pending = data;
        }
        Ok(())
    }

    /// Parses complete tuples from the start of `data`; returns how many
    /// bytes they took.
    fn parse(&mut self, data: &[u8], each: &mut dyn FnMut(Tuple) -> Result<(), String>) -> Result<usize, String> {
        let mut pos = 0;
        if !self.header_read {
            if data.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &data[..SIGNATURE.len()] != SIGNATURE {
                return Err("the COPY stream does not start with the binary signature".into());
            }
            let extension = be_i32(&data[SIGNATURE.len() + 4..]);
            let start = SIGNATURE.len() + 8 + usize::try_from(extension).map_err(|_| "bad COPY header")?;
            if data.len() < start {
                return Ok(0);
            }
            self.header_read = true;
            pos = start;
        }
        while !self.ended && data.len() - pos >= 2 {
            let count = be_i16(&data[pos..]);
            if count == -1 {
                self.ended = true;
                pos += 2;
                break;
            }
            let count = usize::try_from(count).map_err(|_| format!("bad COPY field count {count}"))?;
            let mut p = pos + 2;
            self.fields.clear();
            let mut complete = true;
            for _ in 0..count {
                if data.len() - p < 4 {
                    complete = false;
                    break;
                }
                let len = be_i32(&data[p..]);
                p += 4;
                if len == -1 {
                    self.fields.push(None);
                    continue;
                }
                let len = usize::try_from(len).map_err(|_| format!("bad COPY field length {len}"))?;
                if data.len() - p < len {
                    complete = false;
                    break;
                }
                self.fields.push(Some(p..p + len));
                p += len;
            }
            if !complete {
                break;
            }
            each(Tuple {
                data,
                fields: &self.fields,
            })?;
            pos = p;
        }
        Ok(pos)
    }
}

/// The columns of a raw scan: their type names (`INT8`, ...), how many
/// lead as the key, and how many are read (a column after them is the
/// flag).
pub(crate) struct Layout<'a> {
    pub types: &'a [String],
    pub key_len: usize,
    pub columns: usize,
    pub decode: DecodeBinary,
}

impl Layout<'_> {
    /// Appends one tuple to `batch`: its key decoded, its other cells as
    /// the bytes PostgreSQL sent, its flag.
    fn push(&self, batch: &mut RawBatch, t: Tuple) -> Result<(), String> {
        if t.len() < self.columns {
            return Err(format!("a COPY tuple has {} fields, not {}", t.len(), self.columns));
        }
        for (i, ty) in self.types.iter().enumerate().take(self.key_len) {
            let key = match t.field(i) {
                None => Value::Null,
                Some(b) => (self.decode)(ty, b).ok_or_else(|| format!("a key value of type {ty} does not decode"))?,
            };
            batch.push_key(key);
        }
        for i in self.key_len..self.columns {
            match t.field(i) {
                None => batch.push_null(),
                Some(bytes) => batch.push_cell(tag::BYTES, bytes),
            }
        }
        let flag = match (t.field(self.columns), self.types.get(self.columns)) {
            (Some(b), Some(ty)) => crate::raw::is_true((self.decode)(ty, b).as_ref()),
            _ => false,
        };
        batch.end_row(flag);
        Ok(())
    }
}

/// Reads `stream`, the binary `COPY` of a raw scan laid out as `layout`,
/// into batches sent on `sender`. Returns `Ok(false)` when the receiver
/// hung up before the end.
pub(crate) async fn send_raw<S, B>(mut stream: S, layout: &Layout<'_>, sender: &RawSender) -> Result<bool, sqlx::Error>
where
    S: Stream<Item = Result<B, sqlx::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut tuples = Tuples::default();
    let mut batch = sender.fresh();
    while let Some(chunk) = stream.try_next().await? {
        tuples
            .feed(chunk.as_ref(), &mut |t| layout.push(&mut batch, t))
            .map_err(sqlx::Error::Protocol)?;
        if batch.is_full() && !sender.send(Ok(std::mem::replace(&mut batch, sender.fresh()))).await {
            return Ok(false);
        }
    }
    if !tuples.ended || !tuples.pending.is_empty() {
        return Err(sqlx::Error::Protocol("the COPY stream ended inside a tuple".into()));
    }
    Ok(batch.is_empty() || sender.send(Ok(batch)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary COPY stream of `rows` (fields `None` for NULL).
    fn stream(rows: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for f in row {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// Tuples as owned fields (`None` for NULL).
    type Owned = Vec<Vec<Option<Vec<u8>>>>;

    /// The tuples of a stream fed in `chunks`, and whether it ended cleanly.
    fn collect(chunks: &[&[u8]]) -> Result<(Owned, bool), String> {
        let mut tuples = Tuples::default();
        let mut out = Vec::new();
        for c in chunks {
            tuples.feed(c, &mut |t| {
                out.push((0..t.len()).map(|i| t.field(i).map(<[u8]>::to_vec)).collect());
                Ok(())
            })?;
        }
        Ok((out, tuples.ended && tuples.pending.is_empty()))
    }

    #[test]
    fn tuples_split_anywhere_across_chunks_come_out_whole() {
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(&[0, 0, 0, 1][..]), Some(b"ab"), None],
            vec![Some(&[0, 0, 0, 2][..]), Some(b""), Some(b"\xff\n")],
        ];
        let whole = stream(&rows);
        let expected: Owned = rows
            .iter()
            .map(|r| r.iter().map(|f| f.map(<[u8]>::to_vec)).collect())
            .collect();
        assert_eq!(collect(&[&whole]).unwrap(), (expected.clone(), true));
        // Every split point, including inside the header and the trailer.
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(collect(&[a, b]).unwrap(), (expected.clone(), true), "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(collect(&bytes).unwrap(), (expected, true));
    }

    #[test]
    fn a_stream_cut_short_or_without_the_signature_is_refused_or_unfinished() {
        let whole = stream(&[vec![Some(b"x")]]);
        let (rows, finished) = collect(&[&whole[..whole.len() - 3]]).unwrap();
        assert!(rows.is_empty() && !finished);
        let mut bad = whole.clone();
        bad[0] = b'Q';
        assert!(collect(&[&bad]).unwrap_err().contains("signature"));
        let mut negative = stream(&[vec![Some(b"x")]]);
        // The field length of the only field: -2.
        let at = SIGNATURE.len() + 8 + 2;
        negative[at..at + 4].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(collect(&[&negative]).unwrap_err().contains("field length"));
    }
}
