//! Every command in the documentation runs.
//!
//! The chapters in `docs/*.md` show commands in fenced blocks marked ```sh; they are meant
//! to be typed in a lab shell (`sudo scripts/lab.sh shell`: root, a network namespace of
//! its own, the repository as working directory, `tunstack` on PATH). This test does the
//! same for each file: a fresh namespace, then every ```sh block of the file in order,
//! each with `bash -euo pipefail`, so a block that fails (or whose pipeline fails) fails
//! the test. Blocks that must not run here (they need another terminal, run the test
//! suite itself, or never end) are fenced ```text.
//!
//! `sudo` inside the blocks is a pass-through (the test is root already), and
//! `TUNSTACK_BIN` points `scripts/demo.sh` and `scripts/lab.sh` at the binary under test,
//! so nothing is rebuilt. A server a chapter leaves running is stopped afterwards.
//! `DOCS_SHOW_OUTPUT=1 cargo test --test docs_commands -- --nocapture` prints what each
//! block printed, to refresh the sample output in the chapters.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One ```sh block: where it starts and what it says.
struct Block {
    line: usize,
    text: String,
}

/// The ```sh blocks of a Markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match current.as_mut() {
            None if trimmed.starts_with("```") => {
                if trimmed.trim_end() == "```sh" {
                    current = Some(Block {
                        line: i + 1,
                        text: String::new(),
                    });
                } else {
                    // Another fence: skip to its end by treating it as a block we drop.
                    current = Some(Block {
                        line: 0,
                        text: String::new(),
                    });
                }
            }
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                if let Some(b) = current.take() {
                    if b.line != 0 {
                        blocks.push(b);
                    }
                }
            }
            Some(b) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn extraction_finds_only_sh_blocks() {
    let md =
        "x\n```sh\necho a\n```\n```text\necho no\n```\n```\nplain\n```\n  ```sh\necho b\n  ```\n";
    let blocks = sh_blocks(md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].text, "echo a\n");
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[1].text, "echo b\n");
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

fn run_file(path: &Path, shim: &Path) -> Duration {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let markdown = fs::read_to_string(path).expect("read doc");
    let blocks = sh_blocks(&markdown);
    if blocks.is_empty() {
        return Duration::ZERO;
    }
    let start = Instant::now();
    let Some(h) = Harness::new(&format!("docs {name}"), &["python3"]) else {
        return Duration::ZERO;
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
        let mut c = h.ns().command("bash");
        c.args(["-euo", "pipefail", "-c", &block.text])
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
    }
    start.elapsed()
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

    let mut files: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    let mut total = Duration::ZERO;
    let mut ran = 0;
    for f in &files {
        let took = run_file(f, &shim);
        if !took.is_zero() {
            ran += 1;
            eprintln!("{}: {:?}", f.display(), took);
        }
        total += took;
    }
    let _ = fs::remove_dir_all(&shim);
    eprintln!("docs: {ran} files with commands, {total:?} in all");
    assert!(
        ran >= 5,
        "expected the chapters to have runnable commands, found {ran} files"
    );
}
