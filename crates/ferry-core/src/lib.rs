//! Ferry's pure domain: values and their canonical encoding, configuration,
//! table specs, the three-way rules and the plan.
//!
//! Nothing here does I/O or knows an engine: stores turn database rows into
//! [`value::Value`]s and schemas into [`schema::TableSchema`]s; the engine
//! feeds them through these types.
#![forbid(unsafe_code)]

pub mod access;
pub mod branch;
pub mod canonical;
pub mod config;
pub mod extjson;
pub mod json_diff;
pub mod json_refs;
pub mod plan;
pub mod rules;
pub mod schema;
pub mod selection;
pub mod spec;
pub mod value;
pub mod watermark;

pub use value::{ColumnType, LogicalType, Value};
