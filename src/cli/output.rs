//! stdout and stderr for every printing path. A reader that goes away (`list |
//! head -1`) closes the pipe; the rest of the output is dropped quietly and the
//! process ends like one killed by SIGPIPE (exit 141), never with a panic or an
//! error line. `println!` would panic there, as Rust ignores SIGPIPE.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);

/// The exit code of a process killed by SIGPIPE, as a shell reports it (128 + 13).
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// Write to stdout and flush; after a broken pipe (or another write failure) stop writing.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|_| out.flush());
    if let Err(e) = result {
        record(&e);
    }
}

/// Write raw bytes to stdout, as [`stdout`] does.
pub fn stdout_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        record(&e);
    }
}

/// Remember why stdout failed: a closed reader, or anything else.
pub fn record(e: &std::io::Error) {
    let state = if e.kind() == ErrorKind::BrokenPipe {
        CLOSED
    } else {
        FAILED
    };
    let _ = STDOUT.compare_exchange(OPEN, state, Ordering::SeqCst, Ordering::SeqCst);
}

/// Is stdout still worth writing to?
pub fn is_open() -> bool {
    STDOUT.load(Ordering::SeqCst) == OPEN
}

/// The reader closed stdout before everything was printed.
pub fn broken_pipe() -> bool {
    STDOUT.load(Ordering::SeqCst) == CLOSED
}

/// stdout failed for another reason (a full disk, say): the output is incomplete.
pub fn failed() -> bool {
    STDOUT.load(Ordering::SeqCst) == FAILED
}

/// Write a line to stderr; a closed stderr is ignored (there is nowhere to say so).
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
