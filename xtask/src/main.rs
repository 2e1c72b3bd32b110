//! Project automation, reached as `cargo xtask <command>`.
//!
//! - `cargo xtask ci`: what `.ci/run` runs, in the same order: format check,
//!   clippy with warnings denied (and of `ecci-client` without its `files` feature,
//!   whose `cargo tree` must hold no HTTP crate),
//!   the README's test command (and `ecci-client`'s `no_files` test), the quickstart,
//!   the doc build, `cargo package` of the publishable crates.
//! - `cargo xtask tidy`: the dependency-boundary checks alone (they also run as a
//!   test of this crate, so `cargo test --workspace` enforces them).
//! - `cargo xtask bench [--strict] [SUITE…]`: the benchmarks (the `bench` crate, in
//!   release mode); each suite prints a table whose rows state their run count and spread
//!   and mark a missed target; the run exits 0 unless `--strict` (then a missed target
//!   fails it).
//! - `cargo xtask fuzz [--seconds N] [TARGET…]`: runs the cargo-fuzz targets in
//!   `fuzz/` for N seconds each (default 60), installing cargo-fuzz if needed.
//! - `cargo xtask soak [--minutes N] [--rate N] [--restart-every S] [--crash] [--crash]`: the soak
//!   test (`ecci-client/examples/soak.rs`, release mode; needs the mosquitto binary): 1,000
//!   msg/s through the facade with the broker restarted every 30 s (`--crash`: SIGKILLed,
//!   with end-to-end delivery on), for N minutes (default 10).

mod fuzz;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy::check_workspace(&workspace_root()).map_err(|problems| {
            format!(
                "dependency boundaries violated:\n  {}",
                problems.join("\n  ")
            )
        }),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz::run(&workspace_root(), &args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            usage();
            Ok(())
        }
        Some(other) => Err(format!(
            "unknown command {other:?} (try `cargo xtask help`)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            report(&format!("xtask: {message}"));
            ExitCode::FAILURE
        }
    }
}

fn usage() {
    report(
        "usage: cargo xtask <command>\n\n\
         commands:\n  \
         ci     fmt check, clippy -D warnings, cargo test --workspace, quickstart, doc build,\n         \
         cargo package\n  \
         tidy   check the dependency boundaries between crates\n  \
         bench [--strict] [SUITE...]\n         \
         run the benchmarks in release mode and print their tables\n         \
         (--strict: exit 1 when a target is missed)\n  \
         fuzz [--seconds N] [TARGET...]\n         \
         run the fuzz targets for N seconds each (default 60)\n  \
         soak [--minutes N] [--rate N] [--restart-every S]\n         \
         N minutes (default 10) of 1,000 msg/s with mosquitto restarted every 30 s",
    );
}

#[expect(clippy::print_stderr, reason = "xtask is a command-line tool")]
pub(crate) fn report(message: &str) {
    eprintln!("{message}");
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// One CI step: a name, cargo's arguments, extra environment variables.
type Step = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Runs the CI steps in order, stopping at the first failure.
fn ci() -> Result<(), String> {
    let root = workspace_root();
    tidy::check_workspace(&root).map_err(|problems| {
        format!(
            "dependency boundaries violated:\n  {}",
            problems.join("\n  ")
        )
    })?;
    lean_client(&root)?;
    let steps: &[Step] = &[
        ("format check", &["fmt", "--all", "--", "--check"], &[]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        ),
        // ecci-client without its `files` feature: no HTTP stack, file messages dropped.
        (
            "clippy (ecci-client without files)",
            &[
                "clippy",
                "--package",
                "ecci-client",
                "--no-default-features",
                "--lib",
                "--test",
                "no_files",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        ),
        // The README's test command, exactly.
        ("tests", &["test", "--workspace"], &[]),
        (
            "tests (ecci-client without files)",
            &[
                "test",
                "--package",
                "ecci-client",
                "--no-default-features",
                "--test",
                "no_files",
                "--locked",
            ],
            &[],
        ),
        // The README's first command: the whole flow with nothing installed.
        (
            "quickstart",
            &["run", "--package", "examples", "--example", "quickstart"],
            &[],
        ),
        (
            "doc build",
            &["doc", "--workspace", "--no-deps", "--all-features"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        ),
        // The publishable crates package as they are (manifests, metadata, dependency
        // versions, the files a package holds; needs the crates.io index). Without
        // verification: it would build every crate again from its package in a target
        // directory of its own (7 minutes here), for sources clippy and the tests
        // have built already; no library or binary includes a file from outside its crate.
        (
            "package",
            &[
                "package",
                "--workspace",
                "--exclude",
                "bench",
                "--exclude",
                "examples",
                "--exclude",
                "xtask",
                "--no-verify",
                "--allow-dirty",
                "--locked",
            ],
            &[],
        ),
    ];
    for (name, args, envs) in steps {
        report(&format!("==> {name}: cargo {}", args.join(" ")));
        let status = Command::new(cargo())
            .args(*args)
            .envs(envs.iter().copied())
            .current_dir(&root)
            .status()
            .map_err(|e| format!("{name}: could not run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("{name} failed ({status})"));
        }
    }
    report("==> ci passed");
    Ok(())
}

/// The crates `ecci-client` must not pull without its `files` feature.
const HTTP_STACK: &[&str] = &["ecci-files", "reqwest", "hyper", "rustls-platform-verifier"];

/// Checks that `ecci-client` without its `files` feature depends on none of
/// [`HTTP_STACK`] (`cargo tree`, normal dependencies only).
fn lean_client(root: &Path) -> Result<(), String> {
    report("==> ecci-client without files: no HTTP stack in cargo tree");
    let output = Command::new(cargo())
        .args([
            "tree",
            "--package",
            "ecci-client",
            "--no-default-features",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--locked",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo tree: could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| HTTP_STACK.contains(name))
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "ecci-client without its `files` feature depends on {}",
            found.join(", ")
        ))
    }
}

/// Runs the benchmark binary in release mode with the given suites (and `--strict`, which
/// the binary reads).
fn bench(suites: &[String]) -> Result<(), String> {
    let status = Command::new(cargo())
        .args(["run", "--release", "--quiet", "--package", "bench", "--"])
        .args(suites)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("bench failed ({status})"))
    }
}

/// Runs the soak example in release mode with the given options.
fn soak(args: &[String]) -> Result<(), String> {
    let status = Command::new(cargo())
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "ecci-client",
            "--example",
            "soak",
            "--",
        ])
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("soak failed ({status})"))
    }
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
