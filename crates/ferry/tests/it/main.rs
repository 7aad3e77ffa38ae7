//! Integration tests of the `ferry` binary on real SQLite files.

mod bad_input;
mod branch_envs;
mod branch_envs_servers;
mod commands;
mod common;
mod demo_init;
mod dir_cli;
mod forged_plan;
mod gates_hooks;
mod json_diffs;
mod json_references;
mod mongo_cli;
mod pulled_rows;
mod refresh;
mod reviewer_view;
mod reviews;
mod reviews_postgres;
mod server;
mod snapshots;
mod three_way_cli;
mod torture;
mod wagtail;
mod wagtail_shapes;
