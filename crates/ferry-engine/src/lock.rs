//! One writer per target: promote, revert and baseline into one target take
//! its writer lock for the whole operation (plan included), so they run one
//! after the other; the second waits and says so, or refuses.

use ferry_db::{Store, WriterLock};

use crate::error::{Error, Result};

/// Takes `store`'s writer lock. When it is held: with `wait`, calls
/// `on_wait` once and waits; without, refuses with [`Error::Blocked`]
/// (an operation adds [`crate::error::Hint::Wait`]).
pub async fn writer(store: &dyn Store, wait: bool, on_wait: impl FnOnce(&str)) -> Result<WriterLock> {
    if let Some(lock) = store.try_lock_writer().await? {
        return Ok(lock);
    }
    let env = store.env();
    if !wait {
        return Err(Error::Blocked(format!(
            "another Ferry writer is working on `{env}`; nothing was written. Try again when it is done"
        )));
    }
    on_wait(&format!(
        "another Ferry writer is working on `{env}`; waiting for it to finish..."
    ));
    Ok(store.lock_writer().await?)
}
