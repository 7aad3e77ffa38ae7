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
    Db(DbError),
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
    /// A part of the request's selection does not fit: `given` is that part
    /// as given (`businesses:7`, `businesses:city_id = 2`). Each front end
    /// names it its own way (the command line by the flag it came with).
    #[error("{} `{given}`: {message}", part.noun())]
    Selection { part: Part, given: String, message: String },
    /// An error and what the user can do about it, which each front end
    /// offers in its own way (the command line names a flag or a command,
    /// a server shows a button). The message names neither.
    #[error("{0}")]
    Hinted(Box<Error>, Hint),
}

/// Which part of a selection an [`Error::Selection`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// A row named by its table and key.
    Row,
    /// A condition on a table's rows.
    Condition,
}

impl Part {
    /// The part in a front-end-neutral message.
    pub fn noun(self) -> &'static str {
        match self {
            Part::Row => "row",
            Part::Condition => "condition",
        }
    }
}

/// A damaged record of Ferry's own (`DbErrorKind::Damaged`) is a data
/// error, as when the engine decoded it itself; any other is a database's.
impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e.kind {
            ferry_db::DbErrorKind::Damaged => Error::Data(e.message),
            _ => Error::Db(e),
        }
    }
}

/// What a user can do about an error, front-end neutral.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Hint {
    /// Another writer holds the lock of this environment: wait for it.
    Wait,
    /// Conflicts block a promotion: see them, or let the source win them;
    /// `first_contact`: some are first contacts, decided row by row by
    /// taking one side.
    Conflicts {
        from: String,
        to: String,
        first_contact: bool,
    },
    /// Rows the target would refuse (unique constraints): letting the
    /// source win does not write them.
    ForceCannotWrite,
    /// A saved plan no longer fits the target: make a new plan and review it.
    Replan { from: String, to: String },
    /// The changes a promotion was asked to apply are not the ones shown
    /// any more (another edit or promotion moved them): look at the
    /// changes again and choose again.
    Stale { from: String, to: String },
    /// A saved plan was applied already as this promotion: look at it.
    ShowPromotion { id: String },
    /// Rows wait in an open review: decide it first.
    DecideReview,
    /// A promotion is already reverted: reverting its revert re-applies it.
    RevertRevert { revert: String },
    /// Rows changed since the promotion: reverting anyway restores the
    /// before-images over them.
    ForceRevert,
    /// No configuration where it was looked for: write a starter one, or
    /// name another.
    NoConfig,
    /// No environment has this promotion: list them; `not_searched`: the
    /// environments that could not be opened (`NAME (why)`).
    ListPromotions { not_searched: Vec<String> },
    /// No environment has this review: list them; as for `ListPromotions`.
    ListReviews { not_searched: Vec<String> },
    /// Until the schemas agree, these tables (which no drifted table
    /// touches) can still be promoted on their own.
    OnlyTables { tables: Vec<String> },
    /// A side is taken for single rows only: name them.
    NameRows,
    /// A route skips environments of the pipeline: promote along these
    /// steps instead, one after the other.
    Steps { steps: Vec<(String, String)> },
    /// Record the rows equal in `from` and `to` as in sync.
    Baseline { from: String, to: String },
    /// Reset `env` to match `from`, further down the pipeline (a refresh).
    Refresh { env: String, from: String },
    /// Excluded rows reference rows a refresh deletes: delete those
    /// excluded rows with it.
    DropExcluded,
    /// The acting user is not listed in `[access]`: act as one who is.
    ListedUser,
    /// A damaged sync base row: deleting it and recording a baseline again
    /// also repairs it.
    BaselineAgain,
}

impl Error {
    /// `self` with `hint`.
    pub fn hint(self, hint: Hint) -> Error {
        Error::Hinted(Box::new(self), hint)
    }

    /// Whether the acting user was refused (with or without a hint).
    pub fn is_denied(&self) -> bool {
        matches!(self.inner(), Error::Denied(_))
    }

    /// The error without its hint.
    pub fn inner(&self) -> &Error {
        match self {
            Error::Hinted(e, _) => e.inner(),
            e => e,
        }
    }

    /// What the user can do about it, if Ferry knows.
    pub fn hint_of(&self) -> Option<&Hint> {
        match self {
            Error::Hinted(_, h) => Some(h),
            _ => None,
        }
    }

    /// The body a front end shows for the error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            hint: self.hint_of().cloned(),
        }
    }
}

/// An error as a front end shows it: its stable code, the message (naming
/// no flag or command) and the hint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<Hint>,
}

impl Error {
    /// Stable code for `--json` output and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Usage(_) | Error::Selection { .. } => "usage",
            Error::Db(_) => "database",
            Error::Data(_) => "data",
            Error::Blocked(_) => "blocked",
            Error::Denied(_) => "denied",
            Error::Hinted(e, _) => e.code(),
        }
    }

    /// The documented exit code: 1 error, 2 usage or config, 3 blocked,
    /// 4 permission denied.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Selection { .. } => 2,
            Error::Db(_) | Error::Data(_) => 1,
            Error::Blocked(_) => 3,
            Error::Denied(_) => 4,
            Error::Hinted(e, _) => e.exit_code(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hinted_error_keeps_its_code_and_message_and_names_no_flag() {
        let e = Error::Blocked("another Ferry writer is working on `production`".into()).hint(Hint::Wait);
        assert_eq!((e.code(), e.exit_code()), ("blocked", 3));
        assert_eq!(e.to_string(), "another Ferry writer is working on `production`");
        assert!(matches!(e.inner(), Error::Blocked(_)));
        let body = serde_json::to_value(e.body()).expect("the body serializes");
        assert_eq!(
            body,
            serde_json::json!({"code": "blocked", "message": "another Ferry writer is working on `production`", "hint": {"kind": "wait"}})
        );
        let plain = Error::Usage("no".into()).body();
        assert_eq!(plain.hint, None);
        let conflicts = Hint::Conflicts {
            from: "staging".into(),
            to: "production".into(),
            first_contact: true,
        };
        assert_eq!(
            serde_json::to_value(&conflicts).expect("serializes"),
            serde_json::json!({"kind": "conflicts", "from": "staging", "to": "production", "first_contact": true})
        );
    }
}
