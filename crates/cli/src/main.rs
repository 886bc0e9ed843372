//! The `durable` binary; see `durable --help`.

/// glibc's malloc keeps what a burst freed in per-thread arenas: draining 100,000 queued answers
/// peaked at 915 MiB of RSS for 63 MB of live heap. mimalloc returns it (BENCHMARKS.md).
///
/// The `override` feature of the mimalloc crate makes it `malloc` and `free` for the C code too.
/// With Rust on mimalloc and SQLite on glibc, the SQLite writer thread's arena trimmed its heap
/// after most statements (`madvise`, then page faults to get the pages back: ~15 % of the CPU
/// profile) and each allocator paid for memory the other had touched. `no_thp` keeps mimalloc off
/// transparent huge pages: each 2 MiB page it faulted in after a purge was zeroed whole
/// (`clear_page_erms`, ~5 % of the profile), for more RSS, not less.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    durable_cli::main()
}
