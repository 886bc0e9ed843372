//! The generic store conformance suite against a SQLite file in a temporary directory.

use durable_store::conformance::Guarded;
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions};

async fn fresh_store() -> Guarded<SqliteStore, tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        SqliteStore::open(SqliteStoreOptions::new(dir.path().join("durable.db"))).expect("open store");
    Guarded::new(store, dir)
}

durable_store::conformance_tests!(fresh_store);
