//! Turning a driver's row stream into the batches a scan sends: shared by
//! the sqlx stores (PostgreSQL, MySQL).

use futures_util::{Stream, TryStreamExt};
use tokio::sync::mpsc;

use crate::{DbError, Row, BATCH_ROWS};

/// Decodes `stream` into batches of [`BATCH_ROWS`] rows sent on `tx`, until
/// the stream ends, an error (sent as the last item), or the receiver hangs up.
pub(crate) async fn send<R, S>(
    mut stream: S,
    decode: impl Fn(&R) -> Result<Row, sqlx::Error>,
    fail: impl Fn(sqlx::Error) -> DbError,
    tx: mpsc::Sender<Result<Vec<Row>, DbError>>,
) where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    loop {
        let row = match stream.try_next().await {
            Ok(Some(r)) => decode(&r),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        match row {
            Ok(row) => {
                batch.push(row);
                if batch.len() == BATCH_ROWS && tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
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
