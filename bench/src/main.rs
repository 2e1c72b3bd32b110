//! Benchmarks, run in release mode through `cargo xtask bench [--strict] [SUITE…]`.
//!
//! Each suite measures one component against a reference measured in the same
//! run (raw rumqttc, curl, …) and prints a table. Suites talk only to servers
//! they start on 127.0.0.1 and stop by themselves.
//!
//! A missed target is a cell of its table (`missed: …`) and a line of the summary at the
//! end; the exit status is 0 unless `--strict` is given, since one noisy row on a shared
//! machine says little on its own (each row shows its run count and spread). A suite that
//! cannot run (a missing tool, a broken run) always fails.

#![expect(clippy::print_stdout, reason = "a benchmark prints its table")]

mod client;
mod files;
mod logger;
mod proto;
mod table;
mod transport;

use std::process::ExitCode;
use std::sync::Mutex;

/// A suite: its name and the function that runs it.
type Suite = (&'static str, fn() -> Result<(), String>);

/// Every suite, in the order `cargo xtask bench` runs them.
const SUITES: &[Suite] = &[
    ("proto", proto::run),
    ("transport", transport::run),
    ("logger", logger::run),
    ("files", files::run),
    ("client", client::run),
];

/// The targets missed so far, for the summary.
static MISSED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a missed target (its row says so too); the summary lists it.
pub(crate) fn missed(what: String) {
    MISSED.lock().unwrap_or_else(|e| e.into_inner()).push(what);
}

fn main() -> ExitCode {
    let mut wanted: Vec<String> = std::env::args().skip(1).collect();
    let strict = wanted.iter().any(|w| w == "--strict");
    wanted.retain(|w| w != "--strict");
    if let Some(unknown) = wanted.iter().find(|w| !SUITES.iter().any(|(n, _)| n == w)) {
        let names: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
        println!(
            "unknown suite {unknown:?}; suites: {} (and --strict)",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    for (name, run) in SUITES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        println!("## {name}\n");
        if let Err(e) = run() {
            println!("suite {name} failed: {e}");
            return ExitCode::FAILURE;
        }
        println!();
    }
    let missed = std::mem::take(&mut *MISSED.lock().unwrap_or_else(|e| e.into_inner()));
    if missed.is_empty() {
        println!("## every target met");
        return ExitCode::SUCCESS;
    }
    println!("## targets missed ({})\n", missed.len());
    for m in &missed {
        println!("- {m}");
    }
    if fails(&missed, strict) {
        println!("\n--strict: failing");
        ExitCode::FAILURE
    } else {
        println!("\n(exit status 0: pass --strict to fail on a missed target)");
        ExitCode::SUCCESS
    }
}

/// Whether the run fails: only for a missed target under `--strict`.
fn fails(missed: &[String], strict: bool) -> bool {
    strict && !missed.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_fails_only_when_strict() {
        let missed = ["files, 1 GiB upload (PUT): 78 % of curl".to_owned()];
        assert!(!fails(&missed, false));
        assert!(fails(&missed, true));
        assert!(!fails(&[], true));
    }
}
