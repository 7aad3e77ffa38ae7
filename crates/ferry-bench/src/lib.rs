//! `ferry-bench`: the benchmark of issue 6. Generates the admin-metadata
//! workload (`shared/workloads/README.md`) on SQLite, PostgreSQL and
//! MariaDB, times Ferry's `plan` and `promote` through its library, and
//! measures the baselines in the same run: `sqldiff` + applying its
//! output, the scan floor (each engine's client reading every managed
//! row), and a hand-written per-row sync. Every promotion is verified.
//! `--engines mongodb` runs the workload as MongoDB documents (`mongo.rs`).
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod db;
pub mod external;
pub mod gen;
pub mod mongo;
pub mod report;
pub mod schema;
pub mod serve;
pub mod sync;
pub mod timed;
