//! Integration tests of the engine on real SQLite files.

mod common;
mod engines;
mod hot_journal;
mod merge;
mod ops;
mod properties;
mod revert_preview;
mod scenarios;
mod three_way;
