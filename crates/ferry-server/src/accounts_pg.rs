//! The server's state in PostgreSQL, so several `ferry serve` replicas
//! behind a load balancer share users, sessions, tokens and the sign-in
//! rate limit (`[server] state_env` naming a `postgres://` URL).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use crate::accounts::{Accounts, Result, Session, StateError, User};

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS ferry_server_users (
        name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS ferry_server_sessions (
        id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ferry_server_tokens (
        id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS ferry_server_failures (user_name TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())",
];

/// The state in a PostgreSQL database.
pub struct PgAccounts {
    pool: PgPool,
}

fn fail(what: &str) -> impl Fn(sqlx::Error) -> StateError + '_ {
    move |e| StateError {
        what: format!("(PostgreSQL) failed to {what}"),
        why: e.to_string(),
    }
}

impl PgAccounts {
    /// Connects to `url` and creates the tables when missing. The URL is
    /// never part of an error.
    pub async fn open(url: &str) -> Result<PgAccounts> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StateError {
                what: "(PostgreSQL) cannot be reached".into(),
                why: ferry_core::config::redact_url(&e.to_string()),
            })?;
        for ddl in SCHEMA {
            sqlx::query(ddl)
                .execute(&pool)
                .await
                .map_err(fail("create its tables"))?;
        }
        Ok(PgAccounts { pool })
    }
}

#[async_trait]
impl Accounts for PgAccounts {
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(fail("store a user"))?;
        let existed = sqlx::query("UPDATE ferry_server_users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(fail("store a user"))?
            .rows_affected()
            > 0;
        if existed {
            sqlx::query("DELETE FROM ferry_server_sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(fail("store a user"))?;
        } else {
            sqlx::query("INSERT INTO ferry_server_users (name, password_hash) VALUES ($1, $2)")
                .bind(name)
                .bind(password_hash)
                .execute(&mut *tx)
                .await
                .map_err(fail("store a user"))?;
        }
        tx.commit().await.map_err(fail("store a user"))?;
        Ok(!existed)
    }

    async fn password_hash(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT password_hash FROM ferry_server_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(fail("read a user"))
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.name, u.created_at, (SELECT COUNT(*) FROM ferry_server_tokens t WHERE t.user_name = u.name)
             FROM ferry_server_users u ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(fail("list the users"))?;
        rows.iter()
            .map(|r| {
                let at: DateTime<Utc> = r.try_get(1)?;
                Ok(User {
                    name: r.try_get(0)?,
                    created_at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    tokens: r.try_get::<i64, _>(2)? as u64,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(fail("list the users"))
    }

    async fn remove(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(fail("remove a user"))?;
        for table in ["ferry_server_sessions", "ferry_server_tokens", "ferry_server_failures"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_name = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(fail("remove a user"))?;
        }
        let removed = sqlx::query("DELETE FROM ferry_server_users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(fail("remove a user"))?
            .rows_affected()
            > 0;
        tx.commit().await.map_err(fail("remove a user"))?;
        Ok(removed)
    }

    async fn add_session(&self, id_hash: &str, session: &Session) -> Result<()> {
        sqlx::query("INSERT INTO ferry_server_sessions (id_hash, user_name, csrf, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(id_hash)
            .bind(&session.user)
            .bind(&session.csrf)
            .bind(session.expires_at)
            .execute(&self.pool)
            .await
            .map_err(fail("store a session"))?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.user_name, s.csrf, s.expires_at FROM ferry_server_sessions s
             JOIN ferry_server_users u ON u.name = s.user_name WHERE s.id_hash = $1 AND s.expires_at > now()",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(fail("read a session"))?;
        row.map(|r| {
            Ok(Session {
                user: r.try_get(0)?,
                csrf: r.try_get(1)?,
                expires_at: r.try_get(2)?,
            })
        })
        .transpose()
        .map_err(fail("read a session"))
    }

    async fn end_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM ferry_server_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(fail("end a session"))?;
        Ok(())
    }

    async fn add_token(&self, user: &str, token_hash: &str) -> Result<()> {
        sqlx::query("INSERT INTO ferry_server_tokens (id_hash, user_name) VALUES ($1, $2)")
            .bind(token_hash)
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(fail("store a token"))?;
        Ok(())
    }

    async fn token_user(&self, token_hash: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT t.user_name FROM ferry_server_tokens t JOIN ferry_server_users u ON u.name = t.user_name
             WHERE t.id_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(fail("read a token"))
    }

    async fn failed_sign_in(&self, user: &str, since: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(fail("count failed sign-ins"))?;
        sqlx::query("DELETE FROM ferry_server_failures WHERE at < $1")
            .bind(since)
            .execute(&mut *tx)
            .await
            .map_err(fail("count failed sign-ins"))?;
        sqlx::query("INSERT INTO ferry_server_failures (user_name) VALUES ($1)")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(fail("count failed sign-ins"))?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ferry_server_failures WHERE user_name = $1")
            .bind(user)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail("count failed sign-ins"))?;
        tx.commit().await.map_err(fail("count failed sign-ins"))?;
        Ok(n as u64)
    }

    async fn clear_failures(&self, user: &str) -> Result<()> {
        sqlx::query("DELETE FROM ferry_server_failures WHERE user_name = $1")
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(fail("clear failed sign-ins"))?;
        Ok(())
    }
}
