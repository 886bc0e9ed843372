//! The `durable` binary; see `durable --help`.

/// glibc's malloc keeps what a burst freed in per-thread arenas: draining 100,000 queued answers
/// peaked at 915 MiB of RSS for 63 MB of live heap. mimalloc returns it (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    durable_cli::main()
}
