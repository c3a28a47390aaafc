//! A document's commands, run as a reader runs them: the fenced `sh` blocks of one section of a
//! Markdown file, in order, in one bash, from a directory laid out like the clone's root. What
//! the document says to stop by hand (a watch "Ctrl-C once all three are READY True") is
//! stopped when what it waits for is there; a command the document says is refused (its
//! comment starts with `# refused`) must fail. A block that starts the sandbox (`cargo run --
//! sandbox ...`) is a [`Step::Sandbox`] for the test to carry out, and `cargo install` is the
//! build the test already has. So a test of the document cannot drift from it: the commands
//! are the document's own.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The fenced `sh` blocks of the section under the heading `heading` (`## Walkthrough`), up to
/// the next heading of the same level or higher.
pub fn shell_blocks(markdown: &str, heading: &str) -> Vec<String> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let ends_section = |line: &str| {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        hashes > 0 && hashes <= level && line[hashes..].starts_with(' ')
    };
    let mut lines = markdown.lines().skip_while(|line| line.trim() != heading);
    assert!(lines.next().is_some(), "no section {heading:?}");
    let mut blocks = vec![];
    let mut block: Option<String> = None;
    for line in lines {
        match &mut block {
            None if ends_section(line) => break,
            None if line.trim() == "```sh" => block = Some(String::new()),
            None => {}
            Some(text) if line.trim() == "```" => {
                blocks.push(std::mem::take(text));
                block = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

/// What a reader does next: start the sandbox (its arguments after `sandbox`, but for
/// `--state-dir`), or run a block of commands in the second terminal.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Sandbox(Vec<String>),
    Shell(String),
}

/// `blocks` as steps: `cargo run -- sandbox ...` starts the sandbox; `cargo install` lines are
/// left out (the test runs the binaries it built).
pub fn steps(blocks: &[String]) -> Vec<Step> {
    let mut steps = vec![];
    for block in blocks {
        if let Some(line) = block
            .lines()
            .find(|l| l.trim_start().starts_with("cargo run -- sandbox"))
        {
            let command = line.split('#').next().unwrap_or_default();
            let mut args = command.split_whitespace().skip(4).map(str::to_string);
            let mut kept = vec![];
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--state-dir" => {
                        args.next();
                    }
                    _ => kept.push(arg),
                }
            }
            steps.push(Step::Sandbox(kept));
            continue;
        }
        let shell: String = block
            .lines()
            .filter(|l| !l.trim_start().starts_with("cargo install "))
            .map(|l| format!("{l}\n"))
            .collect();
        if !shell.trim().is_empty() {
            steps.push(Step::Shell(shell));
        }
    }
    steps
}

/// The marker printed before block `n` (from 1), to cut the output by block.
fn marker(n: usize) -> String {
    format!(">>> block {n}")
}

/// Waits, as a reader watching `kubectl get partners -w` does, until every Partner it listed
/// has shown READY True (the column before AGE), then stops it as Ctrl-C would, and prints
/// what it printed. Gives up after two minutes, printing what it saw.
const UNTIL_READY: &str = r#"
__until_ready() {
  local out
  out="$(mktemp)"
  "$@" >"$out" 2>&1 &
  local pid=$!
  for _ in $(seq 1200); do
    if awk '$1 != "NAME" && NF > 2 { seen[$1] = 1; if ($(NF-1) == "True") ready[$1] = 1 }
            END { n = 0; for (k in seen) { n++; if (!(k in ready)) exit 1 }; exit n == 0 }' "$out"; then
      break
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  cat "$out"
  rm -f "$out"
}
"#;

/// The script that runs `blocks` in order, each after its marker, stopping at the first
/// command that fails. A line whose comment says to press Ctrl-C runs until what it waits for
/// is there ([`UNTIL_READY`]); one whose comment says it is refused must fail.
pub fn script(blocks: &[String]) -> String {
    let mut script = format!("set -euo pipefail\n{UNTIL_READY}\n");
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '{}'\n", marker(i + 1)));
        for line in block.lines() {
            if let Some((command, _)) = line.split_once("# Ctrl-C") {
                script.push_str(&format!("__until_ready {}\n", command.trim()));
            } else if let Some((command, _)) = line.split_once("# refused") {
                let command = command.trim();
                script.push_str(&format!(
                    "if {command}; then echo 'not refused: {}' >&2; exit 1; fi\n",
                    command.replace('\'', "")
                ));
            } else {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    script
}

/// Runs `blocks` in one bash in `root`, stdin closed, after `prelude` (what the reader's
/// terminal holds from before: its exports) and with `path` as `PATH`; the output of each
/// block (by its marker), and the whole run.
pub fn run(root: &Path, prelude: &str, path: &str, blocks: &[String]) -> (Vec<String>, Output) {
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}\n{}", script(blocks)))
        .current_dir(root)
        .env_remove("KUBECONFIG")
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut outputs = vec![];
    for n in 1..=blocks.len() {
        let start = stdout.find(&marker(n)).map(|at| at + marker(n).len());
        let end = stdout.find(&marker(n + 1)).unwrap_or(stdout.len());
        outputs.push(match start {
            Some(start) if start <= end => stdout[start..end].to_string(),
            _ => String::new(),
        });
    }
    (outputs, output)
}

#[test]
fn a_sections_shell_blocks_in_order_and_a_watch_stopped() {
    let markdown = "# T\n## Quick\n```sh\nnot this\n```\n## Walkthrough\ntext\n```sh\na\nb\n```\n\
                    ```\nNAME output\n```\n### Sub\n```sh\nkubectl get x -w   # Ctrl-C once ready\n```\n\
                    ## Next\n```sh\nnot this either\n```\n";
    let blocks = shell_blocks(markdown, "## Walkthrough");
    assert_eq!(
        blocks,
        ["a\nb\n", "kubectl get x -w   # Ctrl-C once ready\n"]
    );
    let script = script(&blocks);
    assert!(script.contains("\na\nb\n"), "{script}");
    assert!(
        script.contains("\n__until_ready kubectl get x -w\n"),
        "{script}"
    );
    let refused = super::reader::script(&["kubectl x --past   # refused: no\n".to_string()]);
    assert!(
        refused.contains(
            "if kubectl x --past; then echo 'not refused: kubectl x --past' >&2; exit 1; fi"
        ),
        "{refused}"
    );
    let steps = steps(&[
        "cargo run -- sandbox --state-dir .sandbox --speed 86400\n".to_string(),
        "cargo install --locked --path . --bin kubectl-partner\nkubectl plugin list   # x\n"
            .to_string(),
        "cargo install --path .\n".to_string(),
    ]);
    assert_eq!(
        steps,
        [
            Step::Sandbox(vec!["--speed".into(), "86400".into()]),
            Step::Shell("kubectl plugin list   # x\n".into()),
        ]
    );
}
