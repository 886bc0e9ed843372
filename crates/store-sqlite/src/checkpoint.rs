//! The checkpointer: copies committed pages from the WAL into the database file on its own
//! thread and connection, so the writer never stops to do it.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold, on the
//! writer, and copies thousands of pages plus an fsync of the database file: every few hundred
//! turns the whole engine stalled behind it (it cost a quarter of the writer's time and most
//! of the timer lateness under load). Here the writer's WAL hook only wakes this thread, which
//! runs PASSIVE checkpoints: they never block the writer and copy what readers allow.

use crate::codec::Db;
use durable_store::{Error, Result};
use rusqlite::Connection;
use rusqlite::hooks::Wal;
use std::ffi::c_int;
use std::path::Path;
use std::thread::JoinHandle;

/// WAL size (in pages) after which a checkpoint is requested (SQLite's own default threshold).
pub(crate) const REQUEST_PAGES: c_int = 1000;

/// WAL size at which the writer checkpoints by itself: the checkpointer is far behind (for
/// example a long read kept old pages pinned), and the WAL must stay bounded. Under sustained
/// load with busy readers the WAL file rarely restarts, so its size settles near this bound
/// (64 MiB with 4 KiB pages) while the frames still needed stay few.
pub(crate) const FORCE_PAGES: c_int = 16 * REQUEST_PAGES;

/// Starts the checkpointer for the database at `path` and installs the writer's WAL hook that
/// wakes it. The thread ends when the writer connection (and so its hook) is dropped.
pub(crate) fn start(path: &Path, writer: &mut Connection) -> Result<JoinHandle<()>> {
    let conn = crate::schema::open_checkpointer(path)?;
    // Capacity 1: a request that arrives while one is pending is the same request.
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    writer
        .wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
            if pages >= FORCE_PAGES {
                if let Err(e) = wal.checkpoint() {
                    tracing::warn!(error = %e, pages, "checkpoint on the writer failed; the WAL keeps growing");
                }
            } else if pages >= REQUEST_PAGES {
                let _ = tx.try_send(());
            }
            Ok(())
        }))
        .db()?;
    std::thread::Builder::new()
        .name("durable-sqlite-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                match conn.wal_checkpoint_v2(Some(rusqlite::MAIN_DB), rusqlite::wal::CheckpointMode::PASSIVE) {
                    // SQLite answers OK with -1 frames when the checkpoint could not run at all
                    // (that is how a connection that had not read yet silently did nothing).
                    Ok((frames, _)) if frames < 0 => {
                        tracing::warn!("WAL checkpoint did not run; the writer checkpoints past its own limit");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed; it is retried after the next commits");
                    }
                }
            }
        })
        .map_err(Error::backend)
}
