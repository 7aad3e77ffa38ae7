//! The only place that builds SQL text: identifier quoting, placeholders and
//! the statements every store runs, per dialect.

use crate::{FetchRequest, ScanRequest};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    /// Quotes an identifier so capitals, spaces and reserved words work.
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The `n`-th placeholder (1-based).
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Mysql => "?".to_string(),
        }
    }

    /// Most bound parameters one statement may carry.
    pub fn max_params(self) -> usize {
        match self {
            Dialect::Sqlite => 32_766,
            Dialect::Postgres | Dialect::Mysql => 65_535,
        }
    }

    fn list(self, cols: &[String]) -> String {
        cols.iter().map(|c| self.ident(c)).collect::<Vec<_>>().join(", ")
    }

    /// `ORDER BY` on a key with byte-wise text order on every engine.
    fn order_by(self, cols: &[String]) -> String {
        cols.iter()
            .map(|c| match self {
                Dialect::Sqlite => format!("{} COLLATE BINARY", self.ident(c)),
                Dialect::Postgres => format!("{} COLLATE \"C\"", self.ident(c)),
                Dialect::Mysql => self.ident(c),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn flag_column(self, flag: &Option<String>) -> String {
        match flag {
            Some(pred) => format!(", (({pred}) IS TRUE)"),
            None => String::new(),
        }
    }

    pub fn scan(self, req: &ScanRequest) -> String {
        let mut sql = format!(
            "SELECT {}{} FROM {}",
            self.list(&req.columns),
            self.flag_column(&req.flag),
            self.ident(&req.table)
        );
        if let Some(f) = &req.filter {
            sql.push_str(&format!(" WHERE ({f})"));
        }
        if !req.order_by.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", self.order_by(&req.order_by)));
        }
        sql
    }

    /// A fetch of `n` value tuples; parameters numbered from 1.
    pub fn fetch(self, req: &FetchRequest, n: usize) -> String {
        let m = req.match_columns.len();
        let mut p = 0;
        let mut next = || {
            p += 1;
            self.param(p)
        };
        let cond = if m == 1 {
            let params: Vec<String> = (0..n).map(|_| next()).collect();
            format!("{} IN ({})", self.ident(&req.match_columns[0]), params.join(", "))
        } else {
            let tuples: Vec<String> = (0..n)
                .map(|_| {
                    let parts: Vec<String> = req
                        .match_columns
                        .iter()
                        .map(|c| format!("{} = {}", self.ident(c), next()))
                        .collect();
                    format!("({})", parts.join(" AND "))
                })
                .collect();
            tuples.join(" OR ")
        };
        let mut sql = format!(
            "SELECT {}{} FROM {} WHERE ({cond})",
            self.list(&req.columns),
            self.flag_column(&req.flag),
            self.ident(&req.table)
        );
        if let Some(f) = &req.filter {
            sql.push_str(&format!(" AND ({f})"));
        }
        sql
    }

    /// A multi-row insert of `rows` rows.
    pub fn insert(self, table: &str, columns: &[String], rows: usize) -> String {
        let mut p = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let params: Vec<String> = columns
                    .iter()
                    .map(|_| {
                        p += 1;
                        self.param(p)
                    })
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.ident(table),
            self.list(columns),
            tuples.join(", ")
        )
    }

    /// An update of one row: the `set` parameters first, then the key.
    pub fn update(self, table: &str, key: &[String], set: &[String]) -> String {
        let mut p = 0;
        let mut next = || {
            p += 1;
            self.param(p)
        };
        let sets: Vec<String> = set.iter().map(|c| format!("{} = {}", self.ident(c), next())).collect();
        let wheres: Vec<String> = key.iter().map(|c| format!("{} = {}", self.ident(c), next())).collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.ident(table),
            sets.join(", "),
            wheres.join(" AND ")
        )
    }

    /// A delete of one row by key.
    pub fn delete(self, table: &str, key: &[String]) -> String {
        let wheres: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = {}", self.ident(c), self.param(i + 1)))
            .collect();
        format!("DELETE FROM {} WHERE {}", self.ident(table), wheres.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(Dialect::Sqlite.ident("Order \"x\""), "\"Order \"\"x\"\"\"");
        assert_eq!(Dialect::Mysql.ident("a`b"), "`a``b`");
    }

    #[test]
    fn builds_statements() {
        let cols = vec!["id".to_string(), "name".to_string()];
        assert_eq!(
            Dialect::Postgres.insert("t", &cols, 2),
            "INSERT INTO \"t\" (\"id\", \"name\") VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            Dialect::Sqlite.update("t", &cols[..1], &cols[1..]),
            "UPDATE \"t\" SET \"name\" = ?1 WHERE \"id\" = ?2"
        );
    }
}
