//! Interoperability of `gmsa::archive` with GNU tar (Debian's `tar`): archives we write list and
//! extract with `tar`, and archives `tar --format=ustar` writes read back with `untar`.

use std::path::{Path, PathBuf};
use std::process::Command;

use gmsa::archive::{tar, untar};

/// A directory of this test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("gmsa-archive-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_tar(args: &[&str], directory: &Path) -> Vec<u8> {
    let output = Command::new("tar").args(args).current_dir(directory).output().expect("tar is installed");
    assert!(output.status.success(), "tar {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn mk_bundle() -> Vec<(String, Vec<u8>)> {
    let long_directory = format!("cluster-west/{}", "nodes-".repeat(20));
    vec![
        ("cluster-west/steps.json".to_string(), br#"{"step":"credspec-apply","change":"unchanged"}"#.to_vec()),
        ("cluster-west/credspec.json".to_string(), vec![b'x'; 513]),
        ("cluster-west/events/empty.log".to_string(), Vec::new()),
        (format!("{long_directory}/windows-node-0.log"), (0..=255u8).collect()),
    ]
}

#[test]
fn gnu_tar_lists_and_extracts_what_we_write() {
    let directory = TempDir::new("write");
    let bundle = mk_bundle();
    std::fs::write(directory.0.join("bundle.tar"), tar(&bundle).unwrap()).unwrap();

    let listing = String::from_utf8(run_tar(&["-tf", "bundle.tar"], &directory.0)).unwrap();
    let listed: Vec<&str> = listing.lines().collect();
    let expected: Vec<&str> = bundle.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(listed, expected);

    for (path, data) in &bundle {
        assert_eq!(&run_tar(&["-xOf", "bundle.tar", path], &directory.0), data, "{path}");
    }
    let verbose = String::from_utf8(run_tar(&["-tvf", "bundle.tar"], &directory.0)).unwrap();
    assert!(verbose.lines().all(|line| line.starts_with("-rw-r--r-- root/root")), "{verbose}");
}

#[test]
fn we_read_what_gnu_tar_writes_in_ustar_format() {
    let directory = TempDir::new("read");
    let bundle = mk_bundle();
    for (path, data) in &bundle {
        let file = directory.0.join("src").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, data).unwrap();
    }
    let mut args = vec!["--format=ustar", "-cf", "../written.tar"];
    args.extend(bundle.iter().map(|(path, _)| path.as_str()));
    run_tar(&args, &directory.0.join("src"));

    let read = untar(&std::fs::read(directory.0.join("written.tar")).unwrap()).unwrap();
    assert_eq!(read, bundle);
}
