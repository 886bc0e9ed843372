//! The `durable` binary; see `durable --help`.

fn main() -> std::process::ExitCode {
    durable_cli::main()
}
