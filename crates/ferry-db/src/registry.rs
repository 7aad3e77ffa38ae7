//! The one place that lists the backends: each registers how the URLs it
//! opens begin and its opener. The configuration checks URLs against
//! [`url_kinds`], and a project opens an environment with [`open`]; neither
//! names an engine. Adding a backend adds one line to [`BACKENDS`].

use std::path::Path;
use std::sync::Arc;

use ferry_core::config::UrlKind;
use futures_util::future::BoxFuture;

use crate::{DbError, Engine, Store};

/// What an opener is given: the environment's name (for messages), its
/// URL, and the folder of `ferry.toml` (relative paths start there).
#[derive(Clone, Copy, Debug)]
pub struct Opening<'a> {
    pub env: &'a str,
    pub url: &'a str,
    pub base_dir: &'a Path,
}

/// Opens a store of one backend.
pub type Opener = for<'a> fn(Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Store>, DbError>>;

/// One backend: its engine, the URLs it opens and its opener.
#[derive(Clone, Copy)]
pub struct Backend {
    pub engine: Engine,
    pub url: UrlKind,
    pub open: Opener,
}

/// Every backend of this build.
pub static BACKENDS: &[Backend] = &[
    crate::sqlite::BACKEND,
    crate::postgres::BACKEND,
    crate::mysql::BACKEND,
    crate::dir::BACKEND,
];

/// The kinds of URL this build opens, for the configuration's check.
pub fn url_kinds() -> Vec<UrlKind> {
    BACKENDS.iter().map(|b| b.url).collect()
}

/// The backend that opens `url`.
pub fn find(url: &str) -> Option<&'static Backend> {
    BACKENDS.iter().find(|b| b.url.names(url))
}

/// Opens the store `url` names; `None` when no backend opens it.
pub async fn open(opening: Opening<'_>) -> Option<Result<Arc<dyn Store>, DbError>> {
    let backend = find(opening.url)?;
    Some((backend.open)(opening).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_finds_its_backend() {
        let engine = |url| find(url).map(|b| b.engine);
        assert_eq!(engine("sqlite://a.db"), Some(Engine::Sqlite));
        assert_eq!(engine("sqlite:a.db"), Some(Engine::Sqlite));
        assert_eq!(engine("postgresql://h/db"), Some(Engine::Postgres));
        assert_eq!(engine("mariadb://h/db"), Some(Engine::Mysql));
        assert_eq!(engine("dir:content"), Some(Engine::Dir));
        assert_eq!(engine("staging.db"), None);
        // A server URL without `//` is no URL of a server.
        assert_eq!(engine("postgres:/u:pw@h/db"), None);
        assert_eq!(
            UrlKind::examples(&url_kinds()),
            "sqlite://PATH, postgres://USER@HOST/DB, mysql://USER@HOST/DB or dir:PATH"
        );
    }
}
