//! The writer lock: a document in `_ferry_lock` with an owner and an
//! expiry ([`LOCK_TTL`]), taken or renewed with one upsert, renewed by a
//! task while its guard lives, and removed when the guard is dropped.

use std::sync::Arc;

use mongodb::bson::{doc, Document};
use mongodb::Database;

use super::{MongoStore, LOCK_COLLECTION, LOCK_TTL};
use crate::WriterLock;

impl MongoStore {
    /// The guard of a lock just taken: renews it while it lives, and
    /// removes it when dropped.
    pub(super) fn lock_guard(&self) -> WriterLock {
        let (db, owner) = (self.db.clone(), self.owner.clone());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                // A failed renewal is noticed at commit, which checks the lock.
                let _ = take_lock(&db, &owner).await;
            }
        });
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
        WriterLock::new(HeldLock {
            renew,
            db: self.db.clone(),
            owner: self.owner.clone(),
            held: self.held.clone(),
        })
    }
}

/// Takes or renews the lock document for `owner`; `false` when another
/// owner holds it and it has not expired.
pub(super) async fn take_lock(db: &Database, owner: &str) -> Result<bool, mongodb::error::Error> {
    let now = mongodb::bson::DateTime::now();
    let expires = mongodb::bson::DateTime::from_millis(now.timestamp_millis() + LOCK_TTL.as_millis() as i64);
    let r = db
        .collection::<Document>(LOCK_COLLECTION)
        .update_one(
            doc! { "_id": "writer", "$or": [ { "owner": owner }, { "expires": { "$lt": now } } ] },
            doc! { "$set": { "owner": owner, "expires": expires } },
        )
        .upsert(true)
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000"),
    }
}

/// A held lock document: renewed by a task, removed on drop.
struct HeldLock {
    renew: tokio::task::JoinHandle<()>,
    db: Database,
    owner: String,
    held: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.renew.abort();
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
        let (db, owner) = (self.db.clone(), self.owner.clone());
        let release = async move {
            // Not released (the server gone): it expires after LOCK_TTL.
            let _ = db
                .collection::<Document>(LOCK_COLLECTION)
                .delete_one(doc! { "_id": "writer", "owner": owner })
                .await;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Released before the guard is gone when the runtime allows
        // waiting (a command that ends right after would otherwise leave
        // it to expire); else as a task.
        if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| rt.block_on(release));
        } else {
            rt.spawn(release);
        }
    }
}
