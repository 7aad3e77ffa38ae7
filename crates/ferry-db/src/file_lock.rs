//! The writer lock of the stores that live in files (an SQLite database, a
//! `dir:` folder): an exclusive `flock` on a lock file, released when the
//! [`WriterLock`] drops (or the process dies).

use crate::{DbError, DbErrorKind, WriterLock};

/// Takes the lock on `file` if it is free; `None` when another writer
/// holds it.
pub(crate) fn try_lock(env: &str, file: std::fs::File) -> Result<Option<WriterLock>, DbError> {
    match file.try_lock() {
        Ok(()) => Ok(Some(WriterLock::new(file))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(DbError::new(DbErrorKind::Busy, env, format!("cannot lock: {e}"))),
    }
}

/// Waits for the lock on `file` (on a blocking thread).
pub(crate) async fn lock(env: &str, file: std::fs::File) -> Result<WriterLock, DbError> {
    let owned = env.to_string();
    tokio::task::spawn_blocking(move || {
        file.lock()
            .map(|_| WriterLock::new(file))
            .map_err(|e| DbError::new(DbErrorKind::Busy, &owned, format!("cannot lock: {e}")))
    })
    .await
    .map_err(|e| DbError::new(DbErrorKind::Busy, env, format!("worker thread failed: {e}")))?
}
