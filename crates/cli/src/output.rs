//! Where results go: stdout, in the format asked for, coloured only for people.
//!
//! Every write returns its I/O error instead of panicking like `println!`: a reader that goes
//! away (`durable list | head -1`) ends the command quietly (see [`is_broken_pipe`]).

use crate::args::{ColorChoice, Format, OutputArgs};
use crate::table::Table;
use serde_json::Value;
use std::io::{IsTerminal, Write};

/// How and where to print.
pub(crate) struct Out {
    pub format: Format,
    pub color: bool,
    /// The width tables must fit, `None` for no limit (`--wide`, or stdout is not a terminal
    /// and COLUMNS is not set).
    pub width: Option<usize>,
}

impl Out {
    pub(crate) fn new(args: &OutputArgs, wide: bool) -> Out {
        Out { format: args.format(), color: use_color(args.color), width: if wide { None } else { width() } }
    }

    /// Plain text for `--code`-style answers: no colour, no width.
    pub(crate) fn plain() -> Out {
        Out { format: Format::Text, color: false, width: None }
    }

    pub(crate) fn text(&self) -> bool {
        self.format == Format::Text
    }

    /// One line of text.
    pub(crate) fn line(&self, line: &str) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        Ok(())
    }

    /// A JSON value: pretty for `json`, one compact line for `jsonl` (an array gives one line per
    /// element).
    pub(crate) fn json(&self, value: &Value) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        match (self.format, value) {
            (Format::Jsonl, Value::Array(items)) => {
                for item in items {
                    writeln!(stdout, "{item}")?;
                }
            }
            (Format::Jsonl, value) => writeln!(stdout, "{value}")?,
            (_, value) => writeln!(stdout, "{}", serde_json::to_string_pretty(value)?)?,
        }
        stdout.flush()?;
        Ok(())
    }

    /// One compact JSON line, whatever the format (streams).
    pub(crate) fn json_line(&self, value: &Value) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{value}")?;
        stdout.flush()?;
        Ok(())
    }

    /// A table fitted to [`width`](Self::width).
    pub(crate) fn table(&self, table: &Table) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        for line in table.render(self.width, self.color) {
            writeln!(stdout, "{line}")?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// `status` coloured by what it means (when colour is on).
    pub(crate) fn status(&self, status: &str) -> String {
        paint(self.color, status_style(status), status)
    }
}

/// The escape sequence of a runtime status: green done, red failed, yellow stopped, cyan busy.
pub(crate) fn status_style(status: &str) -> Option<&'static str> {
    match status {
        "Completed" => Some(GREEN),
        "Failed" => Some(RED),
        "Terminated" | "Suspended" => Some(YELLOW),
        "Running" | "Pending" | "ContinuedAsNew" => Some(CYAN),
        _ => None,
    }
}

pub(crate) const GREEN: &str = "\x1b[32m";
pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const YELLOW: &str = "\x1b[33m";
pub(crate) const CYAN: &str = "\x1b[36m";
pub(crate) const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// `text` wrapped in `style` when `color` is on.
pub(crate) fn paint(color: bool, style: Option<&str>, text: &str) -> String {
    match style {
        Some(style) if color => format!("{style}{text}{RESET}"),
        _ => text.to_owned(),
    }
}

/// `--color auto` colours when stdout is a terminal, NO_COLOR is unset or empty
/// (no-color.org) and TERM is not `dumb`.
fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
        }
    }
}

/// Colour on stderr (error messages), by the same rules as `--color auto`.
pub(crate) fn stderr_color() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// The width to fit: `COLUMNS` when set (as `ls` does), else the terminal's, else no limit
/// (output read by another program is never cut).
fn width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok())
        && columns > 0
    {
        return Some(columns);
    }
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&stdout).map(|(w, _)| w.0 as usize).filter(|w| *w > 0)
}

/// Whether `error` comes from writing to a reader that went away.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints a note for people on stderr (progress, hints); never data.
pub(crate) fn note(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}
