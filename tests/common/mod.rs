//! Shared helpers for the integration tests: the real `tunstack` binary in a network
//! namespace of its own, driven by `curl`, `ping`, `python3` and `nft`.
//!
//! Every test gets
//! - its own namespace `ts-<pid>-<n>` with `lo` up, so tests run in parallel and nothing
//!   is configured in the root namespace;
//! - its own TUN name (at most 15 characters, the kernel's IFNAMSIZ - 1);
//! - its own temporary directory;
//! - guards that kill every process it started and delete the namespace when the test
//!   ends, also when it panics.
//!
//! Readiness is always polled with a generous bound, never assumed after a fixed sleep.
//! Every external command runs with a time limit.
//!
//! Prerequisites (root, `/dev/net/tun`, the tools) are checked first: when one is missing
//! the test prints `SKIPPED ...` and passes, unless the environment variable `CI` is set,
//! where a missing prerequisite fails the test (CI must really run these).
//!
//! `TUNSTACK_BIN=/path/to/binary` runs the tests against another build of the binary.

// Each integration test file compiles this module separately and uses a different subset.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Kernel side of the TUN (given to `--host-ip`).
pub const HOST_CIDR: &str = "10.0.0.1/24";
/// Kernel side address without the prefix length.
pub const HOST_IP: &str = "10.0.0.1";
/// The address tunstack answers as (`--ip`).
pub const STACK_IP: &str = "10.0.0.2";
/// How long a server may take to answer its first request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for commands that should be quick (one small request, a ping run).
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one big transfer (curl's `--max-time` uses the same number).
pub const BIG_TIMEOUT: Duration = Duration::from_secs(300);
/// 1 MiB.
pub const MIB: u64 = 1024 * 1024;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Tests that move hundreds of MiB take this lock so that, on a 2-core machine, only one
/// of them runs at a time (per test binary; cargo runs test binaries one after another).
static HEAVY: Mutex<()> = Mutex::new(());

/// Serialize a heavy test. A panic in another heavy test must not fail this one, so a
/// poisoned lock is taken over.
pub fn heavy_lock() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The binary under test.
pub fn tunstack_bin() -> PathBuf {
    match std::env::var_os("TUNSTACK_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_tunstack")),
    }
}

fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"),
        Err(_) => false,
    }
}

fn is_root() -> bool {
    // Effective uid is the second number of the "Uid:" line.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|s| s == "0"))
        })
        .unwrap_or(false)
}

fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Check what a test needs. `None` means: skip (message printed). Panics instead of
/// skipping when `CI` is set.
pub fn prerequisites(test: &str, tools: &[&str]) -> Option<()> {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (network namespaces and TUN devices need CAP_NET_ADMIN)".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun (modprobe tun)".to_string());
    }
    for tool in ["ip", "curl"].iter().chain(tools) {
        if !on_path(tool) {
            missing.push(format!("the `{tool}` command"));
        }
    }
    if missing.is_empty() {
        return Some(());
    }
    let reason = missing.join(", ");
    if in_ci() {
        panic!("{test}: missing {reason}; CI is set, so this is a failure, not a skip");
    }
    eprintln!(
        "SKIPPED {test}: missing {reason} (run as root, e.g. `sudo -E cargo test --release`)"
    );
    None
}

/// A short name unique to this process and call: `(namespace, tun)`.
fn unique_names() -> (String, String) {
    let pid = std::process::id();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ns = format!("ts-{pid}-{n}");
    // IFNAMSIZ is 16 including the NUL: keep the TUN name at most 15 characters.
    let mut tun = format!("tst{pid}x{n}");
    tun.truncate(15);
    (ns, tun)
}

/// The result of a bounded command.
#[derive(Debug)]
pub struct Run {
    /// Exit status; `None` when the command was killed because it ran out of time.
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Run {
    /// Exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Exit code, if it exited by itself.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Panic with everything known about the command unless it succeeded.
    pub fn expect_success(&self, what: &str) -> &Self {
        assert!(self.success(), "{what} failed: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{s}")?,
            None => write!(f, "killed after {:?} (time limit)", self.elapsed)?,
        }
        write!(
            f,
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Run `cmd` to completion, killing it after `limit`. stdout and stderr are captured.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Run {
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let status = wait_bounded(&mut child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let join = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Run {
        status,
        stdout: join(out),
        stderr: join(err),
        elapsed: start.elapsed(),
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Wait for `child` at most `limit`; `None` if it is still running.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Send `signal` (e.g. "TERM") to `pid` with the `kill` command (no libc dependency).
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A child process that is ended (SIGTERM, then SIGKILL) when dropped.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Guard an already spawned child.
    pub fn new(child: Child, what: impl Into<String>) -> ChildGuard {
        ChildGuard {
            child: Some(child),
            what: what.into(),
        }
    }

    /// Process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Exit status if it has exited already.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Send SIGTERM and wait at most `limit` for the exit; `None` on time-out (the guard
    /// still kills it when dropped).
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        send_signal(child.id(), "TERM");
        wait_bounded(child, limit)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        send_signal(child.id(), "TERM");
        if wait_bounded(&mut child, Duration::from_secs(5)).is_none() {
            eprintln!("{}: no exit 5 s after SIGTERM, sending SIGKILL", self.what);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory, removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tunstack-test-{name}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A network namespace with `lo` up, deleted when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str) -> Netns {
        // A namespace of the same name can only be left over from a crashed earlier run
        // that had our pid: replace it.
        let _ = quiet(Command::new("ip").args(["netns", "delete", name]));
        let run = run_bounded(cmd("ip", ["netns", "add", name]), SHORT_TIMEOUT);
        run.expect_success(&format!("ip netns add {name}"));
        let ns = Netns {
            name: name.to_string(),
        };
        let run = run_bounded(
            cmd("ip", ["-n", name, "link", "set", "lo", "up"]),
            SHORT_TIMEOUT,
        );
        run.expect_success("ip link set lo up");
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME program`: add arguments, then run it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = quiet(Command::new("ip").args(["netns", "delete", &self.name]));
    }
}

fn quiet(c: &mut Command) -> io::Result<ExitStatus> {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// `Command::new(program).args(args)`.
pub fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// One test's world: a namespace, a TUN name, a temp dir, and the processes started in it.
///
/// Field order is drop order: the processes end first, then the namespace goes, then the
/// files.
pub struct Harness {
    server: Option<ChildGuard>,
    helpers: Vec<ChildGuard>,
    server_log: Option<PathBuf>,
    ns: Netns,
    tun: String,
    tmp: TempDir,
    test: String,
    /// `--tap` instead of `--tun` for the device (see [`Harness::use_tap`]).
    link_flag: &'static str,
}

impl Harness {
    /// Check prerequisites (see [`prerequisites`]) and create the namespace. `None`: skip.
    pub fn new(test: &str, tools: &[&str]) -> Option<Harness> {
        prerequisites(test, tools)?;
        let (ns_name, tun) = unique_names();
        let tmp = TempDir::new(&ns_name);
        let ns = Netns::new(&ns_name);
        eprintln!(
            "{test}: namespace {ns_name}, tun {tun}, dir {}",
            tmp.path().display()
        );
        Some(Harness {
            server: None,
            helpers: Vec::new(),
            server_log: None,
            ns,
            tun,
            tmp,
            test: test.to_string(),
            link_flag: "--tun",
        })
    }

    /// Run `serve` and `get` on a TAP device (Ethernet + ARP in tunstack) instead of a TUN;
    /// the device name is the same.
    pub fn use_tap(&mut self) {
        self.link_flag = "--tap";
    }

    /// The namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The TUN device name this test uses.
    pub fn tun(&self) -> &str {
        &self.tun
    }

    /// The test's temporary directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Start `tunstack serve` on `port` with the test's TUN and addresses, plus `extra`
    /// arguments, and wait until it answers HTTP (bounded by [`READY_TIMEOUT`]).
    pub fn serve(&mut self, port: u16, extra: &[&str]) {
        assert!(self.server.is_none(), "one server per harness");
        let log_path = self.dir().join("server.log");
        let log = File::create(&log_path).expect("create server log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut c = self.ns.command(tunstack_bin());
        c.arg("serve")
            .args([self.link_flag, &self.tun])
            .args(["--host-ip", HOST_CIDR, "--ip", STACK_IP])
            .args(["--port", &port.to_string()])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
        self.server = Some(ChildGuard::new(child, format!("{} server", self.test)));
        self.server_log = Some(log_path);
        self.wait_http_ready(port);
    }

    /// The server's output so far (stdout and stderr).
    pub fn server_log(&self) -> String {
        self.server_log
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Poll with curl until the server answers any HTTP response on `port`.
    fn wait_http_ready(&mut self, port: u16) {
        let url = format!("http://{STACK_IP}:{port}/");
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.server.as_mut().and_then(|s| s.try_wait()) {
                panic!(
                    "{}: tunstack serve exited early with {status}; its log:\n{}",
                    self.test,
                    self.server_log()
                );
            }
            let run = self.curl(
                Duration::from_secs(2),
                &["-o", "/dev/null", "-w", "%{http_code}", &url],
            );
            if run.success() {
                eprintln!(
                    "{}: server ready after {:?} (HTTP {})",
                    self.test,
                    start.elapsed(),
                    run.stdout.trim()
                );
                return;
            }
            last = Some(run);
            thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{}: server did not answer {url} within {READY_TIMEOUT:?}. Last curl: {}\nServer log:\n{}",
            self.test,
            last.map(|r| r.to_string()).unwrap_or_default(),
            self.server_log()
        );
    }

    /// Poll the server's log until `done` says so (bounded by `limit`); returns the log.
    pub fn wait_log(&self, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let log = self.server_log();
            if done(&log) || start.elapsed() >= limit {
                return log;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Process id of the running server (to send it signals), if one was started.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(|s| s.id())
    }

    /// Send SIGTERM to the server and wait (bounded) for its exit status.
    pub fn stop_server(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.server.as_mut().and_then(|s| s.terminate(limit))
    }

    /// Start a helper process (e.g. a kernel HTTP server) inside the namespace; it is
    /// killed when the harness is dropped. Its output goes to `<dir>/<name>.log`.
    pub fn spawn_in_ns(&mut self, name: &str, program: &str, args: &[&str]) {
        let log = File::create(self.dir().join(format!("{name}.log"))).expect("create log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut c = self.ns.command(program);
        c.args(args).stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
        self.helpers.push(ChildGuard::new(child, name));
    }

    /// End the helpers started so far (SIGTERM, then SIGKILL when they linger).
    pub fn stop_helpers(&mut self) {
        self.helpers.clear();
    }

    /// Start `python3 -m http.server` on 0.0.0.0:`port` in the namespace, serving `dir`,
    /// and poll (over the namespace's loopback) until it answers.
    pub fn start_kernel_http_server(&mut self, port: u16, dir: &Path) {
        let port_arg = port.to_string();
        let dir_arg = dir.to_str().expect("utf-8 path").to_string();
        let name = format!("http.server-{port}");
        self.spawn_in_ns(
            &name,
            "python3",
            &[
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                &port_arg,
                "--directory",
                &dir_arg,
            ],
        );
        let probe = format!("http://127.0.0.1:{port}/");
        let start = Instant::now();
        loop {
            let run = self.curl(Duration::from_secs(2), &["-o", "/dev/null", &probe]);
            if run.success() {
                return;
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "python3 http.server did not come up: {run}\n{}",
                self.helper_log(&name)
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `tunstack get URL -o OUT` with the test's TUN and addresses, bounded by `limit`.
    pub fn tunstack_get(&self, url: &str, out: &Path, limit: Duration) -> Run {
        let mut c = self.ns.command(tunstack_bin());
        c.args(["get", url, self.link_flag, &self.tun])
            .args(["--host-ip", HOST_CIDR, "--ip", STACK_IP, "-o"])
            .arg(out)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        run_bounded(c, limit)
    }

    /// Output of a helper started with [`Harness::spawn_in_ns`].
    pub fn helper_log(&self, name: &str) -> String {
        fs::read_to_string(self.dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Run a program inside the namespace, bounded by `limit`.
    pub fn run_in_ns(&self, limit: Duration, program: &str, args: &[&str]) -> Run {
        let mut c = self.ns.command(program);
        c.args(args);
        run_bounded(c, limit)
    }

    /// `curl -sS --max-time <limit> ARGS` inside the namespace (also bounded from outside).
    pub fn curl(&self, limit: Duration, args: &[&str]) -> Run {
        let secs = limit.as_secs().max(1).to_string();
        let mut c = self.ns.command("curl");
        c.args(["-sS", "--max-time", &secs]).args(args);
        run_bounded(c, limit + Duration::from_secs(10))
    }

    /// Run `scripts/NAME` (from this repository) with `args`, bounded.
    pub fn script(&self, name: &str, args: &[&str]) -> Run {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name);
        let mut c = Command::new("bash");
        c.arg(path).args(args);
        run_bounded(c, SHORT_TIMEOUT)
    }

    /// True if the TUN device exists in the namespace.
    pub fn tun_exists(&self) -> bool {
        self.run_in_ns(SHORT_TIMEOUT, "ip", &["link", "show", "dev", &self.tun])
            .success()
    }

    /// Poll (up to `limit`) until the TUN device is gone; false if it is still there.
    pub fn wait_tun_gone(&self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if !self.tun_exists() {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Write `len` bytes of deterministic pseudo-random content (xorshift64*, seeded) to
/// `path`, streaming, so a 256 MiB file never sits in memory.
pub fn write_pattern_file(path: &Path, len: u64, seed: u64) {
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut state = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).expect("write pattern file");
        left -= n as u64;
    }
    w.flush().expect("flush pattern file");
}

/// Compare two files byte by byte (streaming). `Err` says where they first differ.
pub fn compare_files(expected: &Path, actual: &Path) -> Result<(), String> {
    let open = |p: &Path| File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (mut a, mut b) = (open(expected)?, open(actual)?);
    let (la, lb) = (
        a.metadata().map(|m| m.len()).unwrap_or(0),
        b.metadata().map(|m| m.len()).unwrap_or(0),
    );
    if la != lb {
        return Err(format!(
            "{} is {la} bytes but {} is {lb} bytes",
            expected.display(),
            actual.display()
        ));
    }
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut ba).map_err(|e| e.to_string())?;
        let m = read_full(&mut b, &mut bb).map_err(|e| e.to_string())?;
        if n != m {
            return Err(format!("files changed while reading at offset {offset}"));
        }
        if n == 0 {
            return Ok(());
        }
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Err(format!(
                "first difference at byte {} (expected {:#04x}, got {:#04x})",
                offset + i as u64,
                ba[i],
                bb[i]
            ));
        }
        offset += n as u64;
    }
}

fn read_full(r: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Parse the status code and headers of the *last* response in a `curl -D` dump
/// (header names lower-cased).
pub fn parse_header_dump(dump: &str) -> (u16, Vec<(String, String)>) {
    let mut status = 0;
    let mut headers = Vec::new();
    for line in dump.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            headers.clear();
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (status, headers)
}

/// The value of header `name` (lower case) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
