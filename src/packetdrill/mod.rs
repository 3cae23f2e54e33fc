//! A packetdrill interpreter: runs `.pkt` scripts against the sans-IO [`crate::tcp::Tcp`]
//! endpoint in virtual time — no kernel, no TUN device, no root, microseconds per script.
//!
//! A script is a list of timed events: system calls made by "our" application, inbound
//! segments the script's peer sends (`<`) and outbound segments our stack must send (`>`):
//!
//! ```text
//!     0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
//!    +0 bind(3, ..., ...) = 0
//!    +0 listen(3, 1) = 0
//!    +0 < S 0:0(0) win 65535 <mss 1460>
//!    +0 > S. 0:0(0) ack 1 <...>
//! ```
//!
//! | file | what |
//! |------|------|
//! | `lexer.rs` | tokens; comments dropped; shell lines and code blocks kept raw |
//! | `parse.rs` | the script model ([`Script`]) and its parser |
//! | `exec.rs` | the executor: the virtual clock, packet matching, the system calls |
//!
//! The language subset and the mapping of system calls to the endpoint are described in
//! docs/packetdrill.md.

mod exec;
pub mod lexer;
pub mod parse;

use std::fmt;
use std::path::Path;

pub use exec::{CLIENT_PORT, LOCAL_IP, PEER_ISN, REMOTE_IP, SERVER_PORT};
pub use parse::{parse, Script};

/// Settings of a run (packetdrill's command-line flags of the same names).
#[derive(Clone, Debug)]
pub struct Options {
    /// How far an outbound packet or a blocking call's return may be from its script
    /// time, in microseconds (packetdrill's default: 4000).
    pub tolerance_usecs: u64,
    /// Microseconds per tick of our TSval clock for checking outbound TSvals; 0 (the
    /// default, as in packetdrill) leaves TSvals unchecked.
    pub tcp_ts_tick_usecs: u64,
    /// Do not compare the PSH flag of outbound packets (where a sender sets PSH is its
    /// own choice, RFC 9293 §3.9.1; Linux marks it per write and per TSO chunk).
    pub ignore_psh: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tolerance_usecs: 4000,
            tcp_ts_tick_usecs: 0,
            ignore_psh: false,
        }
    }
}

/// How a script ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every event happened as written.
    Pass,
    /// The stack did something else: line and what was expected and seen.
    Fail(usize, String),
    /// The script needs something the runner or the stack does not have.
    Unsupported(usize, String),
    /// The script could not be read or is malformed (a runner error).
    Error(usize, String),
}

/// The result of one script.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The script's name as given.
    pub name: String,
    /// How it ended.
    pub verdict: Verdict,
    /// Lines that were not run (shell commands, code blocks, unknown sysctls).
    pub skipped: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.name;
        match &self.verdict {
            Verdict::Pass => write!(f, "PASS {n}")?,
            Verdict::Fail(l, m) => write!(f, "FAIL {n}:{l}: {m}")?,
            Verdict::Unsupported(l, m) => write!(f, "UNSUPPORTED {n}:{l}: {m}")?,
            Verdict::Error(l, m) => write!(f, "ERROR {n}:{l}: {m}")?,
        }
        match self.skipped.len() {
            0 => {}
            1 => write!(f, " (1 line not run)")?,
            n => write!(f, " ({n} lines not run)")?,
        }
        Ok(())
    }
}

/// Run the script `text`, named `name` in messages.
pub fn run_script(name: &str, text: &str, opts: &Options) -> Outcome {
    run_script_in(name, text, None, opts)
}

/// Run the script `text`; shell lines naming a `.sh` file are looked up in `dir`.
pub fn run_script_in(name: &str, text: &str, dir: Option<&Path>, opts: &Options) -> Outcome {
    let script = match parse(text) {
        Ok(s) => s,
        Err((line, msg)) => {
            return Outcome {
                name: name.to_string(),
                verdict: Verdict::Error(line, format!("parse error: {msg}")),
                skipped: Vec::new(),
            }
        }
    };
    let mut runner = exec::Runner::new(opts, dir.map(Path::to_path_buf));
    let verdict = match runner.run(&script) {
        Ok(()) => Verdict::Pass,
        Err(exec::Stop::Fail(l, m)) => Verdict::Fail(l, m),
        Err(exec::Stop::Unsupported(l, m)) => Verdict::Unsupported(l, m),
        Err(exec::Stop::Error(l, m)) => Verdict::Error(l, m),
    };
    Outcome {
        name: name.to_string(),
        verdict,
        skipped: runner.skipped,
    }
}

/// Run the script in file `path`.
pub fn run_file(path: &Path, opts: &Options) -> Outcome {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => run_script_in(&name, &String::from_utf8_lossy(&bytes), path.parent(), opts),
        Err(e) => Outcome {
            name,
            verdict: Verdict::Error(0, format!("cannot read: {e}")),
            skipped: Vec::new(),
        },
    }
}

/// Counts over several scripts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Scripts that passed.
    pub passed: usize,
    /// Scripts that failed.
    pub failed: usize,
    /// Scripts that need something we do not have.
    pub unsupported: usize,
    /// Scripts that could not be run (parse or read errors).
    pub errors: usize,
}

impl Summary {
    /// Count one outcome.
    pub fn add(&mut self, o: &Outcome) {
        match o.verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(..) => self.failed += 1,
            Verdict::Unsupported(..) => self.unsupported += 1,
            Verdict::Error(..) => self.errors += 1,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} unsupported",
            self.passed, self.failed, self.unsupported
        )?;
        if self.errors > 0 {
            write!(f, ", {} errors", self.errors)?;
        }
        Ok(())
    }
}

/// Run every script in `paths`, print each outcome and the summary to `out` (with the
/// lines not run when `verbose`); returns the summary.
pub fn run_files(
    paths: &[impl AsRef<Path>],
    opts: &Options,
    verbose: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<Summary> {
    let mut sum = Summary::default();
    for p in paths {
        let o = run_file(p.as_ref(), opts);
        writeln!(out, "{o}")?;
        if verbose {
            for s in &o.skipped {
                writeln!(out, "    not run: {s}")?;
            }
        }
        sum.add(&o);
    }
    writeln!(out, "{sum}")?;
    Ok(sum)
}

/// The `tunstack packetdrill` command: run the scripts, print to stdout; success only when
/// no script failed or could not be run.
pub fn run_cli(
    paths: &[impl AsRef<Path>],
    opts: &Options,
    verbose: bool,
) -> std::process::ExitCode {
    let mut out = std::io::stdout().lock();
    match run_files(paths, opts, verbose, &mut out) {
        Ok(sum) if sum.failed == 0 && sum.errors == 0 => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tunstack packetdrill: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
