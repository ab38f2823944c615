//! Standard output and standard error that never panic: `println!` panics
//! when stdout is a closed pipe (`cvm state | head -1`) or a full disk.
//! Every command writes through [`out!`]; a failed write is an
//! [`OutputError`], which ends the command: quietly for a closed pipe, with
//! a message otherwise. Notices on stderr are best effort ([`note!`]).

use std::fmt;
use std::io::Write;

/// Writing the command's output failed.
#[derive(Debug)]
pub struct OutputError(pub std::io::Error);

/// What the command was asked to show is not there (a register, a batch):
/// `--json` errors say `"kind": "not_found"`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

impl OutputError {
    /// The reader went away (`| head`): nothing more to say to anyone.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing the output failed: {}", self.0)
    }
}

impl std::error::Error for OutputError {}

/// Write one line to stdout.
pub fn line(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")).map_err(OutputError)
}

/// Write text to stdout without a newline, and flush it (a prompt).
pub fn prompt(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args).and_then(|()| stdout.flush()).map_err(OutputError)
}

/// Flush stdout: a full disk shows here for output still buffered.
pub fn flush() -> Result<(), OutputError> {
    std::io::stdout().lock().flush().map_err(OutputError)
}

/// One line on stderr, if it can be written.
pub fn note_line(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.write_all(b"\n"));
}

/// `println!` that returns an [`OutputError`] instead of panicking (use with `?`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::note_line(format_args!($($arg)*))
    };
}

/// The exit status and message for an error that ended a command.
pub fn classify(err: &anyhow::Error) -> Option<&OutputError> {
    err.chain().find_map(|cause| cause.downcast_ref::<OutputError>())
}

/// An error and its causes, "a: b: c", each said once: a cause whose text
/// an outer one already gives (an I/O error a context repeats, a transport
/// error that names its own cause) is left out.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let said = cause.to_string();
        if said.is_empty() || text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}
