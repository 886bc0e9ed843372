//! Exit codes (listed in `durable --help` and README.md).

/// Success; with `status --wait` and `watch`: the instance Completed.
pub(crate) const OK: u8 = 0;
/// An error; the message says what to do.
pub(crate) const ERROR: u8 = 1;
/// Invalid command line (clap's code).
pub(crate) const USAGE: u8 = 2;
/// `status --wait`, `watch`: the instance Failed.
pub(crate) const FAILED: u8 = 3;
/// `status --wait`, `watch`: the instance was Terminated.
pub(crate) const TERMINATED: u8 = 4;
/// `status --wait`, `watch`: `--timeout` passed before the instance finished.
pub(crate) const TIMED_OUT: u8 = 5;

/// The exit code for an instance that reached `status`, `None` while it has not finished.
pub(crate) fn for_status(status: &str) -> Option<u8> {
    match status {
        "Completed" => Some(OK),
        "Failed" => Some(FAILED),
        "Terminated" | "Canceled" => Some(TERMINATED),
        _ => None,
    }
}
