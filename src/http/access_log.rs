//! The access log: one line per response in the common-log style
//! (`client "request line" status bytes-delivered time [aborted]`), written only when asked
//! for (`serve --access-log FILE`, `-` for stderr).
//!
//! A server answering tens of thousands of requests a second must not pay a system call per
//! line: lines are appended to one shared buffer, and a write happens only when the buffer is
//! full or when a background thread flushes it ([`FLUSH_EVERY`]). With the log off (the
//! default) nothing is formatted at all. At `RUST_LOG=tunstack::http=debug` the same lines
//! also go to the debug log, for a look at a few requests without a file.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long a line may wait in the buffer before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Bytes buffered before a write is forced on the request path.
const BUFFER: usize = 64 * 1024;

type Sink = Mutex<BufWriter<Box<dyn Write + Send>>>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Send the access log to `path` (appended to; `-` means stderr) for the rest of the
/// process, and start the thread that flushes it. Only the first call takes effect.
pub fn open(path: &Path) -> io::Result<()> {
    let out: Box<dyn Write + Send> = if path == Path::new("-") {
        Box::new(io::stderr())
    } else {
        Box::new(OpenOptions::new().create(true).append(true).open(path)?)
    };
    if SINK
        .set(Mutex::new(BufWriter::with_capacity(BUFFER, out)))
        .is_ok()
    {
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            })?;
    }
    Ok(())
}

/// True when a line would go anywhere: check before formatting one.
#[inline]
pub fn enabled() -> bool {
    SINK.get().is_some() || log::log_enabled!(log::Level::Debug)
}

/// Append one line (without its newline).
pub fn write(line: fmt::Arguments) {
    if let Some(sink) = SINK.get() {
        let mut w = sink.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk or a closed stderr must not stop the server: the line is lost.
        let _ = writeln!(w, "{line}");
    }
    log::debug!("{line}");
}

/// Write out whatever is buffered (the flusher thread does it every [`FLUSH_EVERY`]; call
/// it before exiting).
pub fn flush() {
    if let Some(sink) = SINK.get() {
        let _ = sink.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}
