//! Ferry's operations over stores: plan, promote, journal, revert, baseline
//! and check. The command line and the server are thin layers over this.
#![forbid(unsafe_code)]

pub mod apply;
pub mod audit;
pub mod baseline;
pub mod check;
pub mod error;
pub mod export;
pub mod gates;
pub mod hooks;
pub mod inspect;
pub mod journal;
mod json_ids;
pub mod lock;
mod merge;
pub mod ops;
pub mod paging;
pub mod pair;
pub mod planner;
pub mod progress;
pub mod project;
pub mod registry;
pub mod revert;
pub mod reviews;
pub mod saved;
pub mod traces;
pub mod views;
pub mod watermarks;

pub use error::{Error, Result};
/// The store a front end reads through (listings, `plan -o`'s source checks).
pub use ferry_db::Store;
