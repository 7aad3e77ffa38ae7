//! The store conformance suite: one set of checks that every backend of
//! `ferry-db` must pass, run for SQLite, PostgreSQL, MariaDB, a `dir:`
//! folder and MongoDB (and, by
//! adding a line to [`conformance!`] and an arm to [`support::Backend`],
//! for every backend added later).
//!
//! Each check is one generic async function in [`cases`], taking the
//! backend; [`conformance!`] makes one test per check and backend, named
//! `CHECK::BACKEND` (`cargo test -p ferry-db --test conformance -- scans`).

mod cases;
mod cases_mongo;
mod cases_records;
mod support;

/// One module per check, with one test per backend.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                use crate::support::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    crate::cases::$check(Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    crate::cases::$check(Backend::Postgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mariadb() {
                    crate::cases::$check(Backend::Mariadb).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dir() {
                    crate::cases::$check(Backend::Dir).await
                }
            }
        )*
    };
}

conformance!(
    table_schema,
    ordered_scans,
    scans_in_batches,
    raw_scans,
    predicates,
    fetch_by_values,
    fetch_in_pieces,
    writes,
    writes_in_chunks,
    writes_beside_a_waiting_schema_change,
    write_errors_name_the_row,
    generated_ids,
    writer_locks,
    fetch_for_update,
    one_read_interface,
    rolled_back_on_drop,
    read_only_sessions,
    own_tables,
    capabilities,
    changed_columns,
    key_blocks,
    records_empty,
    records_paging,
    records_round_trip,
    records_damaged,
    records_by_status,
    records_branches,
);

/// The shared checks on MongoDB: every one, on the fixture as documents
/// (see `support::Backend::Mongo`). The few whose behaviour cannot apply
/// say so and return, guarded by what the store declares (never by
/// backend name): `table_schema` (a collection's fields are open, with no
/// declared types, generated keys or foreign keys), `generated_ids`
/// (`Capabilities::generated_ids`), `read_only_sessions` and the SQL
/// filters of `ordered_scans` (`Capabilities::sql_predicates`), and
/// `changed_columns` and `key_blocks` (no SQL store). One is left out:
/// `writes_in_chunks` (thousands of rows written in one transaction, past
/// one SQL statement's chunk) outlives SecantusDB's transaction lifetime on
/// a loaded machine; MongoDB's own batching of large writes is
/// `mongo_documents::large_writes_are_batched`.
macro_rules! conformance_mongo {
    ($($check:ident),* $(,)?) => {
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    crate::cases::$check(crate::support::Backend::Mongo).await
                }
            )*
        }
    };
}

conformance_mongo!(
    table_schema,
    ordered_scans,
    scans_in_batches,
    raw_scans,
    predicates,
    fetch_by_values,
    fetch_in_pieces,
    writes,
    write_errors_name_the_row,
    generated_ids,
    writer_locks,
    fetch_for_update,
    one_read_interface,
    rolled_back_on_drop,
    read_only_sessions,
    own_tables,
    capabilities,
    changed_columns,
    key_blocks,
    records_empty,
    records_paging,
    records_round_trip,
    records_damaged,
    records_by_status,
    records_branches,
);

/// MongoDB's own checks: fields as typed BSON values, Ferry's key order,
/// filter documents, exact matches, writes, the lock document.
mod mongo_documents {
    macro_rules! checks {
        ($($check:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    crate::cases_mongo::$check().await
                }
            )*
        };
    }
    checks!(
        schema_is_the_union_of_fields,
        every_bson_type_round_trips_byte_for_byte,
        scans_in_key_order_with_predicates,
        fetches_match_exactly,
        writes_and_rollback,
        lock_document_expires,
        large_scans_stream_in_key_order,
        generated_object_ids,
        key_order_is_the_servers,
        numeric_ids_stream,
        large_writes_are_batched,
        a_standalone_server_refuses_writes,
        field_order_is_carried,
        large_updates_are_batched,
        the_lock_reads_afresh,
        raw_scans_decode_as_scans,
        a_schema_read_under_the_lock_serves_until_a_commit,
        lookups_of_many_values_find_every_one,
    );
}
