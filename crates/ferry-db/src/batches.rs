//! Turning a driver's row stream into the batches a scan sends: shared by
//! the sqlx stores (PostgreSQL, MySQL).

use ferry_core::Value;
use futures_util::{Stream, TryStreamExt};
use tokio::sync::mpsc;

use crate::raw::{tag, RawBatch, RawSender};
use crate::{Batch, DbError, KeyBlock, Row, BATCH_BLOCKS, BATCH_ROWS};

/// Decodes `stream` into batches of [`BATCH_ROWS`] rows sent on `tx`, until
/// the stream ends, an error (sent as the last item), or the receiver hangs up.
pub(crate) async fn send<R, S>(
    stream: S,
    decode: impl Fn(&R) -> Result<Row, sqlx::Error>,
    fail: impl Fn(sqlx::Error) -> DbError,
    tx: mpsc::Sender<Result<Vec<Row>, DbError>>,
) where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let add = |batch: &mut Vec<Row>, r: &R| {
        batch.push(decode(r)?);
        Ok(())
    };
    send_with(stream, || Vec::with_capacity(BATCH_ROWS), add, fail, tx).await
}

/// Column `i` of a row as the bytes the engine sent, `None` for NULL.
pub(crate) type RawCell<R> = fn(&R, usize) -> Result<Option<&[u8]>, sqlx::Error>;

/// Like [`send`], for a raw scan of `columns` columns whose first `key_len`
/// are the key: the key is decoded with `decode` (column `i` of a row into
/// a value: the key columns, the flag), every other column taken
/// as the bytes `cell` gives (`None` for NULL), and a column after them is
/// the flag.
pub(crate) async fn send_raw<R, S>(
    stream: S,
    (key_len, columns): (usize, usize),
    decode: impl Fn(&R, usize) -> Result<Value, sqlx::Error>,
    cell: RawCell<R>,
    fail: impl Fn(sqlx::Error) -> DbError,
    sender: RawSender,
) where
    R: sqlx::Row,
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let add = |b: &mut RawBatch, r: &R| {
        for i in 0..key_len {
            b.push_key(decode(r, i)?);
        }
        for i in key_len..columns {
            match cell(r, i)? {
                None => b.push_null(),
                Some(bytes) => b.push_cell(tag::BYTES, bytes),
            }
        }
        let flag = r.len() > columns && crate::raw::is_true(Some(&decode(r, columns)?));
        b.end_row(flag);
        Ok(())
    };
    let tx = sender.tx.clone();
    send_with(stream, || sender.fresh(), add, fail, tx).await
}

/// Like [`send`], for [`crate::SqlStore::key_blocks`]: each row decoded
/// into one block by `decode`.
pub(crate) async fn send_blocks<R, S>(
    stream: S,
    decode: impl Fn(&R) -> Result<KeyBlock, sqlx::Error>,
    fail: impl Fn(sqlx::Error) -> DbError,
    tx: mpsc::Sender<Result<Vec<KeyBlock>, DbError>>,
) where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let add = |batch: &mut Vec<KeyBlock>, r: &R| {
        batch.push(decode(r)?);
        Ok(())
    };
    send_with(stream, || Vec::with_capacity(BATCH_BLOCKS), add, fail, tx).await
}

/// The loop of all three: `add` appends a row and gives the batch's length.
async fn send_with<R, S, B: Batch>(
    mut stream: S,
    fresh: impl Fn() -> B,
    add: impl Fn(&mut B, &R) -> Result<(), sqlx::Error>,
    fail: impl Fn(sqlx::Error) -> DbError,
    tx: mpsc::Sender<Result<B, DbError>>,
) where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut batch = fresh();
    loop {
        let added = match stream.try_next().await {
            Ok(Some(r)) => add(&mut batch, &r),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        match added {
            Ok(()) => {
                if batch.is_full() && tx.send(Ok(std::mem::replace(&mut batch, fresh()))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(fail(e))).await;
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch)).await;
    }
}

/// The type names of a prepared scan's result columns, as its rows will
/// report them (what the stores' image decoders go by).
pub(crate) fn type_names<'q, S: sqlx::Statement<'q>>(stmt: &S) -> Vec<String> {
    use sqlx::{Column, TypeInfo};
    stmt.columns()
        .iter()
        .map(|c| c.type_info().name().to_string())
        .collect()
}
