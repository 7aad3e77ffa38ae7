//! Integration tests of the `ferry` binary on real SQLite files.

mod bad_input;
mod commands;
mod common;
mod demo_init;
mod gates_hooks;
mod reviewer_view;
mod reviews;
mod reviews_postgres;
mod three_way_cli;
mod torture;
