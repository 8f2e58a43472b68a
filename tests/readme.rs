//! Every command README.md shows is run, and its output must be what README.md says.
//!
//! Convention for README.md (other sections follow it too):
//!
//! * Every fenced code block names its language. A ```` ```console ```` block is run: each line
//!   starting with `$ hubroute` is a command (a line ending in ` \` continues on the next line),
//!   run from the repository root with `hubroute` being this build's binary; the lines after it,
//!   up to the next `$ ` line or the end of the block, are its expected output, standard output
//!   and standard error interleaved as a terminal shows them. In the expected output `[..]`
//!   matches the rest of a line (timings, paths) and a line `...` matches any number of lines.
//! * A line starting with `$ ` anywhere else, or a `$ ` command that is not `hubroute`, fails
//!   this test: nothing that looks runnable is skipped silently.
//! * Commands that need a broker, or that run until stopped, are shown without the `$ ` prompt
//!   in a ```` ```sh ```` block; `tests/brokers.rs` runs their equivalents against real brokers.
//! * Files a command writes go under `out/` (ignored by git). File sinks append and Storage
//!   sinks add `-1`, `-2` to names on reruns, so such commands' output must not depend on
//!   earlier runs.
//!
//! Matching and diffs are snapbox's (the engine of trycmd): trycmd itself treats every
//! unlabelled fence as a test and wants `? failed` status lines in the README, which would make
//! the README read worse for people, so this file does the little parsing itself.

use std::path::Path;

/// One `$ hubroute …` command of README.md and what it should print.
struct Example {
    line: usize,
    args: Vec<String>,
    expected: String,
}

fn examples(readme: &str) -> Result<Vec<Example>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut lines = readme
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .peekable();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            if line.starts_with("$ ") {
                problems.push(format!(
                    "README.md:{n}: a `$ ` command outside a code block"
                ));
            }
            continue;
        };
        let lang = info.trim();
        if lang.is_empty() {
            problems.push(format!(
                "README.md:{n}: a code block without a language (use console, sh, text, ...)"
            ));
        }
        let run = lang == "console";
        let mut current: Option<Example> = None;
        for (n, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            if let Some(cmd) = line.strip_prefix("$ ") {
                if !run {
                    problems.push(format!(
                        "README.md:{n}: `$ ` command in a ```{lang} block; use ```console (run by \
                         tests/readme.rs) or drop the prompt (not run)"
                    ));
                    continue;
                }
                out.extend(current.take());
                current = Some(Example {
                    line: n,
                    args: vec![cmd.to_string()],
                    expected: String::new(),
                });
            } else if let Some(ex) = current.as_mut() {
                let continued =
                    ex.args.last().is_some_and(|l| l.ends_with('\\')) && ex.expected.is_empty();
                if continued {
                    let last = ex.args.pop().unwrap_or_default();
                    ex.args
                        .push(format!("{} {}", last.trim_end_matches('\\'), line.trim()));
                } else {
                    ex.expected.push_str(line);
                    ex.expected.push('\n');
                }
            } else if run && !line.trim().is_empty() {
                problems.push(format!(
                    "README.md:{n}: output before any `$ ` command in a console block"
                ));
            }
        }
        out.extend(current.take());
    }
    // Blank lines between a command's output and the next command are layout.
    for ex in &mut out {
        let trimmed = ex.expected.trim_end_matches('\n').len();
        ex.expected.truncate(trimmed);
    }
    // Split each command line like a POSIX shell.
    for ex in &mut out {
        let text = ex.args.join(" ");
        match shlex::split(&text) {
            Some(args) if args.first().map(String::as_str) == Some("hubroute") => {
                ex.args = args[1..].to_vec()
            }
            _ => problems.push(format!(
                "README.md:{}: only `hubroute …` commands are run (got `{text}`)",
                ex.line
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[test]
fn readme_commands_print_what_the_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let examples = examples(&readme).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    assert!(
        examples.len() >= 8,
        "README.md should show its commands ({} found)",
        examples.len()
    );
    // Outputs are compared as they are: snapbox's path normalisation would turn `\"` into `/"`.
    let assert = snapbox::Assert::new()
        .action_env("SNAPSHOTS")
        .normalize_paths(false);
    let mut failures = Vec::new();
    for ex in &examples {
        let output = snapbox::cmd::Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(&ex.args)
            .current_dir(root)
            .stderr_to_stdout()
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .expect("run hubroute");
        let actual = String::from_utf8_lossy(&output.stdout)
            .trim_end_matches('\n')
            .to_string();
        let name = format!("README.md:{}", ex.line);
        if let Err(e) = assert.try_eq(
            Some(&name),
            snapbox::Data::text(actual),
            snapbox::Data::text(ex.expected.clone()),
        ) {
            failures.push(format!("{name}: hubroute {}\n{e}", ex.args.join(" ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_convention_is_enforced() {
    let bad =
        "```\n$ hubroute eval true\ntrue\n```\n```sh\n$ hubroute x\n```\n```console\n$ ls\n```\n";
    let problems = examples(bad).err().unwrap();
    assert_eq!(problems.len(), 4, "{problems:?}");
    let good = "```console\n$ hubroute run --a \\\n    --b 'x y'\nline 1\n\n$ hubroute fmt \"\\$a\"\n```\n";
    let ex = examples(good).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].args, ["run", "--a", "--b", "x y"]);
    assert_eq!(ex[0].expected, "line 1");
    assert_eq!(ex[1].args, ["fmt", "$a"]);
}
