//! The engine's errors, each with a stable machine code and the exit code
//! the command line returns for it.

use ferry_core::config::ConfigErrors;
use ferry_db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (every problem listed).
    // `transparent`, not "{0}": with `#[from]` the inner error is also the
    // source, and `{:#}` would print the same message twice.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The command was used wrongly (bad selection, unknown environment).
    #[error("{0}")]
    Usage(String),
    /// A database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The data cannot be promoted as it is (a value the target cannot
    /// hold, a reference that cannot be satisfied, a constraint broken).
    /// Nothing was written.
    #[error("{0}")]
    Data(String),
    /// Blocked by conflicts, gates, pipeline order, a stale plan or rows
    /// changed since. Nothing was written.
    #[error("{0}")]
    Blocked(String),
    /// The acting user may not do this. Nothing was written.
    #[error("{0}")]
    Denied(String),
}

impl Error {
    /// Stable code for `--json` output and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Usage(_) => "usage",
            Error::Db(_) => "database",
            Error::Data(_) => "data",
            Error::Blocked(_) => "blocked",
            Error::Denied(_) => "denied",
        }
    }

    /// The documented exit code: 1 error, 2 usage or config, 3 blocked,
    /// 4 permission denied.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Db(_) | Error::Data(_) => 1,
            Error::Blocked(_) => 3,
            Error::Denied(_) => 4,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
