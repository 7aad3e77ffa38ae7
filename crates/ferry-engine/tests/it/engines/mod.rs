//! The engine against real PostgreSQL and MariaDB servers (and SQLite
//! files): exact values for every type across every engine pair, values the
//! target cannot hold, quoted identifiers, generated ids, one writer per
//! target, and the promotion scenarios on mixed engines.
//!
//! Server URLs come from `FERRY_TEST_POSTGRES_URL` and `FERRY_TEST_MYSQL_URL`
//! (for example `postgres://postgres@127.0.0.1:5432/postgres` and
//! `mysql://root@127.0.0.1:3306/mysql`); see [`support`].

mod bad_values;
mod changed;
mod column_limits;
mod concurrency;
mod dir;
mod expected_hash;
mod foreign_keys;
mod generated_ids;
mod identifiers;
mod json_paths;
mod json_references;
mod json_text;
mod listings;
mod natural_children;
mod own_records;
mod races;
mod read_only;
mod refresh;
mod round_trip;
mod scenarios;
mod support;
mod three_way;
mod unique_collisions;
