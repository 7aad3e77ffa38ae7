//! How a directory store commits: every file of a transaction is written
//! aside under `_ferry/txn/`, then one manifest of renames and removals is
//! renamed into place (the commit point), then the manifest is replayed.
//! A crash before the commit point leaves the previous state (the aside
//! files are discarded on the next open); a crash after it leaves a
//! manifest that the next writer or open replays to the end. Replaying is
//! idempotent, so a half-replayed manifest is finished, never doubled.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{DbError, DbErrorKind};

/// The folder a transaction writes aside.
pub const TXN_DIR: &str = "_ferry/txn";
const MANIFEST: &str = "manifest.json";

/// One file of a commit: written with these bytes, or removed (`None`).
#[derive(Clone, Debug)]
pub(crate) struct Change {
    /// Relative to the store's folder, `/`-separated.
    pub path: String,
    pub bytes: Option<Vec<u8>>,
}

fn io(env: &str, what: &str, path: &Path, e: std::io::Error) -> DbError {
    DbError::new(
        DbErrorKind::Unreachable,
        env,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

fn write_synced(env: &str, path: &Path, bytes: &[u8]) -> Result<(), DbError> {
    let mut f = fs::File::create(path).map_err(|e| io(env, "create", path, e))?;
    f.write_all(bytes).map_err(|e| io(env, "write", path, e))?;
    f.sync_all().map_err(|e| io(env, "sync", path, e))
}

fn sync_dir(env: &str, path: &Path) -> Result<(), DbError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(env, "sync the folder", path, e))
}

/// Commits `changes` into `root` atomically (see the module's text). The
/// caller holds the store's writer lock.
pub(crate) fn commit(env: &str, root: &Path, changes: &[Change]) -> Result<(), DbError> {
    if changes.is_empty() {
        return Ok(());
    }
    stage(env, root, changes)?;
    replay(env, root)
}

/// Writes the aside files and the manifest, up to and including the commit
/// point, without replaying it.
pub(crate) fn stage(env: &str, root: &Path, changes: &[Change]) -> Result<(), DbError> {
    let txn = root.join(TXN_DIR);
    if txn.exists() {
        fs::remove_dir_all(&txn).map_err(|e| io(env, "remove", &txn, e))?;
    }
    let files = txn.join("files");
    fs::create_dir_all(&files).map_err(|e| io(env, "create", &files, e))?;
    let mut manifest = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        match &c.bytes {
            Some(b) => {
                write_synced(env, &files.join(i.to_string()), b)?;
                manifest.push(serde_json::json!({"path": c.path, "file": i.to_string()}));
            }
            None => manifest.push(serde_json::json!({"path": c.path, "remove": true})),
        }
    }
    sync_dir(env, &files)?;
    let part = txn.join("manifest.part");
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| {
        DbError::new(
            DbErrorKind::Query,
            env,
            format!("cannot write the commit manifest: {e}"),
        )
    })?;
    write_synced(env, &part, &text)?;
    let done = txn.join(MANIFEST);
    fs::rename(&part, &done).map_err(|e| io(env, "rename", &part, e))?;
    sync_dir(env, &txn)
}

/// Brings the folder to a committed state: replays a committed manifest,
/// or discards files written aside by a transaction that never reached its
/// commit point. The caller holds the writer lock (or is the only writer).
pub(crate) fn recover(env: &str, root: &Path) -> Result<(), DbError> {
    let txn = root.join(TXN_DIR);
    if txn.join(MANIFEST).exists() {
        replay(env, root)
    } else if txn.exists() {
        fs::remove_dir_all(&txn).map_err(|e| io(env, "remove", &txn, e))
    } else {
        Ok(())
    }
}

fn replay(env: &str, root: &Path) -> Result<(), DbError> {
    let txn = root.join(TXN_DIR);
    let path = txn.join(MANIFEST);
    let text = fs::read(&path).map_err(|e| io(env, "read", &path, e))?;
    let damaged = |what: &str| {
        DbError::new(
            DbErrorKind::Damaged,
            env,
            format!(
                "the commit manifest {} {what}; restore the folder from version control",
                path.display()
            ),
        )
    };
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| damaged(&format!("is no JSON ({e})")))?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in &entries {
        let rel = entry["path"]
            .as_str()
            .ok_or_else(|| damaged("has an entry without a path"))?;
        let target = root.join(rel);
        match entry["file"].as_str() {
            Some(file) => {
                let staged = txn.join("files").join(file);
                if staged.exists() {
                    let parent = target.parent().unwrap_or(root);
                    fs::create_dir_all(parent).map_err(|e| io(env, "create", parent, e))?;
                    fs::rename(&staged, &target).map_err(|e| io(env, "rename into place", &target, e))?;
                    dirs.push(parent.to_path_buf());
                }
            }
            None => match fs::remove_file(&target) {
                Ok(()) => dirs.push(target.parent().unwrap_or(root).to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(env, "remove", &target, e)),
            },
        }
    }
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        sync_dir(env, d)?;
    }
    fs::remove_dir_all(&txn).map_err(|e| io(env, "remove", &txn, e))
}
