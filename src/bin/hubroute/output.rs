//! Standard output that a closed reader ends quietly.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`hubroute check … | head -1`),
//! because Rust ignores SIGPIPE and the write returns `EPIPE`. Resetting SIGPIPE to its default
//! action would need `unsafe` (forbidden here) and would kill `run` mid-delivery as well, so
//! every subcommand writes through [`check`] instead: a broken pipe exits at once with status
//! 141, what a shell reports for a tool that SIGPIPE ended (`yes | head -1`), so a script with
//! `pipefail` sees the same as with any other tool and no panic or message is printed.
//!
//! Standard error is written through [`err!`] and [`errln!`]: `eprintln!` panics the same way
//! when stderr's reader has gone (`hubroute run … 2>&1 | head -1`), which would turn a run that
//! delivered everything into status 101. A report or warning that cannot be shown is
//! dropped instead; the command's work and exit status stand.

use std::io::{self, Write};

/// The exit status after the reader of standard output went away: 128 + SIGPIPE.
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// A write's result: `Ok`, or the error as the subcommand's message; a broken pipe does not
/// return.
pub fn check(result: io::Result<()>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(BROKEN_PIPE_STATUS),
        Err(e) => Err(format!("writing stdout: {e}")),
    }
}

/// Writes formatted text to standard output, for [`out!`] and [`outln!`]: a broken pipe
/// exits as [`check`] does, and any other write error ends the process as `main` ends on an
/// I/O error (status 2, with the message), where `print!` would panic.
pub fn write_fmt(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(message) = check(out.write_fmt(args)) {
        write_err(format_args!("error: {message}\n"));
        std::process::exit(2);
    }
}

/// Writes formatted text to standard error, for [`err!`] and [`errln!`]; a failed write is
/// dropped (see the module's doc).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `print!` through [`write_fmt`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_fmt(format_args!($($arg)*))
    };
}

/// `println!` through [`write_fmt`].
macro_rules! outln {
    () => {
        $crate::output::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` through [`write_err`].
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!($($arg)*))
    };
}

/// `eprintln!` through [`write_err`].
macro_rules! errln {
    () => {
        $crate::output::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {err, errln, out, outln};
