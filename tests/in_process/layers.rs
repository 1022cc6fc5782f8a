//! The server's modules in layers: each imports only from layers below its own (or its own), so
//! no import runs back up, and nothing of the server names the lab or the benchmark (crates of
//! their own, which depend on the shop).

use std::collections::BTreeSet;
use std::path::Path;

/// From the bottom up. A module may use its own layer and those before it.
const LAYERS: &[&[&str]] = &[
    &[
        "env",
        "domain",
        "client",
        "healthcheck",
        "assets",
        "timing",
        "per_thread",
    ],
    &["db"],
    &["session"],
    &["error", "metrics"],
    &["config"],
    &["shop_session", "state", "limits"],
    &["routes", "middleware"],
    &["startup"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/in_process/layers.rs"))
}

/// The `crate::x` modules named anywhere in `path` (a file, or a folder of files).
fn imports(path: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let files: Vec<_> = if path.is_dir() {
        walk(path)
    } else {
        vec![path.to_owned()]
    };
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            if text[..i].ends_with('$') {
                continue;
            }
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        for tool in ["shop_lab", "shop_bench", "reqwest"] {
            assert!(
                !text.contains(&format!("{tool}::")),
                "{} names {tool}",
                file.display()
            );
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_import_runs_back_up_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let own = layer_of(&module);
        for used in imports(&path) {
            if used == module {
                continue;
            }
            assert!(
                layer_of(&used) <= own,
                "src/{module} (layer {own}) imports crate::{used} (layer {}), a layer above it",
                layer_of(&used)
            );
        }
        checked += 1;
    }
    assert!(
        checked >= LAYERS.concat().len(),
        "{checked} modules checked"
    );
}
