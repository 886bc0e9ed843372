//! Test support (feature `testing`): a fresh schema per test, dropped afterwards.
//!
//! The server comes from `DURABLE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unset and PostgreSQL's binaries are
//! installed (`/usr/lib/postgresql/*/bin/initdb`), a throwaway cluster is started in a
//! temporary directory on a free port (as the `postgres` OS user when running as root, since
//! `initdb` refuses root) and stopped when the last test database of the process is dropped.
//! Otherwise [`database`] prints one line saying how to run the tests and returns `None`.
//!
//! ```no_run
//! # async fn demo() {
//! let Some(db) = durable_store_postgres::testing::database().await else { return };
//! let node_a = db.store().await;
//! let node_b = db.store().await; // another pool on the same schema: a second node
//! # drop((node_a, node_b));
//! # }
//! ```

use crate::{PostgresStore, PostgresStoreOptions};
use durable_store::conformance::Guarded;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The environment variable naming the test server.
pub const URL_VAR: &str = "DURABLE_TEST_POSTGRES_URL";

/// A schema of its own on the test server; dropped (with everything in it) when this is.
pub struct TestDatabase {
    url: String,
    schema: String,
    _cluster: Option<Arc<Cluster>>,
}

impl TestDatabase {
    /// The server's connection string.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema (random, `durable_test_…`).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Store options for this schema (small pool: tests open several stores).
    pub fn options(&self) -> PostgresStoreOptions {
        let mut o = PostgresStoreOptions::new(self.url.clone());
        o.schema = self.schema.clone();
        o.pool_size = 4;
        o
    }

    /// A new store on this schema: each call is a separate node (own pool and listener).
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(self.options()).await.expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the tests' runtime, which must not block on itself: a helper thread
        // with its own runtime does the (quick) DROP SCHEMA.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.ok()?;
                tokio::spawn(conn);
                let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", crate::schema::quote_ident(&schema));
                client.batch_execute(&sql).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: could not drop test schema {}", self.schema);
        }
    }
}

/// A fresh schema on the test server, or `None` (after printing why) when there is none.
pub async fn database() -> Option<TestDatabase> {
    let (url, cluster) = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => (url, None),
        _ => {
            let cluster = tokio::task::spawn_blocking(local_cluster).await.expect("cluster setup")?;
            (cluster.url(), Some(cluster))
        }
    };
    let schema = format!("durable_test_{}", uuid::Uuid::new_v4().simple());
    Some(TestDatabase { url, schema, _cluster: cluster })
}

/// A fresh store for the conformance suite. When no server is available it prints one line
/// and **exits the test process with success**: `conformance_tests!` gives the factory no way
/// to skip, and nextest runs every test in its own process, so this skips exactly one test.
pub async fn conformance_store() -> Guarded<PostgresStore, TestDatabase> {
    match database().await {
        Some(db) => Guarded::new(db.store().await, db),
        None => std::process::exit(0),
    }
}

static SKIP_NOTED: AtomicBool = AtomicBool::new(false);

fn skip(why: &str) -> Option<Arc<Cluster>> {
    if !SKIP_NOTED.swap(true, Ordering::Relaxed) {
        // Straight to stderr: the test harness captures print!/eprint! output of passing tests.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipping PostgreSQL tests: {why}; set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
    }
    None
}

/// The process's throwaway cluster, shared by the tests running at the same time.
static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

fn local_cluster() -> Option<Arc<Cluster>> {
    let mut current = CLUSTER.lock();
    if let Some(c) = current.upgrade() {
        return Some(c);
    }
    let Some(bin) = postgres_bin_dir() else {
        return skip("no PostgreSQL server binaries found (/usr/lib/postgresql/*/bin)");
    };
    let as_root = is_root();
    if as_root && !user_exists("postgres") {
        return skip("running as root, and initdb needs a non-root 'postgres' OS user to run as");
    }
    let cluster = Arc::new(Cluster::start(&bin, as_root));
    *current = Arc::downgrade(&cluster);
    Some(cluster)
}

/// A PostgreSQL cluster in a temporary directory, stopped and deleted on drop.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
}

impl Cluster {
    fn start(bin: &Path, as_root: bool) -> Cluster {
        let dir = std::env::temp_dir().join(format!("durable-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let cluster = Cluster { bin: bin.to_owned(), dir: dir.clone(), port: free_port(), as_root };
        if as_root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir), "chown the cluster directory");
        }
        let data = dir.join("data");
        let initdb = bin.join("initdb");
        run(
            &mut cluster
                .command(&initdb, &["-D", &path_str(&data), "-A", "trust", "-U", "postgres", "--no-sync"]),
            "initdb",
        );
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", cluster.port, path_str(&dir));
        let log = dir.join("server.log");
        let pg_ctl = bin.join("pg_ctl");
        run(
            &mut cluster.command(
                &pg_ctl,
                &["-D", &path_str(&data), "-o", &opts, "-l", &path_str(&log), "-w", "start"],
            ),
            "pg_ctl start",
        );
        wait_for_port(cluster.port);
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `program args…`, as the postgres user when running as root.
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program).args(args);
            c
        } else {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = path_str(&self.dir.join("data"));
        let pg_ctl = self.bin.join("pg_ctl");
        let _ = self.command(&pg_ctl, &["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The newest installed server's bin directory.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Uid:").is_some_and(|ids| ids.split_whitespace().next() == Some("0")))
    })
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd").is_ok_and(|p| p.lines().any(|l| l.split(':').next() == Some(name)))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the throwaway PostgreSQL did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
