//! Goal: the README's layout section is true to the tree. Every path it
//! lists exists, and every source file of the workspace is listed, so a
//! newcomer reading it finds every file and no file that is gone.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The paths the README's layout block lists, relative to the root. A line
/// is `NAMES  description`, names and description apart by two or more
/// spaces; an unindented name ending in `/` opens a directory that the
/// indented lines below it are relative to.
fn listed_paths(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("the README has a Layout section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the Layout section holds a ```text block");
    let mut directory = String::new();
    let mut paths = Vec::new();
    for line in block.lines() {
        let indented = line.starts_with(' ');
        let names = line.trim_start().split("  ").next().unwrap_or("").trim();
        for name in names.split(", ").filter(|name| !name.is_empty()) {
            if indented {
                paths.push(format!("{directory}{name}"));
            } else {
                if name.ends_with('/') {
                    directory = name.to_string();
                }
                paths.push(name.to_string());
            }
        }
    }
    paths
}

/// Every file under `directory` (relative to the root) that the layout must
/// list: sources, tests, benchmarks, units; not golden files or build output.
fn source_files(directory: &str, found: &mut BTreeSet<String>) {
    let path = root().join(directory);
    let entries = fs::read_dir(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    for entry in entries {
        let entry = entry.expect("a readable directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{directory}/{name}");
        if relative == "tests/testdata" {
            continue;
        }
        if entry.file_type().expect("a file type").is_dir() {
            source_files(&relative, found);
        } else if directory == "systemd" || directory == ".ci" || name.ends_with(".rs") {
            found.insert(relative);
        }
    }
}

#[test]
fn the_readme_layout_lists_every_source_file_and_nothing_else() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let listed = listed_paths(&readme);
    assert!(listed.len() > 50, "the layout lists {} paths", listed.len());
    let missing: Vec<&String> = listed
        .iter()
        .filter(|path| !root().join(path.trim_end_matches('/')).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the README's layout lists paths that do not exist: {missing:?}"
    );
    let mut files = BTreeSet::new();
    for directory in ["common", "goosed", "goosectl", "tests", "systemd", ".ci"] {
        source_files(directory, &mut files);
    }
    let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    let unlisted: Vec<&String> = files
        .iter()
        .filter(|file| !listed.contains(file.as_str()))
        .filter(|file| !file.starts_with("tests/target") && !file.contains("/target/"))
        .collect();
    assert!(
        unlisted.is_empty(),
        "source files the README's layout does not list: {unlisted:?}"
    );
}

#[test]
fn the_layout_parser_reads_directories_and_lists() {
    let readme = "x\n## Layout\n\n```text\nA.toml, B.lock   top\ndir/   a dir\n  src/a.rs   a\n  b.rs, c.rs   two\n```\n";
    assert_eq!(
        listed_paths(readme),
        [
            "A.toml",
            "B.lock",
            "dir/",
            "dir/src/a.rs",
            "dir/b.rs",
            "dir/c.rs"
        ]
    );
}
