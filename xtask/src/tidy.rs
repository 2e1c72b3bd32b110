//! Dependency-boundary checks, read straight from the crates' `Cargo.toml`s.
//!
//! The layering is the architecture: `ecci-proto` stays IO-free, only
//! `ecci-transport` knows rumqttc and only `ecci-files` knows reqwest. A plain
//! line reader is enough for the manifests we write and keeps xtask free of
//! dependencies.

use std::path::Path;

/// Which crates may depend on a given crate (in any dependency section).
/// `bench` may use the raw clients as the references it measures against.
const ONLY_IN: &[(&str, &[&str])] = &[
    ("rumqttc", &["ecci-transport", "bench"]),
    ("rumqttd", &["ecci-transport"]),
    ("reqwest", &["ecci-files", "bench"]),
];

/// Crates that must not depend on the given crates at all.
const NEVER_IN: &[(&str, &[&str])] = &[(
    "ecci-proto",
    &["tokio", "rumqttc", "rumqttd", "reqwest", "async-trait"],
)];

/// A dependency as declared in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dep {
    /// The dependency's name as written (the key, or `package = "…"` when renamed).
    pub(crate) name: String,
    /// The section it appears in, e.g. `dependencies` or `dev-dependencies`.
    pub(crate) section: String,
}

/// Lists the dependencies declared in a manifest's text.
pub(crate) fn dependencies(manifest: &str) -> Vec<Dep> {
    let mut deps = Vec::new();
    let mut section = String::new();
    let mut in_deps = false;
    for raw in manifest.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.trim_matches(|c| c == '[' || c == ']').trim();
            // `[dependencies.foo]` declares foo; `[target.'cfg(..)'.dependencies]` opens a section.
            let parts: Vec<&str> = header.split('.').collect();
            match parts.iter().position(|p| p.ends_with("dependencies")) {
                Some(i) => {
                    section = parts[i].to_owned();
                    in_deps = i + 1 == parts.len();
                    if let Some(name) = parts.get(i + 1) {
                        deps.push(Dep {
                            name: (*name).to_owned(),
                            section: section.clone(),
                        });
                    }
                }
                None => in_deps = false,
            }
            continue;
        }
        if !in_deps || line.is_empty() {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim();
            let key = key.split('.').next().unwrap_or(key).trim_matches('"');
            let name = renamed_package(value).unwrap_or(key);
            deps.push(Dep {
                name: name.to_owned(),
                section: section.clone(),
            });
        }
    }
    deps
}

/// The `package = "…"` of an inline table, if the dependency is renamed.
fn renamed_package(value: &str) -> Option<&str> {
    let rest = value.split("package").nth(1)?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next()
}

/// Checks one crate's dependencies against the rules.
pub(crate) fn check_crate(crate_name: &str, deps: &[Dep]) -> Vec<String> {
    let mut problems = Vec::new();
    for dep in deps {
        for (restricted, allowed) in ONLY_IN {
            if dep.name == *restricted && !allowed.contains(&crate_name) {
                problems.push(format!(
                    "{crate_name} depends on {} ({}), which only {} may use",
                    dep.name,
                    dep.section,
                    allowed.join(", ")
                ));
            }
        }
        for (krate, forbidden) in NEVER_IN {
            if crate_name == *krate && forbidden.contains(&dep.name.as_str()) {
                problems.push(format!(
                    "{crate_name} depends on {} ({}), but it must stay free of IO crates",
                    dep.name, dep.section
                ));
            }
        }
    }
    problems
}

/// Checks every member crate (every directory with a `Cargo.toml` under the root).
pub(crate) fn check_workspace(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|e| vec![format!("reading {root:?}: {e}")])?;
    let mut checked = 0;
    for entry in entries.flatten() {
        let manifest_path = entry.path().join("Cargo.toml");
        let Ok(manifest) = std::fs::read_to_string(&manifest_path) else {
            continue;
        };
        let crate_name = entry.file_name().to_string_lossy().into_owned();
        problems.extend(check_crate(&crate_name, &dependencies(&manifest)));
        checked += 1;
    }
    if checked == 0 {
        problems.push(format!("no crates found under {root:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(manifest: &str, expected: &[(&str, &str)]) {
        let got: Vec<(String, String)> = dependencies(manifest)
            .into_iter()
            .map(|d| (d.name, d.section))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect();
        assert_eq!(got, expected, "manifest:\n{manifest}");
    }

    #[test]
    fn reads_dependency_sections() {
        check(
            "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\ntokio = { version = \"1\" }\n",
            &[("serde", "dependencies"), ("tokio", "dependencies")],
        );
        check(
            "[dev-dependencies]\nproptest = \"1\" # tests\n[features]\ntokio = []\n",
            &[("proptest", "dev-dependencies")],
        );
        check(
            "[dependencies.rumqttc]\nversion = \"0.25\"\n",
            &[("rumqttc", "dependencies")],
        );
        check(
            "[target.'cfg(unix)'.dependencies]\nmqtt = { package = \"rumqttc\", version = \"0.25\" }\n",
            &[("rumqttc", "dependencies")],
        );
    }

    #[test]
    fn boundaries_are_enforced() {
        let deps = dependencies("[dependencies]\ntokio = \"1\"\nrumqttc = \"0.25\"\n");
        assert_eq!(
            check_crate("ecci-proto", &deps),
            [
                "ecci-proto depends on tokio (dependencies), but it must stay free of IO crates",
                "ecci-proto depends on rumqttc (dependencies), which only ecci-transport, bench may use",
                "ecci-proto depends on rumqttc (dependencies), but it must stay free of IO crates",
            ]
        );
        assert!(check_crate("ecci-transport", &deps).is_empty());
        let deps = dependencies("[dev-dependencies]\nreqwest = \"0.12\"\n");
        assert_eq!(
            check_crate("ecci-client", &deps),
            [
                "ecci-client depends on reqwest (dev-dependencies), which only ecci-files, bench may use"
            ]
        );
    }

    #[test]
    fn this_workspace_respects_the_boundaries() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        if let Err(problems) = check_workspace(root) {
            panic!(
                "dependency boundaries violated:\n  {}",
                problems.join("\n  ")
            );
        }
    }
}
