//! What a store reports about a table: its columns, their types and keys.
//! Stores fill these in; the core only reads them.

use crate::value::ColumnType;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// The type as the database declares it (`varchar(20)`, `INTEGER`, ...).
    pub declared: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// The database fills it when an insert leaves it out (default,
    /// auto-increment, identity, generated).
    pub has_default: bool,
    /// The target assigns it (auto-increment, serial, identity, rowid alias).
    pub auto_increment: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The columns of every unique constraint or unique index besides the
    /// primary key (partial and expression indexes left out: Ferry cannot
    /// tell which rows they hold).
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}
