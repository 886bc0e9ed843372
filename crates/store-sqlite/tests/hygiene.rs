//! What the SQLite file gives away: its files are private to their owner, and a purge leaves
//! no trace of the purged instance's data in the file.

use durable_store::conformance::{create_request, json, run_turn};
use durable_store::{PurgeFilter, Store};
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions};
use std::path::Path;

const MARKER: &str = "+19998887766";

fn contains(path: &Path, needle: &str) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn files(db: &Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm", ".lock"]
        .iter()
        .map(|suffix| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            name.into()
        })
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_wal_shm_and_lock_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let store = SqliteStore::open(SqliteStoreOptions::new(&db)).unwrap();
    store.create_instance(create_request("i", "O")).await.unwrap();
    for path in files(&db) {
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{} is {:o}", path.display(), mode & 0o777);
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_leaves_no_trace_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let input = json(&format!("\"{MARKER}\""));
    {
        let store = SqliteStore::open(SqliteStoreOptions::new(&db)).unwrap();
        for i in 0..50 {
            let mut request = create_request(&format!("i{i}"), "O");
            request.input = Some(input.clone());
            store.create_instance(request).await.unwrap();
            // The input is in the status row, the start message and the history.
            run_turn(&store, &format!("i{i}"), |_| {}).await;
        }
        store.close().await.unwrap();
    }
    assert!(contains(&db, MARKER), "the test must see the data before the purge");
    {
        let store = SqliteStore::open(SqliteStoreOptions::new(&db)).unwrap();
        let filter =
            PurgeFilter { statuses: vec![durable_core::RuntimeStatus::Running], ..Default::default() };
        assert_eq!(store.purge_instances(&filter).await.unwrap(), 50);
        store.close().await.unwrap();
    }
    for path in files(&db) {
        assert!(!contains(&path, MARKER), "{} still holds purged data", path.display());
    }
}
