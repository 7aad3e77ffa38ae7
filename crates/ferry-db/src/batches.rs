//! Turning a driver's row stream into the batches a scan sends: shared by
//! the sqlx stores (PostgreSQL, MySQL).

use futures_util::{Stream, TryStreamExt};
use tokio::sync::mpsc;

use crate::raw::{RawBatch, RawSender};
use crate::{DbError, Row, BATCH_ROWS};

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
        Ok(batch.len())
    };
    send_with(stream, || Vec::with_capacity(BATCH_ROWS), add, fail, tx).await
}

/// Like [`send`], for a raw scan: `add` appends one row to the batch.
pub(crate) async fn send_raw<R, S>(
    stream: S,
    add: impl Fn(&mut RawBatch, &R) -> Result<(), sqlx::Error>,
    fail: impl Fn(sqlx::Error) -> DbError,
    sender: RawSender,
) where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let add = |batch: &mut RawBatch, r: &R| {
        add(batch, r)?;
        Ok(batch.len())
    };
    let tx = sender.tx.clone();
    send_with(stream, || sender.fresh(), add, fail, tx).await
}

/// The loop of both: `add` appends a row and gives the batch's length.
async fn send_with<R, S, B>(
    mut stream: S,
    fresh: impl Fn() -> B,
    add: impl Fn(&mut B, &R) -> Result<usize, sqlx::Error>,
    fail: impl Fn(sqlx::Error) -> DbError,
    tx: mpsc::Sender<Result<B, DbError>>,
) where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut batch = fresh();
    let mut len = 0;
    loop {
        let added = match stream.try_next().await {
            Ok(Some(r)) => add(&mut batch, &r),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        match added {
            Ok(n) => {
                len = n;
                if len == BATCH_ROWS {
                    if tx.send(Ok(std::mem::replace(&mut batch, fresh()))).await.is_err() {
                        return;
                    }
                    len = 0;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(fail(e))).await;
                return;
            }
        }
    }
    if len > 0 {
        let _ = tx.send(Ok(batch)).await;
    }
}
