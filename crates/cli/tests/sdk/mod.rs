//! The official Durable Functions client SDKs for `sdk_clients.rs`: installed once per lock
//! file into a cache directory (a Python virtual environment with pip, an `npm ci`), and the
//! driver scripts next to this file that use them. Installation failures fail the test: it never
//! skips.
#![allow(dead_code)]

use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// This directory: the driver scripts and the pinned dependency lists.
pub(crate) const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");

const HINT: &str = "The SDK test installs azure-functions-durable (PyPI, requirements.txt) into a virtual \
    environment and durable-functions (npm, package-lock.json) with npm ci, under \
    target/tmp/sdk-clients (or $DURABLE_SDK_CACHE). It needs python3 (3.10 or newer, with venv), \
    npm and node (18 or newer), and access to the PyPI and npm registries the first time.";

/// Where installations are kept between runs.
fn cache_root() -> PathBuf {
    std::env::var_os("DURABLE_SDK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-clients"))
}

/// The path of a file of [`DIR`].
pub(crate) fn file(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// The Python interpreter of a virtual environment with `requirements.txt` installed.
pub(crate) fn python() -> PathBuf {
    let requirements = file("requirements.txt");
    let venv = install_once("python", &[&requirements], |dir| {
        run("python3 -m venv", Command::new("python3").arg("-m").arg("venv").arg(dir));
        run(
            "pip install -r requirements.txt",
            Command::new(dir.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"])
                .arg("-r")
                .arg(&requirements),
        );
        run(
            "import azure.durable_functions",
            Command::new(dir.join("bin/python")).args(["-c", "import azure.durable_functions"]),
        );
    });
    venv.join("bin/python")
}

/// A `node_modules` directory with `package-lock.json` installed (for `NODE_PATH`).
pub(crate) fn node_modules() -> PathBuf {
    let (package, lock) = (file("package.json"), file("package-lock.json"));
    let dir = install_once("node", &[&package, &lock], |dir| {
        for source in [&package, &lock] {
            std::fs::copy(source, dir.join(source.file_name().unwrap())).expect("copy the npm manifest");
        }
        run(
            "npm ci",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error", "--ignore-scripts"])
                .current_dir(dir),
        );
    });
    dir.join("node_modules")
}

/// Installs into `<cache>/<name>-<hash of inputs>` unless a complete installation is there.
/// A lock file serializes test processes that install at the same time; a marker written last
/// tells a complete installation from an interrupted one, which is thrown away.
fn install_once(name: &str, inputs: &[&Path], install: impl FnOnce(&Path)) -> PathBuf {
    let root = cache_root();
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let mut hash = Fnv::default();
    for input in inputs {
        hash.write(&std::fs::read(input).unwrap_or_else(|e| panic!("cannot read {}: {e}", input.display())));
    }
    let dir = root.join(format!("{name}-{:016x}", hash.0));
    let lock = File::create(root.join(format!("{name}.lock"))).expect("create the install lock file");
    lock.lock().expect("lock the install lock file");
    let marker = dir.join(".installed");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        install(&dir);
        std::fs::write(&marker, b"").expect("write the install marker");
    }
    dir
}

/// FNV-1a: a stable hash of the pinned dependency lists, to key the cache.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Runs an installation step; any failure panics with its output and what the test needs.
fn run(what: &str, command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: cannot run it ({e}). {HINT}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}\n{HINT}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a driver to the end and returns the JSON summary on its last stdout line; a non-zero
/// exit (any exception or wrong value in the script) fails the test with the script's output.
pub(crate) fn run_driver(mut command: Command) -> Value {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run the driver {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the driver failed ({}):\n{stdout}\n{stderr}", output.status);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{stdout}\n{stderr}"))
}
