//! A collection's documents as its survey read them, kept on disk for the
//! scan that follows (one read of each collection per plan instead of two).
//!
//! A plan reads a collection's schema first (the survey: every document,
//! in `_id` order, for its field names) and then scans it in the same
//! order. The survey writes the raw documents it reads to an unnamed
//! temporary file, and the next scan of that collection in `_id` order
//! reads them from there instead of from the server. A spill serves one
//! scan, within [`SPILL_TTL`] of its survey, and none after this store
//! takes the writer lock or begins a transaction: what a promotion reads
//! under its lock is read from the server. A collection larger than
//! [`SPILL_MAX`] is not kept (the scan reads the server).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::time::{Duration, Instant};

use mongodb::bson::RawDocument;

/// How long after its survey a spill may serve a scan.
pub(super) const SPILL_TTL: Duration = Duration::from_secs(60);
/// The most bytes of documents one collection's spill keeps.
pub(super) const SPILL_MAX: u64 = 1 << 30;

/// The documents one survey read, being written.
pub(super) struct SpillWriter {
    out: BufWriter<File>,
    bytes: u64,
}

impl SpillWriter {
    pub fn new() -> std::io::Result<SpillWriter> {
        Ok(SpillWriter {
            out: BufWriter::with_capacity(1 << 20, tempfile::tempfile()?),
            bytes: 0,
        })
    }

    /// Appends one document; `Ok(false)` once the spill is past
    /// [`SPILL_MAX`] (the writer is then to be dropped).
    pub fn push(&mut self, doc: &RawDocument) -> std::io::Result<bool> {
        let b = doc.as_bytes();
        self.bytes += b.len() as u64;
        if self.bytes > SPILL_MAX {
            return Ok(false);
        }
        self.out.write_all(b)?;
        Ok(true)
    }

    pub fn finish(self) -> std::io::Result<Spill> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(Spill {
            file,
            taken: Instant::now(),
        })
    }
}

/// The documents one survey read, in the order read.
pub(super) struct Spill {
    file: File,
    taken: Instant,
}

impl Spill {
    pub fn fresh(&self) -> bool {
        self.taken.elapsed() < SPILL_TTL
    }

    pub fn reader(self) -> SpillReader {
        SpillReader {
            input: BufReader::with_capacity(1 << 20, self.file),
        }
    }
}

/// Collection -> the spill of its last survey.
pub(super) type Spills = HashMap<String, Spill>;

/// Reads a spill's documents back, one at a time.
pub(super) struct SpillReader {
    input: BufReader<File>,
}

impl SpillReader {
    /// Reads the next document's bytes into `bytes` (replacing what it
    /// held); `false` at the end. The bytes are checked by whoever parses
    /// them.
    pub fn next_raw(&mut self, bytes: &mut Vec<u8>) -> Result<bool, String> {
        let fail = |e: std::io::Error| format!("cannot read the survey's spill file: {e}");
        if self.input.fill_buf().map_err(fail)?.is_empty() {
            return Ok(false);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(fail)?;
        let n = u32::from_le_bytes(len) as usize;
        if n < 5 {
            return Err(format!("the survey's spill file holds a document of {n} bytes"));
        }
        bytes.clear();
        bytes.resize(n, 0);
        bytes[..4].copy_from_slice(&len);
        self.input.read_exact(&mut bytes[4..]).map_err(fail)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{self, doc, RawDocumentBuf};

    #[test]
    fn a_spill_gives_back_the_documents_in_the_order_written() {
        let docs = [
            doc! { "_id": 1, "name": "a" },
            doc! { "_id": 2, "b": { "x": [1, 2] }, "name": "b" },
            doc! { "_id": 3 },
        ];
        let mut w = SpillWriter::new().unwrap();
        for d in &docs {
            let raw = RawDocumentBuf::from_document(d).unwrap();
            assert!(w.push(&raw).unwrap());
        }
        let mut r = w.finish().unwrap().reader();
        let mut bytes = Vec::new();
        for d in &docs {
            assert!(r.next_raw(&mut bytes).unwrap());
            assert_eq!(bytes, bson::to_vec(d).unwrap(), "{d}: byte for byte");
        }
        assert!(!r.next_raw(&mut bytes).unwrap(), "the end");
    }

    #[test]
    fn a_spill_cut_short_is_an_error_not_its_end() {
        let raw = RawDocumentBuf::from_document(&doc! { "_id": 1, "name": "a" }).unwrap();
        let bytes = raw.as_bytes();
        for cut in [2, bytes.len() - 1] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&bytes[..cut]).unwrap();
            file.rewind().unwrap();
            let spill = Spill {
                file,
                taken: Instant::now(),
            };
            let e = spill
                .reader()
                .next_raw(&mut Vec::new())
                .expect_err("a document cut short");
            assert!(e.contains("spill file"), "{e}");
        }
    }
}
