//! The server's own state: users (their password hashes), sessions, API
//! tokens and failed sign-ins. Roles are not here: they stay in
//! `[access]` of ferry.toml, the one source of truth. Everything that
//! matters lives in the state store, so several `ferry serve` replicas
//! that share it behave as one.
//!
//! Secrets are kept hashed: passwords with argon2id, session ids and tokens
//! (32 random bytes each) with blake3.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use ferry_core::config::UrlSource;
use ferry_engine::project::Project;

/// A state store error: what failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[error("the server state store {what}: {why}")]
pub struct StateError {
    pub what: String,
    pub why: String,
}

pub type Result<T> = std::result::Result<T, StateError>;

/// A user who may sign in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    pub created_at: String,
    /// How many API tokens the user holds.
    pub tokens: u64,
}

/// A signed-in browser session.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    /// The token every state-changing request of this session carries.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// How long a session lasts after sign-in.
pub const SESSION_HOURS: i64 = 12;

/// Where the server keeps its state. One implementation per kind of store
/// (SQLite, PostgreSQL); the server only sees this trait.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Adds `name` with an argon2id hash of `password`, or replaces the
    /// password of an existing user (ending their sessions).
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool>;
    /// The user and their password hash.
    async fn password_hash(&self, name: &str) -> Result<Option<String>>;
    /// Every user, by name.
    async fn users(&self) -> Result<Vec<User>>;
    /// Removes the user with their sessions and tokens; false when there
    /// was no such user.
    async fn remove(&self, name: &str) -> Result<bool>;
    /// Stores a session under the hash of its id.
    async fn add_session(&self, id_hash: &str, session: &Session) -> Result<()>;
    /// The live session whose id hashes to `id_hash`.
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Ends a session.
    async fn end_session(&self, id_hash: &str) -> Result<()>;
    /// Stores an API token of `user` under its hash.
    async fn add_token(&self, user: &str, token_hash: &str) -> Result<()>;
    /// The user of the token whose hash is `token_hash`.
    async fn token_user(&self, token_hash: &str) -> Result<Option<String>>;
    /// Records a failed sign-in of `user`, and answers how many failed
    /// since `since` (this one included).
    async fn failed_sign_in(&self, user: &str, since: DateTime<Utc>) -> Result<u64>;
    /// Forgets the failed sign-ins of `user` (after a good one).
    async fn clear_failures(&self, user: &str) -> Result<()>;
}

/// Opens the state store `[server]` names (default: `ferry-server.db`
/// beside ferry.toml), creating its tables when missing.
pub async fn open(project: &Project) -> anyhow::Result<Arc<dyn Accounts>> {
    let url = match &project.config.server.state {
        None => {
            return Ok(Arc::new(SqliteAccounts::open(
                &project.config.base_dir.join("ferry-server.db"),
            )?))
        }
        Some(UrlSource::Inline(u)) => u.clone(),
        Some(UrlSource::Variable(var)) => std::env::var(var).map_err(|_| {
            anyhow::anyhow!("[server] state_env names `{var}`, which is not set; set it to the state store's URL")
        })?,
    };
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = PathBuf::from(path);
        let path = if path.is_absolute() {
            path
        } else {
            project.config.base_dir.join(path)
        };
        return Ok(Arc::new(SqliteAccounts::open(&path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(crate::accounts_pg::PgAccounts::open(&url).await?));
    }
    anyhow::bail!(
        "[server] state: `{}` is not a state store; use sqlite://FILE or postgres://HOST/DB",
        ferry_core::config::redact_url(&url)
    )
}

/// An argon2id hash of `password` (PHC string, salt included).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored `hash`; a hash that does not
/// parse is an error, not a mismatch.
pub fn verify_password(password: &str, hash: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("a stored password hash is damaged: {e}"))?;
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// 32 random bytes as URL-safe text: session ids, tokens, CSRF tokens.
pub fn secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The hash a session id or token is stored under.
pub fn digest(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// A new session for `user`: its id (for the cookie, never stored) and
/// what is stored.
pub fn new_session(user: &str) -> (String, Session) {
    (
        secret(),
        Session {
            user: user.to_string(),
            csrf: secret(),
            expires_at: Utc::now() + Duration::hours(SESSION_HOURS),
        },
    )
}

/// The state in a SQLite file, through one connection (the server's state
/// is small, and its writes rare).
pub struct SqliteAccounts {
    path: PathBuf,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ferry_server_users (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_server_sessions (
    id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_server_tokens (
    id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_server_failures (
    user_name TEXT NOT NULL, at TEXT NOT NULL);
";

impl SqliteAccounts {
    /// Opens (creating when missing) the state file at `path`.
    pub fn open(path: &Path) -> Result<SqliteAccounts> {
        let fail = |why: String| StateError {
            what: format!("{} cannot be opened", path.display()),
            why,
        };
        let conn = rusqlite::Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(SQLITE_SCHEMA).map_err(|e| fail(e.to_string()))?;
        Ok(SqliteAccounts {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let fail = move |why: String| StateError {
            what: format!("{} failed to {what}", path.display()),
            why,
        };
        let joined = tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await;
        match joined {
            Ok(r) => r.map_err(|e| fail(e.to_string())),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[async_trait]
impl Accounts for SqliteAccounts {
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.with("store a user", move |c| {
            let tx = c.transaction()?;
            let existed = tx.execute(
                "UPDATE ferry_server_users SET password_hash = ?1 WHERE name = ?2",
                (&hash, &name),
            )? > 0;
            if existed {
                tx.execute("DELETE FROM ferry_server_sessions WHERE user_name = ?1", [&name])?;
            } else {
                tx.execute(
                    "INSERT INTO ferry_server_users (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
                    (&name, &hash, now_text()),
                )?;
            }
            tx.commit()?;
            Ok(!existed)
        })
        .await
    }

    async fn password_hash(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_string();
        self.with("read a user", move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT password_hash FROM ferry_server_users WHERE name = ?1",
                [&name],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.with("list the users", |c| {
            let mut st = c.prepare(
                "SELECT u.name, u.created_at, (SELECT COUNT(*) FROM ferry_server_tokens t WHERE t.user_name = u.name)
                 FROM ferry_server_users u ORDER BY u.name",
            )?;
            let rows = st.query_map([], |r| {
                Ok(User {
                    name: r.get(0)?,
                    created_at: r.get(1)?,
                    tokens: r.get::<_, i64>(2)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn remove(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with("remove a user", move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM ferry_server_sessions WHERE user_name = ?1", [&name])?;
            tx.execute("DELETE FROM ferry_server_tokens WHERE user_name = ?1", [&name])?;
            tx.execute("DELETE FROM ferry_server_failures WHERE user_name = ?1", [&name])?;
            let removed = tx.execute("DELETE FROM ferry_server_users WHERE name = ?1", [&name])? > 0;
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn add_session(&self, id_hash: &str, session: &Session) -> Result<()> {
        let (id, s) = (id_hash.to_string(), session.clone());
        self.with("store a session", move |c| {
            c.execute(
                "INSERT INTO ferry_server_sessions (id_hash, user_name, csrf, expires_at) VALUES (?1, ?2, ?3, ?4)",
                (&id, &s.user, &s.csrf, s.expires_at.to_rfc3339()),
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let id = id_hash.to_string();
        let row: Option<(String, String, String)> = self
            .with("read a session", move |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT s.user_name, s.csrf, s.expires_at FROM ferry_server_sessions s
                     JOIN ferry_server_users u ON u.name = s.user_name WHERE s.id_hash = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
            })
            .await?;
        let Some((user, csrf, expires)) = row else {
            return Ok(None);
        };
        let expires_at = DateTime::parse_from_rfc3339(&expires)
            .map_err(|e| StateError {
                what: format!("{} holds a damaged session", self.path.display()),
                why: format!("expires_at `{expires}`: {e}"),
            })?
            .with_timezone(&Utc);
        Ok((expires_at > Utc::now()).then_some(Session { user, csrf, expires_at }))
    }

    async fn end_session(&self, id_hash: &str) -> Result<()> {
        let id = id_hash.to_string();
        self.with("end a session", move |c| {
            c.execute("DELETE FROM ferry_server_sessions WHERE id_hash = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    async fn add_token(&self, user: &str, token_hash: &str) -> Result<()> {
        let (user, hash) = (user.to_string(), token_hash.to_string());
        self.with("store a token", move |c| {
            c.execute(
                "INSERT INTO ferry_server_tokens (id_hash, user_name, created_at) VALUES (?1, ?2, ?3)",
                (&hash, &user, now_text()),
            )?;
            Ok(())
        })
        .await
    }

    async fn token_user(&self, token_hash: &str) -> Result<Option<String>> {
        let hash = token_hash.to_string();
        self.with("read a token", move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT t.user_name FROM ferry_server_tokens t JOIN ferry_server_users u ON u.name = t.user_name
                 WHERE t.id_hash = ?1",
                [&hash],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn failed_sign_in(&self, user: &str, since: DateTime<Utc>) -> Result<u64> {
        let user = user.to_string();
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.with("count failed sign-ins", move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM ferry_server_failures WHERE at < ?1", [&since])?;
            tx.execute(
                "INSERT INTO ferry_server_failures (user_name, at) VALUES (?1, ?2)",
                (&user, now_text()),
            )?;
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM ferry_server_failures WHERE user_name = ?1",
                [&user],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn clear_failures(&self, user: &str) -> Result<()> {
        let user = user.to_string();
        self.with("clear failed sign-ins", move |c| {
            c.execute("DELETE FROM ferry_server_failures WHERE user_name = ?1", [&user])?;
            Ok(())
        })
        .await
    }
}
