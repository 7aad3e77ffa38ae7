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
    crate::mongo::BACKEND,
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

/// The URL of the per-branch clone `name` of the environment at `url`:
/// SQLite `STEM-NAME.db` beside the parent's file; PostgreSQL and MySQL
/// the database `PARENTDB_NAME` (underscores for dashes) on the parent's
/// server, with the same credentials. `None` when no backend opens `url`
/// or it names no file or database.
pub fn clone_url(url: &str, name: &str) -> Option<String> {
    match find(url)?.engine {
        Engine::Sqlite => {
            let (head, rest) = url.split_at(url.find(':')? + 1);
            let (slashes, rest) = rest.strip_prefix("//").map_or(("", rest), |r| ("//", r));
            let path = rest.split('?').next().unwrap_or(rest);
            let (dir, file) = path.rsplit_once('/').map_or(("", path), |(d, f)| (d, f));
            let (stem, ext) = file.rsplit_once('.').unwrap_or((file, "db"));
            if stem.is_empty() {
                return None;
            }
            let dir = if path.contains('/') {
                format!("{dir}/")
            } else {
                String::new()
            };
            Some(format!("{head}{slashes}{dir}{stem}-{name}.{ext}"))
        }
        Engine::Postgres | Engine::Mysql | Engine::Mongo => {
            let (before_query, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
            let after_scheme = before_query.find("//")? + 2;
            let slash = after_scheme + before_query[after_scheme..].find('/')?;
            let db = &before_query[slash + 1..];
            if db.is_empty() || db.contains('/') {
                return None;
            }
            let mut out = format!("{}/{}", &before_query[..slash], server_db_name(db, name));
            if let Some(q) = query {
                out.push('?');
                out.push_str(q);
            }
            Some(out)
        }
        // A folder of files has no clone: branch environments are cloned
        // from databases.
        Engine::Dir => None,
    }
}

/// The database name of the clone `name` of database `parent` on a server.
pub fn server_db_name(parent: &str, name: &str) -> String {
    format!("{parent}_{}", name.replace('-', "_"))
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
        assert_eq!(engine("mongodb://h/db"), Some(Engine::Mongo));
        assert_eq!(engine("mongodb+srv://u@cluster.example.net/db"), Some(Engine::Mongo));
        assert_eq!(engine("staging.db"), None);
        // A server URL without `//` is no URL of a server.
        assert_eq!(engine("postgres:/u:pw@h/db"), None);
        assert_eq!(
            UrlKind::examples(&url_kinds()),
            "sqlite://PATH, postgres://USER@HOST/DB, mysql://USER@HOST/DB, dir:PATH or mongodb://USER@HOST/DB"
        );
    }

    #[test]
    fn clone_urls() {
        let c = |url| clone_url(url, "feature-x");
        assert_eq!(c("sqlite://prod.db").as_deref(), Some("sqlite://prod-feature-x.db"));
        assert_eq!(
            c("sqlite:data/prod.sqlite3").as_deref(),
            Some("sqlite:data/prod-feature-x.sqlite3")
        );
        assert_eq!(
            c("sqlite:///abs/dir/prod").as_deref(),
            Some("sqlite:///abs/dir/prod-feature-x.db")
        );
        assert_eq!(
            c("postgres://u:pw@h:5432/site?sslmode=require").as_deref(),
            Some("postgres://u:pw@h:5432/site_feature_x?sslmode=require")
        );
        assert_eq!(
            c("mysql://root@127.0.0.1/cms").as_deref(),
            Some("mysql://root@127.0.0.1/cms_feature_x")
        );
        assert_eq!(
            c("mongodb://u:pw@h1:27017,h2:27017/cms?replicaSet=rs0").as_deref(),
            Some("mongodb://u:pw@h1:27017,h2:27017/cms_feature_x?replicaSet=rs0")
        );
        assert_eq!(
            c("mongodb+srv://u@cluster.example.net/cms").as_deref(),
            Some("mongodb+srv://u@cluster.example.net/cms_feature_x")
        );
        assert_eq!(c("mongodb://h/?directConnection=true"), None);
        assert_eq!(c("postgres://h"), None);
        assert_eq!(c("dir:content"), None);
    }
}
