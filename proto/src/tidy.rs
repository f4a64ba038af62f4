//! Tidy checks of the workspace that belong to no single crate: the proto boundary and the
//! `//!` opening of every source file.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("proto is one level below the root").to_path_buf()
}

#[test]
fn proto_manifest_has_no_io_dependencies() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for forbidden in ["tokio", "async-nats", "kube", "azure", "ldap3", "reqwest", "hyper"] {
        assert!(!manifest.contains(forbidden), "proto must not depend on {forbidden}");
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in [
        "proto",
        "gmsa",
        "bus",
        "azure",
        "cluster",
        "ad",
        "agent",
        "coordinator",
        "azsim",
        "kubesim",
        "testkit",
        "tests",
    ] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let is_test_module = path.file_name().is_some_and(|n| n == "tests.rs");
            !is_test_module && !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! opening: {missing:?}");
}
