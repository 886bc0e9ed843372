//! Wake-ups across nodes: local `Notify`s, and one dedicated connection per store that LISTENs
//! on the schema's channel and sends this node's notifications.
//!
//! **Why notifications are not sent inside the data transactions.** A transaction that ran
//! `NOTIFY` takes a database-wide lock at commit and holds it until the commit is durable, so
//! all notifying transactions of a database commit one at a time, each waiting for its own
//! WAL flush: that would cap the whole cluster at one turn per fsync and defeat PostgreSQL's
//! group commit. Instead, each write op wakes local waiters at once and queues a flag here; the
//! listener connection sends the queued flags in one small transaction of its own
//! (`synchronous_commit = off` for that session only: a notification is a hint, nothing
//! durable depends on it). Flags queued while a send is in flight coalesce into the next one.
//!
//! Payloads: `o` (orchestration work may be available), `a` (activity work), `c:<instance id>`
//! (the instance finished). Notifications a store sent itself are recognized by the sending
//! backend's pid and ignored (its waiters were already woken locally).

use crate::schema::quote_ident;
use durable_store::CompletionWaiters;
use futures::StreamExt;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

/// Longest payload PostgreSQL accepts is 8000 bytes; completions of longer ids are not sent
/// (remote listeners time out and re-read, as the contract allows).
const MAX_PAYLOAD: usize = 7900;

/// Most completions queued while the listener is down; later ones are not sent (a completion
/// notification is a hint: remote listeners time out and re-read).
const MAX_QUEUED_COMPLETIONS: usize = 10_000;

/// Reconnect delays of the listener.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What local waiters sleep on, and the queue of notifications for other nodes.
#[derive(Default)]
pub(crate) struct Signals {
    pub orchestrations: Notify,
    pub activities: Notify,
    pub completions: CompletionWaiters,
    /// The listener is connected and subscribed: waiters may trust notifications and sleep
    /// long; otherwise they poll.
    pub listening: AtomicBool,
    /// Set by `close()`.
    pub closed: AtomicBool,
    outbox: Mutex<Outbox>,
    outbox_ready: Notify,
}

#[derive(Default)]
struct Outbox {
    orchestrations: bool,
    activities: bool,
    completed: Vec<String>,
}

impl Outbox {
    fn take_payloads(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if std::mem::take(&mut self.orchestrations) {
            out.push("o".to_owned());
        }
        if std::mem::take(&mut self.activities) {
            out.push("a".to_owned());
        }
        out.extend(std::mem::take(&mut self.completed).into_iter().map(|id| format!("c:{id}")));
        out
    }
}

impl Signals {
    /// Orchestration work may be available: wake local waiters and tell the other nodes.
    pub(crate) fn orchestration_work(&self) {
        self.orchestrations.notify_waiters();
        self.outbox.lock().orchestrations = true;
        self.outbox_ready.notify_one();
    }

    /// Activity work may be available.
    pub(crate) fn activity_work(&self) {
        self.activities.notify_waiters();
        self.outbox.lock().activities = true;
        self.outbox_ready.notify_one();
    }

    /// An instance finished.
    pub(crate) fn finished(&self, instance_id: &str) {
        self.completions.notify(instance_id);
        let mut outbox = self.outbox.lock();
        if instance_id.len() <= MAX_PAYLOAD && outbox.completed.len() < MAX_QUEUED_COMPLETIONS {
            outbox.completed.push(instance_id.to_owned());
            drop(outbox);
            self.outbox_ready.notify_one();
        }
    }

    /// Wakes every local waiter so it looks again (reconnects, shutdown).
    pub(crate) fn wake_all(&self) {
        self.orchestrations.notify_waiters();
        self.activities.notify_waiters();
    }

    fn receive(&self, payload: &str) {
        match payload {
            "o" => self.orchestrations.notify_waiters(),
            "a" => self.activities.notify_waiters(),
            p => match p.strip_prefix("c:") {
                Some(id) => self.completions.notify(id),
                None => tracing::debug!(payload = p, "ignored an unknown notification"),
            },
        }
    }
}

/// Runs the listener until the store closes: connects, subscribes, delivers and sends
/// notifications, and reconnects with back-off when the connection drops. `ready` gets the
/// outcome of the first subscription.
pub(crate) async fn run(
    config: tokio_postgres::Config,
    channel: String,
    signals: Arc<Signals>,
    ready: oneshot::Sender<durable_store::Result<()>>,
) {
    let mut ready = Some(ready);
    let mut delay = RECONNECT_MIN;
    while !signals.closed.load(Ordering::Acquire) {
        let err = session(&config, &channel, &signals, &mut ready).await;
        signals.listening.store(false, Ordering::Release);
        if signals.closed.load(Ordering::Acquire) {
            break;
        }
        // Waiters sleeping on a long deadline switch to polling until we are back.
        signals.wake_all();
        match ready.take() {
            Some(r) => {
                let _ = r.send(Err(err));
                return;
            }
            None => tracing::warn!(error = %err, retry_in = ?delay, "PostgreSQL listener connection lost"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// One listener connection's life; returns why it ended.
async fn session(
    config: &tokio_postgres::Config,
    channel: &str,
    signals: &Signals,
    ready: &mut Option<oneshot::Sender<durable_store::Result<()>>>,
) -> durable_store::Error {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(c) => c,
        Err(e) => return crate::codec::pg(e),
    };
    // The connection is driven by its own task so that queries on `client` make progress while
    // this task waits for them; notifications come back through the channel.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL listener connection ended");
                    break;
                }
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    // The schema name is validated ([a-z0-9_]), so it can be spliced into the literal.
    let setup = format!(
        "SET application_name = 'durable-listener:{channel}'; SET synchronous_commit = off; LISTEN {}",
        quote_ident(channel)
    );
    if let Err(e) = client.batch_execute(&setup).await {
        return crate::codec::pg(e);
    }
    let own_pid: i32 = match client.query_one("SELECT pg_backend_pid()", &[]).await {
        Ok(row) => row.get(0),
        Err(e) => return crate::codec::pg(e),
    };
    let send = match client.prepare("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p").await {
        Ok(s) => s,
        Err(e) => return crate::codec::pg(e),
    };
    signals.listening.store(true, Ordering::Release);
    // Whatever was notified while we were not listening is unknown: everyone looks again.
    signals.wake_all();
    if let Some(r) = ready.take() {
        let _ = r.send(Ok(()));
    }
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some(n) if n.process_id() == own_pid => {}
                Some(n) => signals.receive(n.payload()),
                None => return durable_store::Error::Unavailable("the listener connection closed".into()),
            },
            _ = signals.outbox_ready.notified() => {
                let payloads = signals.outbox.lock().take_payloads();
                if payloads.is_empty() {
                    continue;
                }
                if let Err(e) = client.execute(&send, &[&channel, &payloads]).await {
                    // Lost notifications only delay other nodes until their next poll.
                    return crate::codec::pg(e);
                }
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
