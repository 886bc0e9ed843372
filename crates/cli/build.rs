//! Embeds the git commit in `durable --version` (`DURABLE_BUILD_COMMIT`). Outside a git checkout
//! (a crates.io download, a container build from a source tarball) it falls back to the
//! `DURABLE_BUILD_COMMIT` environment variable, then to "unknown": a build never fails for it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DURABLE_BUILD_COMMIT");
    let commit = std::env::var("DURABLE_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_owned())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=DURABLE_BUILD_COMMIT={commit}");
}

/// The short commit of HEAD; `None` when git or the repository is not there. Asks cargo to rerun
/// this script when HEAD moves. (No `-dirty` mark: this script does not rerun on every edit, so
/// the mark would go stale.)
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).filter(|c| !c.is_empty())?;
    // HEAD lives in the worktree's git directory, branch refs in the common one (they differ in
    // a `git worktree`); packed-refs changes when refs are packed.
    if let (Some(dir), Some(common)) =
        (git(&["rev-parse", "--absolute-git-dir"]), git(&["rev-parse", "--git-common-dir"]))
    {
        let dir = PathBuf::from(dir);
        let common = if PathBuf::from(&common).is_absolute() {
            PathBuf::from(common)
        } else {
            std::env::current_dir().map(|d| d.join(&common)).unwrap_or_else(|_| PathBuf::from(common))
        };
        // Only paths that exist: cargo treats a missing one as changed on every build. The
        // branch's loose ref changes on each commit; while the branch is only in packed-refs,
        // the refs directory tells when a commit writes the loose ref.
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        let packed = common.join("packed-refs");
        if packed.exists() {
            println!("cargo:rerun-if-changed={}", packed.display());
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let loose = common.join(&branch);
            let watched = if loose.exists() { loose } else { common.join("refs").join("heads") };
            println!("cargo:rerun-if-changed={}", watched.display());
        }
    }
    Some(commit)
}
