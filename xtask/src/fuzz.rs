//! `cargo xtask fuzz`: short, bounded cargo-fuzz runs over the checked-in corpus.
//!
//! cargo-fuzz needs nightly-only compiler flags; the machine has one stable
//! toolchain, so the run sets `RUSTC_BOOTSTRAP=1`, which unlocks them on stable.

use std::path::Path;
use std::process::Command;

use crate::{cargo, report};

/// Every fuzz target in `fuzz/fuzz_targets`.
const TARGETS: &[&str] = &[
    "pickle_decode",
    "pickle_memory",
    "topic_parse",
    "envelope_file",
    "pyliteral",
];

pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().ok_or("--seconds needs a value")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds: {value:?} is not a number of seconds"))?;
            }
            name if TARGETS.contains(&name) => targets.push(name),
            other => {
                return Err(format!(
                    "fuzz: unknown argument {other:?} (targets: {})",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets.extend_from_slice(TARGETS);
    }
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    for target in targets {
        // New inputs go to a scratch directory; the checked-in corpus (minimized with
        // `cargo fuzz cmin`) is only read, so a run leaves the worktree clean.
        let corpus = fuzz_dir.join("corpus").join(target);
        let scratch = fuzz_dir.join("target").join("corpus-new").join(target);
        for dir in [&corpus, &scratch] {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir:?}: {e}"))?;
        }
        report(&format!("==> fuzz {target} for {seconds} s"));
        let status = Command::new(cargo())
            .args(["fuzz", "run", target])
            .arg(&scratch)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&fuzz_dir)
            .status()
            .map_err(|e| format!("could not run cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!("fuzz target {target} failed ({status})"));
        }
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    report("==> installing cargo-fuzz");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("could not run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("installing cargo-fuzz failed ({status})"))
    }
}
