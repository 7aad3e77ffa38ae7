//! Per-branch clones of a MongoDB database: a database beside it on the
//! same server (`registry::clone_url`: `DB_BRANCH`), holding the managed
//! collections with their options (validator, collation, ...), their
//! indexes and their documents, copied as raw BSON, byte for byte.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document, RawDocumentBuf};

use super::{driver, MongoStore};
use crate::{DbError, DbErrorKind, BATCH_ROWS};

impl MongoStore {
    /// Creates the clone `name` holding `tables`; refuses when its database
    /// exists already; drops it again when a step fails.
    pub(super) async fn create_clone(&self, name: &str, tables: &[String]) -> Result<(), DbError> {
        let target = crate::registry::server_db_name(self.db.name(), name);
        let existing = self
            .client
            .list_database_names()
            .filter(doc! { "name": &target })
            .await
            .map_err(|e| driver(&self.env, "", e))?;
        if !existing.is_empty() {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!(
                    "cannot clone environment `{}`: the database `{target}` exists already on its server; nothing was written",
                    self.env
                ),
            ));
        }
        let made = self.copy_collections(&target, tables).await;
        if let Err(why) = made {
            self.client
                .database(&target)
                .drop()
                .await
                .map_err(|e| driver(&self.env, "", e))?;
            return Err(crate::clone_failed(&self.env, &target, why));
        }
        Ok(())
    }

    /// Drops the clone `name`'s database (none is no error).
    pub(super) async fn drop_clone(&self, name: &str) -> Result<(), DbError> {
        let target = crate::registry::server_db_name(self.db.name(), name);
        self.client
            .database(&target)
            .drop()
            .await
            .map_err(|e| driver(&self.env, "", e))
    }

    async fn copy_collections(&self, target: &str, tables: &[String]) -> Result<(), DbError> {
        let to = self.client.database(target);
        for t in tables {
            let fail = |e| driver(&self.env, t, e);
            let found = self
                .db
                .run_command(doc! { "listCollections": 1, "filter": { "name": t.as_str() } })
                .await
                .map_err(fail)?;
            let info = found
                .get_document("cursor")
                .and_then(|c| c.get_array("firstBatch"))
                .ok()
                .and_then(|b| b.first())
                .and_then(|i| i.as_document())
                .ok_or_else(|| {
                    DbError::new(
                        DbErrorKind::Query,
                        &self.env,
                        "no such collection in this database (create it, e.g. db.createCollection, in every environment)",
                    )
                    .table(t.as_str())
                })?;
            // The collection as it was created: its options (validator,
            // collation, capped size ...) go back into `create`.
            let mut create = doc! { "create": t.as_str() };
            if let Ok(options) = info.get_document("options") {
                create.extend(options.clone());
            }
            to.run_command(create).await.map_err(fail)?;
            // A collection has at most 64 indexes: the first batch holds them all.
            let listed = self
                .db
                .run_command(doc! { "listIndexes": t.as_str() })
                .await
                .map_err(fail)?;
            let unreadable = |why: String| {
                DbError::new(
                    DbErrorKind::Query,
                    &self.env,
                    format!("the server's list of indexes cannot be read ({why}): {listed}"),
                )
                .table(t.as_str())
            };
            let batch = listed
                .get_document("cursor")
                .and_then(|c| c.get_array("firstBatch"))
                .map_err(|e| unreadable(e.to_string()))?;
            let mut indexes: Vec<Document> = Vec::new();
            for i in batch {
                let mut i = i
                    .as_document()
                    .ok_or_else(|| unreadable(format!("{i} is not a document")))?
                    .clone();
                if i.get_str("name") == Ok("_id_") {
                    continue;
                }
                i.remove("ns");
                i.remove("v");
                indexes.push(i);
            }
            if !indexes.is_empty() {
                to.run_command(doc! { "createIndexes": t.as_str(), "indexes": indexes })
                    .await
                    .map_err(fail)?;
            }
            let coll = to.collection::<RawDocumentBuf>(t);
            let mut cursor = self
                .db
                .collection::<RawDocumentBuf>(t)
                .find(doc! {})
                .await
                .map_err(fail)?;
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            while let Some(d) = cursor.try_next().await.map_err(fail)? {
                batch.push(d);
                if batch.len() == BATCH_ROWS {
                    coll.insert_many(std::mem::take(&mut batch)).await.map_err(fail)?;
                }
            }
            if !batch.is_empty() {
                coll.insert_many(batch).await.map_err(fail)?;
            }
        }
        Ok(())
    }
}
