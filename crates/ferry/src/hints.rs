//! The engine's hints (`ferry_engine::error::Hint`) as the command line
//! says them: the flag or command that does what the hint offers, appended
//! to the error's message.

use ferry_engine::error::{Hint, Part};
use ferry_engine::Error;

/// What to append to an error's message for `hint`.
pub fn text(hint: &Hint) -> String {
    match hint {
        Hint::Wait => ", or leave out --no-wait to wait for it".into(),
        Hint::Conflicts {
            from,
            to,
            first_contact,
        } => {
            let mut s = format!(
                "\nSee them with `ferry diff {from} {to}`; leave those rows out of the selection, or pass --force to let `{from}` win"
            );
            if *first_contact {
                s.push_str(&format!(
                    "\n`no-base` rows differ and were never synced (first contact): the same id may hold unrelated rows. Decide each with `ferry promote {from} {to} --id TABLE:KEY --take source` (or `--take target` to keep the target's row and record it as synced)"
                ));
            }
            s
        }
        Hint::ForceCannotWrite => "; --force cannot write them".into(),
        Hint::Replan { from, to } => format!("; make a new plan with `ferry plan {from} {to}` and review it again"),
        Hint::Stale { from, to } => {
            format!("; see them again with `ferry diff {from} {to}` and promote what you choose")
        }
        Hint::ShowPromotion { id } => format!(
            ". See it with `ferry show {id}`; to apply the same changes again, revert that promotion or make a new plan"
        ),
        Hint::DecideReview => "; decide the review first (`ferry review show ID`, then approve or reject it)".into(),
        Hint::RevertRevert { revert } => format!("; `ferry revert {revert}` re-applies it"),
        Hint::ForceRevert => "; pass --force to restore the before-images anyway".into(),
        Hint::NoConfig => "; run `ferry init` to write a starter ferry.toml, or pass --config PATH".into(),
        Hint::ListPromotions { not_searched } => format!("; `ferry log` lists them{}", unsearched(not_searched)),
        Hint::ListReviews { not_searched } => format!("; `ferry reviews` lists them{}", unsearched(not_searched)),
        Hint::OnlyTables { tables } => {
            let flags: Vec<String> = tables.iter().map(|t| format!("--table {t}")).collect();
            format!(
                "hint: until the schemas agree, the tables these problems do not touch can be promoted with {}",
                flags.join(" ")
            )
        }
        Hint::NameRows => ": name them with --id TABLE:KEY".into(),
        Hint::Steps { steps } => {
            let commands: Vec<String> = steps.iter().map(|(a, b)| format!("`ferry promote {a} {b}`")).collect();
            format!(": {}", commands.join(", then "))
        }
        Hint::Baseline { from, to } => format!(" with `ferry baseline {from} {to}`"),
        Hint::Refresh { env, from } => format!(" with `ferry refresh {env} --from {from}`"),
        Hint::DropExcluded => "; pass --drop-excluded to delete those excluded rows with the refresh".into(),
        Hint::ListedUser => "; act as a listed user with --as USER or FERRY_USER".into(),
        Hint::BaselineAgain => {
            ", or delete this row and run `ferry baseline` to record the row's sync base again".into()
        }
    }
}

/// The environments a lookup could not search, when there are any.
fn unsearched(envs: &[String]) -> String {
    if envs.is_empty() {
        String::new()
    } else {
        format!(" (not searched: {})", envs.join("; "))
    }
}

/// An error's whole message for people: the engine's message, then its
/// hint as flags and commands.
pub fn message(e: &anyhow::Error) -> String {
    let engine = e.downcast_ref::<Error>();
    let hint = engine.and_then(Error::hint_of).map(text).unwrap_or_default();
    // A part of the selection is named by the flag it came with, when the
    // error is the whole message (no context around it).
    if let Some(Error::Selection { part, given, message }) = engine.map(Error::inner) {
        if e.chain().count() == 1 {
            let flag = match part {
                Part::Row => "--id",
                Part::Condition => "--where",
            };
            return format!("{flag} {given}: {message}{hint}");
        }
    }
    format!("{e:#}{hint}")
}
