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
    /// A table of documents whose fields vary (a MongoDB collection):
    /// `columns` are the fields seen, any other field may appear with this
    /// type, and a row without a field holds it absent (`Value::Null`).
    /// Resolving a table whose both sides are open takes the union of
    /// their fields (`TableSpec::resolve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_fields: Option<ColumnType>,
    /// Columns the store derives from each row and writes back with it,
    /// besides `columns` (which are the row's fields), never compared: a
    /// MongoDB document's top-level field order ([`FIELD_ORDER`]). A
    /// column both sides carry is a carried column of the table's spec
    /// (`TableSpec::carried`); [`TableSchema::with_carried`] lists them
    /// as columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<String>,
}

/// The carried column of a MongoDB collection: a document's top-level
/// field names, in order, as a JSON array of strings. Never stored as a
/// field (a collection with a real field of this name is refused).
pub const FIELD_ORDER: &str = "_ferry_order";

/// Whether a column name is a carried column of some store (the journal's
/// images hold it; front ends do not show it as a changed field).
pub fn is_carried(column: &str) -> bool {
    column == FIELD_ORDER
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The schema with its carried columns as columns after the others
    /// (typed as the open fields are): what a row image holds.
    pub fn with_carried(&self) -> TableSchema {
        let ty = self
            .open_fields
            .clone()
            .unwrap_or_else(|| ColumnType::new(crate::value::LogicalType::Json));
        let mut out = self.clone();
        for n in &self.carried {
            if out.column(n).is_none() {
                out.columns.push(ColumnSchema {
                    name: n.clone(),
                    declared: "carried".into(),
                    ty: ty.clone(),
                    nullable: true,
                    has_default: false,
                    auto_increment: false,
                });
            }
        }
        out
    }

    /// An open table with `names` added as fields of its open type (those
    /// it has already are left as they are); a closed table unchanged.
    pub fn with_fields<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> TableSchema {
        let mut out = self.clone();
        let Some(ty) = &self.open_fields else {
            return out;
        };
        for n in names {
            if out.column(n).is_none() {
                out.columns.push(ColumnSchema {
                    name: n.clone(),
                    declared: "field".into(),
                    ty: ty.clone(),
                    nullable: true,
                    has_default: false,
                    auto_increment: false,
                });
            }
        }
        out
    }
}
