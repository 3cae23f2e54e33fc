//! Every command in the documentation runs, and prints what the documentation shows.
//!
//! The chapters in `docs/` (and `docs/ko/`) show commands in fenced blocks marked ```sh;
//! they are meant to be typed in a lab shell (`sudo scripts/lab.sh shell`: root, a network
//! namespace of its own, the repository as working directory, `tunstack` on PATH). This
//! test does the same for each file: a fresh namespace, then every ```sh block of the file
//! in order, each with `bash -euo pipefail`, so a block that fails (or whose pipeline
//! fails) fails the test. Blocks that must not run here (they need another terminal, run
//! the test suite itself, or never end) are fenced ```text.
//!
//! A fenced block preceded by an `<!-- output -->` comment shows what the last ```sh block
//! before it prints (stdout and stderr together). Its lines must appear in that output, in
//! the same order, after volatile numbers are masked on both sides; a drift fails with a
//! diff. The marker and its masks are described in `docs/testing.md` ("Shown output").
//!
//! `sudo` inside the blocks is a pass-through (the test is root already), and
//! `TUNSTACK_BIN` points `scripts/demo.sh` and `scripts/lab.sh` at the binary under test,
//! so nothing is rebuilt. A server a chapter leaves running is stopped afterwards.
//! `DOCS_FILE=1-link.md` (a substring of the path under `docs/`) runs only matching files;
//! `DOCS_SHOW_OUTPUT=1 cargo test --test docs_commands -- --nocapture` prints what each
//! block printed, to refresh the sample output in the chapters.

mod common;

use common::*;
use regex::Regex;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One ```sh block: where it starts, what it says, and the output the doc shows for it.
struct Block {
    line: usize,
    text: String,
    shown: Option<Shown>,
}

/// A fenced block marked `<!-- output[: OPTIONS] -->`: what the doc says the command prints.
#[derive(Debug)]
struct Shown {
    /// Line of the opening fence.
    line: usize,
    lines: Vec<String>,
    masks: Masks,
}

/// How volatile parts of a line are hidden before comparing (both sides alike).
#[derive(Debug, Default)]
struct Masks {
    /// `numbers`: every number except IPv4 addresses and versions (HTTP/1.1).
    numbers: bool,
    /// `mask=REGEX` (several separated by `;`): each match becomes `…`.
    custom: Vec<Regex>,
}

impl Masks {
    fn parse(options: &str) -> Result<Masks, String> {
        let mut m = Masks::default();
        for opt in options.split(';').map(str::trim).filter(|o| !o.is_empty()) {
            if opt == "numbers" {
                m.numbers = true;
            } else if let Some(re) = opt.strip_prefix("mask=") {
                let re = Regex::new(re).map_err(|e| format!("bad mask {re:?}: {e}"))?;
                m.custom.push(re);
            } else {
                return Err(format!(
                    "unknown output option {opt:?} (numbers, mask=REGEX)"
                ));
            }
        }
        Ok(m)
    }

    /// The line with its volatile parts replaced. Always masked: decimal fractions (times,
    /// RTTs, rates, but not IPv4 addresses nor versions after a `/`) and IPv6 link-local
    /// addresses (they derive from a random interface id).
    fn apply(&self, line: &str) -> String {
        let mut line = line.trim_end().to_string();
        for re in &self.custom {
            line = re.replace_all(&line, "…").into_owned();
        }
        line = link_local().replace_all(&line, "fe80::…").into_owned();
        let numbers = self.numbers;
        let src = line.clone();
        number()
            .replace_all(&line, |c: &regex::Captures| {
                let m = c.get(0).unwrap();
                let text = m.as_str();
                // HTTP/1.1, but not the 0.034 of min/avg/max/mdev = 0.031/0.034.
                let before = src[..m.start()].strip_suffix('/');
                let after_slash =
                    before.is_some_and(|b| b.ends_with(|c: char| c.is_ascii_alphabetic()));
                let dots = text.matches('.').count();
                if dots >= 2 || after_slash {
                    text.to_string() // 10.0.0.2, HTTP/1.1: part of what is taught
                } else if dots == 1 {
                    "N.N".to_string()
                } else if numbers {
                    "N".to_string()
                } else {
                    text.to_string()
                }
            })
            .into_owned()
    }
}

fn number() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[0-9]+(?:\.[0-9]+)*").unwrap())
}

fn link_local() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"fe80::[0-9a-fA-F:]+").unwrap())
}

/// A shown line that stands for lines left out.
fn is_elision(line: &str) -> bool {
    matches!(line.trim(), "..." | "…" | "[...]" | "[…]")
}

/// Whether one (masked) shown line matches one (masked) output line. A shown line ending
/// in ` ...` or ` …` matches an output line that starts the same way; one starting with
/// `... ` or `… ` (after its indentation) one that contains the rest.
fn line_matches(shown: &str, actual: &str) -> bool {
    let mut pattern = shown;
    let mut prefix_only = false;
    for tail in [" ...", " …"] {
        if let Some(p) = pattern.strip_suffix(tail) {
            pattern = p;
            prefix_only = true;
        }
    }
    let body = pattern.trim_start();
    for head in ["... ", "… "] {
        if let Some(rest) = body.strip_prefix(head) {
            return actual.contains(rest.trim_end());
        }
    }
    if prefix_only {
        actual.starts_with(pattern)
    } else {
        actual == pattern
    }
}

/// Compares shown lines with what the command printed: every shown line must match an
/// output line, in order (lines in between are allowed). `Err` holds a readable diff.
fn compare_shown(shown: &Shown, output: &str) -> Result<(), String> {
    let actual: Vec<String> = output.lines().map(|l| shown.masks.apply(l)).collect();
    let mut next = 0;
    let mut report = String::new();
    let mut missing = 0;
    for (i, raw) in shown.lines.iter().enumerate() {
        if is_elision(raw) || raw.trim().is_empty() {
            report.push_str(&format!("    {raw}\n"));
            continue;
        }
        let want = shown.masks.apply(raw);
        match actual[next..].iter().position(|a| line_matches(&want, a)) {
            Some(k) => {
                next += k + 1;
                report.push_str(&format!("  = {raw}\n"));
            }
            None => {
                missing += 1;
                report.push_str(&format!(
                    "  - {raw}\n      (line {}: after masking {want:?}, not found in order)\n",
                    shown.line + 1 + i
                ));
            }
        }
    }
    if missing == 0 {
        return Ok(());
    }
    let mut printed = String::new();
    for a in &actual {
        printed.push_str(&format!("  + {a}\n"));
    }
    Err(format!(
        "{missing} shown line(s) no longer printed (= found, - missing):\n{report}\
         what the command prints now (masked):\n{printed}"
    ))
}

/// The ```sh blocks of a Markdown file, in order, each with the output shown for it.
fn sh_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut blocks: Vec<Block> = Vec::new();
    // (line of the marker, its options) until the fence it announces.
    type Marker = (usize, String);
    let mut marker: Option<Marker> = None;
    // Inside a fence: (its backticks, is it ```sh, line of the fence, text, its marker).
    let mut fence: Option<(usize, bool, usize, String, Option<Marker>)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        let ticks = trimmed.len() - trimmed.trim_start_matches('`').len();
        match fence.as_mut() {
            None if ticks >= 3 => {
                let is_sh = trimmed == "```sh";
                let m = marker.take();
                if let (true, Some((at, _))) = (is_sh, &m) {
                    return Err(format!("line {at}: an output marker before a ```sh block"));
                }
                fence = Some((ticks, is_sh, i + 1, String::new(), m));
            }
            None => {
                if let Some(rest) = trimmed.strip_prefix("<!-- output") {
                    let Some(opts) = rest.strip_suffix("-->") else {
                        return Err(format!("line {}: unterminated output marker", i + 1));
                    };
                    let opts = opts.trim().strip_prefix(':').unwrap_or(opts).trim();
                    marker = Some((i + 1, opts.to_string()));
                } else if !trimmed.is_empty() {
                    if let Some((at, _)) = marker {
                        return Err(format!(
                            "line {at}: an output marker not followed by a fence"
                        ));
                    }
                }
            }
            // CommonMark: only backticks, at least as many as opened it.
            Some((open, ..)) if ticks >= *open && ticks == trimmed.len() => {
                let (_, is_sh, at, text, m) = fence.take().unwrap();
                if is_sh {
                    blocks.push(Block {
                        line: at,
                        text,
                        shown: None,
                    });
                } else if let Some((mline, opts)) = m {
                    let masks = Masks::parse(&opts).map_err(|e| format!("line {mline}: {e}"))?;
                    let Some(last) = blocks.last_mut() else {
                        return Err(format!("line {mline}: output shown before any ```sh block"));
                    };
                    if last.shown.is_some() {
                        return Err(format!(
                            "line {mline}: a second output for the ```sh block of line {}",
                            last.line
                        ));
                    }
                    last.shown = Some(Shown {
                        line: at,
                        lines: text.lines().map(str::to_string).collect(),
                        masks,
                    });
                }
            }
            Some((_, _, _, text, _)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    Ok(blocks)
}

#[test]
fn extraction_finds_only_sh_blocks() {
    let md =
        "x\n```sh\necho a\n```\n```text\necho no\n```\n```\nplain\n```\n  ```sh\necho b\n  ```\n";
    let blocks = sh_blocks(md).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].text, "echo a\n");
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[1].text, "echo b\n");
    assert!(blocks.iter().all(|b| b.shown.is_none()));
    // A longer fence shows fences as text: nothing inside it runs or is a marker.
    let md = "````text\n```sh\nrm -rf x\n```\n<!-- output -->\n```text\n````\n```sh\ny\n```\n";
    let blocks = sh_blocks(md).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].text, "y\n");
}

#[test]
fn marked_output_belongs_to_the_last_sh_block() {
    let md = "```sh\nping\n```\n\n<!-- output: numbers -->\n```text\n1 packets\n```\n\
              ```sh\ntrue\n```\n```text\nnot checked\n```\n";
    let blocks = sh_blocks(md).unwrap();
    let shown = blocks[0].shown.as_ref().expect("the marked block");
    assert_eq!(shown.lines, ["1 packets"]);
    assert_eq!(shown.line, 6);
    assert!(shown.masks.numbers);
    assert!(blocks[1].shown.is_none());
    // A marker that announces nothing, or comes first, is an error, not silently ignored.
    assert!(sh_blocks("<!-- output -->\nprose\n").is_err());
    assert!(sh_blocks("<!-- output -->\n```text\nx\n```\n").is_err());
    assert!(sh_blocks("```sh\nx\n```\n<!-- output: bogus -->\n```text\nx\n```\n").is_err());
}

fn shown(text: &str, options: &str) -> Shown {
    Shown {
        line: 10,
        lines: text.lines().map(str::to_string).collect(),
        masks: Masks::parse(options).unwrap(),
    }
}

#[test]
fn shown_output_is_compared_after_masking() {
    let out = "PING 10.0.0.2 (10.0.0.2) 1472(1500) bytes of data.\n\
               1480 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.173 ms\n\
               tun0  UNKNOWN  10.0.0.1/24 fe80::4c75:5ebd:c2db:adb3/64\n\
               mtu 1500 qdisc fq_codel qlen 10000\n";
    // Times and link-local addresses differ from run to run; addresses and sizes do not.
    let doc = "PING 10.0.0.2 (10.0.0.2) 1472(1500) bytes of data.\n\
               1480 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.299 ms\n\
               tun0  UNKNOWN  10.0.0.1/24 fe80::1/64\n";
    assert_eq!(compare_shown(&shown(doc, ""), out), Ok(()));
    // Elisions and prefixes: "..." lines, "x ..." lines.
    let doc = "PING 10.0.0.2 ...\n...\nmtu 1500 qdisc fq_codel ...\n";
    assert_eq!(compare_shown(&shown(doc, ""), out), Ok(()));
    // A stale number is a drift, and the report names the line and shows the output.
    let doc = "mtu 1500 qdisc fq_codel qlen 500\n";
    let err = compare_shown(&shown(doc, ""), out).unwrap_err();
    assert!(
        err.contains("  - mtu 1500 qdisc fq_codel qlen 500"),
        "{err}"
    );
    assert!(err.contains("line 11"), "{err}");
    assert!(
        err.contains("  + mtu 1500 qdisc fq_codel qlen 10000"),
        "{err}"
    );
    // …unless the block masks every number, or that one.
    assert_eq!(compare_shown(&shown(doc, "numbers"), out), Ok(()));
    assert_eq!(compare_shown(&shown(doc, "mask=qlen [0-9]+"), out), Ok(()));
    // Order matters: shown lines must come in the order they were printed.
    let doc = "mtu 1500 qdisc fq_codel qlen 10000\nPING 10.0.0.2 ...\n";
    assert!(compare_shown(&shown(doc, ""), out).is_err());
    // "numbers" keeps IPv4 addresses and versions: a changed address is still a drift.
    let doc = "PING 10.0.0.3 (10.0.0.3) 1472(1500) bytes of data.\n";
    assert!(compare_shown(&shown(doc, "numbers"), out).is_err());
    assert!(compare_shown(&shown("HTTP/1.0 200 OK\n", "numbers"), "HTTP/1.1 200 OK\n").is_err());
    let rtt = |s: &str| Masks::default().apply(s);
    assert_eq!(rtt("rtt = 0.031/0.034 ms"), rtt("rtt = 0.052/0.061 ms"));
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Stops the lab server of a namespace when dropped (also when a block failed).
struct LabGuard<'a> {
    ns: &'a Netns,
    env_path: String,
    lab_dir: PathBuf,
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        let mut c = self.ns.command("scripts/lab.sh");
        c.arg("stop")
            .current_dir(repo())
            .env("LAB_DIR", &self.lab_dir)
            .env("PATH", &self.env_path);
        let _ = run_bounded(c, Duration::from_secs(20));
    }
}

/// Runs every ```sh block of one file; returns how long it took and the drifts found
/// (shown output that the command no longer prints).
fn run_file(path: &Path, shim: &Path) -> (Duration, Vec<String>) {
    let docs = repo().join("docs");
    let name = path
        .strip_prefix(&docs)
        .unwrap_or(path)
        .display()
        .to_string();
    let markdown = fs::read_to_string(path).expect("read doc");
    let blocks = sh_blocks(&markdown).unwrap_or_else(|e| panic!("docs/{name}: {e}"));
    let mut drifts = Vec::new();
    if blocks.is_empty() {
        return (Duration::ZERO, drifts);
    }
    let start = Instant::now();
    let Some(h) = Harness::new(&format!("docs {name}"), &["python3"]) else {
        return (Duration::ZERO, drifts);
    };
    let bin = tunstack_bin();
    let bin_dir = bin.parent().expect("binary directory").to_path_buf();
    let env_path = format!(
        "{}:{}:{}",
        shim.display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _guard = LabGuard {
        ns: h.ns(),
        env_path: env_path.clone(),
        lab_dir: h.dir().to_path_buf(),
    };
    // The chapters keep their captures and drawings in /tmp/lab, as a learner's shell would.
    fs::create_dir_all("/tmp/lab").expect("mkdir /tmp/lab");
    for block in &blocks {
        // Shown output is what a terminal shows: stdout and stderr interleaved.
        let script = match block.shown {
            Some(_) => format!("exec 2>&1\n{}", block.text),
            None => block.text.clone(),
        };
        let mut c = h.ns().command("bash");
        c.args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo())
            .env("PATH", &env_path)
            .env("TUNSTACK_BIN", &bin)
            // The server's pid and log per run, so two runs never stop each other's server.
            .env("LAB_DIR", h.dir())
            .env_remove("RUST_LOG");
        let run = run_bounded(c, Duration::from_secs(60));
        assert!(
            run.success(),
            "docs/{name}:{}: this ```sh block failed ({:?}):\n{}\n--- stdout\n{}\n--- stderr\n{}",
            block.line,
            run.status,
            block.text,
            run.stdout,
            run.stderr
        );
        eprintln!("docs/{name}:{}: ok in {:?}", block.line, run.elapsed);
        if std::env::var_os("DOCS_SHOW_OUTPUT").is_some() {
            // For whoever updates the sample output shown in the chapters.
            eprintln!("--- stdout\n{}--- stderr\n{}---", run.stdout, run.stderr);
        }
        if let Some(shown) = &block.shown {
            if let Err(diff) = compare_shown(shown, &run.stdout) {
                eprintln!("docs/{name}:{}: shown output drifted", shown.line);
                drifts.push(format!(
                    "docs/{name}:{}: the output shown for the ```sh block of line {}: {diff}",
                    shown.line, block.line
                ));
            }
        }
    }
    (start.elapsed(), drifts)
}

/// The Markdown files under `docs/` (and its subfolders, such as `docs/ko/`), sorted.
fn doc_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read docs dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            doc_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

#[test]
fn every_sh_block_in_docs_runs() {
    if prerequisites(
        "every_sh_block_in_docs_runs",
        &["python3", "tshark", "nft", "ss", "ping"],
    )
    .is_none()
    {
        return;
    }
    let shim = std::env::temp_dir().join(format!("tunstack-docs-shim-{}", std::process::id()));
    fs::create_dir_all(&shim).expect("shim dir");
    // `sudo [-E] [VAR=value…] cmd…`: we are root already.
    let sudo = shim.join("sudo");
    fs::write(
        &sudo,
        "#!/bin/sh\nwhile [ \"${1#-}\" != \"$1\" ]; do shift; done\nexec env \"$@\"\n",
    )
    .expect("write sudo shim");
    let chmod = run_bounded(cmd("chmod", ["+x", sudo.to_str().unwrap()]), SHORT_TIMEOUT);
    chmod.expect_success("chmod shim");

    let mut files = Vec::new();
    doc_files(&repo().join("docs"), &mut files);
    files.sort();
    // DOCS_FILE=3-transport.md (or ko/): only the files whose path contains it.
    let filter = std::env::var("DOCS_FILE").ok().filter(|f| !f.is_empty());
    if let Some(f) = &filter {
        files.retain(|p| p.to_string_lossy().contains(f.as_str()));
        assert!(
            !files.is_empty(),
            "DOCS_FILE={f} matches no file under docs/"
        );
    }
    let mut total = Duration::ZERO;
    let mut ran = 0;
    let mut drifts = Vec::new();
    for f in &files {
        let (took, mut found) = run_file(f, &shim);
        if !took.is_zero() {
            ran += 1;
            eprintln!("{}: {:?}", f.display(), took);
        }
        total += took;
        drifts.append(&mut found);
    }
    let _ = fs::remove_dir_all(&shim);
    eprintln!("docs: {ran} files with commands, {total:?} in all");
    assert!(
        drifts.is_empty(),
        "{} shown output(s) differ from what the commands print now:\n\n{}",
        drifts.len(),
        drifts.join("\n")
    );
    assert!(
        filter.is_some() || ran >= 5,
        "expected the chapters to have runnable commands, found {ran} files"
    );
}

/// Deletes a lab's namespace and files when dropped, also when the test failed.
struct LabCleanup {
    ns: String,
    dir: PathBuf,
}

impl Drop for LabCleanup {
    fn drop(&mut self) {
        let _ = run_bounded(cmd("ip", ["netns", "delete", &self.ns]), SHORT_TIMEOUT);
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(format!("/run/tunstack-lab/{}", self.ns));
    }
}

fn lab_namespace_exists(ns: &str) -> bool {
    let list = run_bounded(cmd("ip", ["netns", "list"]), SHORT_TIMEOUT);
    list.stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(ns))
}

/// `scripts/lab.sh shell NAME` reading `input` as its commands; output goes to files so a
/// long-lived shell never blocks on a full pipe.
fn spawn_lab_shell(
    ns: &str,
    dir: &Path,
    tag: &str,
    input: Option<&str>,
) -> (ChildGuard, Option<std::process::ChildStdin>) {
    use std::io::Write;
    let mut c = std::process::Command::new(repo().join("scripts/lab.sh"));
    c.args(["shell", ns])
        .current_dir(repo())
        .env("LAB_DIR", dir)
        .env("TUNSTACK_BIN", tunstack_bin())
        .stdin(std::process::Stdio::piped())
        .stdout(fs::File::create(dir.join(format!("{tag}.out"))).unwrap())
        .stderr(fs::File::create(dir.join(format!("{tag}.err"))).unwrap());
    let mut child = c.spawn().expect("start scripts/lab.sh shell");
    let mut stdin = child.stdin.take();
    if let Some(text) = input {
        let mut pipe = stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
        // Dropping the pipe ends the shell's input: it exits after these commands.
    }
    (ChildGuard::new(child, format!("lab shell {tag}")), stdin)
}

fn wait_exit(shell: &mut ChildGuard, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = shell.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--step` needs two shells in one namespace: a second `lab.sh shell` joins the first's
/// lab, leaving it keeps the lab for the other, and the last shell out stops the server
/// and deletes the namespace (its EXIT trap must not refer to a variable that is gone).
#[test]
fn lab_shells_share_a_namespace_and_the_last_one_cleans_up() {
    if prerequisites("lab_shells_share_a_namespace", &["ip", "curl"]).is_none() {
        return;
    }
    let pid = std::process::id();
    let ns = format!("ts-{pid}-lab");
    let tun = format!("tst{pid}xl");
    let dir = std::env::temp_dir().join(format!("tunstack-test-{ns}"));
    fs::create_dir_all(&dir).unwrap();
    let _cleanup = LabCleanup {
        ns: ns.clone(),
        dir: dir.clone(),
    };
    // The first shell stays open until we close its input.
    let (mut first, first_input) = spawn_lab_shell(&ns, &dir, "first", None);
    let deadline = Instant::now() + READY_TIMEOUT;
    while !lab_namespace_exists(&ns) {
        assert!(
            Instant::now() < deadline,
            "lab namespace {ns} never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The second joins it, starts a server there and leaves.
    let script = format!(
        "ip netns identify\nscripts/lab.sh serve --tun {tun} --port 80\n\
         curl -s -o /dev/null -w 'http %{{http_code}}\\n' --max-time 10 http://10.0.0.2/\nexit\n"
    );
    let (mut second, _) = spawn_lab_shell(&ns, &dir, "second", Some(&script));
    let status = wait_exit(&mut second, SHORT_TIMEOUT).expect("second lab shell did not exit");
    let out = fs::read_to_string(dir.join("second.out")).unwrap();
    let err = fs::read_to_string(dir.join("second.err")).unwrap();
    assert!(status.success(), "second shell: {status}\n{out}\n{err}");
    assert!(
        out.contains(&format!("lab: joined namespace {ns}")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == ns), "not inside {ns}:\n{out}");
    assert!(out.contains("http 200"), "{out}\n{err}");
    assert!(out.contains("(1 other shell(s) still in it)"), "{out}");
    assert!(lab_namespace_exists(&ns), "the first shell's lab is gone");
    let server: u32 = fs::read_to_string(dir.join("serve.pid"))
        .expect("serve.pid")
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{server}")).exists());
    // The last shell out: server stopped, namespace deleted, no shell error.
    drop(first_input);
    let status = wait_exit(&mut first, SHORT_TIMEOUT).expect("first lab shell did not exit");
    let out = fs::read_to_string(dir.join("first.out")).unwrap();
    let err = fs::read_to_string(dir.join("first.err")).unwrap();
    assert!(status.success(), "first shell: {status}\n{out}\n{err}");
    assert!(!err.contains("unbound variable"), "{err}");
    assert!(
        out.contains(&format!("lab: namespace {ns} deleted")),
        "{out}\n{err}"
    );
    assert!(!lab_namespace_exists(&ns), "{ns} is still there");
    assert!(
        !Path::new(&format!("/proc/{server}")).exists(),
        "the lab's server (pid {server}) still runs"
    );
}
