//! Golden files (etcd-io/raft's `testdata/*.txt`, "run with -rewrite and
//! inspect the diff"): a test writes what it saw as text and compares it
//! byte for byte with `tests/testdata/<name>.txt`. With
//! `GOOSE_REWRITE_GOLDEN=1` the files are written instead, and the change
//! is read as a diff in review.

use std::path::PathBuf;

/// The environment variable that rewrites golden files.
pub const REWRITE_VARIABLE: &str = "GOOSE_REWRITE_GOLDEN";

/// The golden file of `name`.
pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("{name}.txt"))
}

/// Compares `actual` with the golden file of `name`, or writes it there
/// with `GOOSE_REWRITE_GOLDEN=1`.
///
/// # Panics
/// If the file is missing or differs: the message names the first line
/// that differs and how to rewrite the file.
pub fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var(REWRITE_VARIABLE).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("testdata has a parent"))
            .expect("create tests/testdata");
        std::fs::write(&path, actual)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "golden file {} cannot be read ({error}); write it with {REWRITE_VARIABLE}=1 and review it",
            path.display()
        )
    });
    if let Some((number, want, got)) = first_difference(&expected, actual) {
        panic!(
            "{} differs from this run at line {number}:\n  golden: {want}\n  now:    {got}\n\
             If the change is meant, rerun with {REWRITE_VARIABLE}=1 and read the diff.",
            path.display(),
        );
    }
}

/// The first line at which `expected` and `actual` differ: its number
/// (from 1) and both lines, or `None` if they are equal.
pub fn first_difference<'a>(
    expected: &'a str,
    actual: &'a str,
) -> Option<(usize, &'a str, &'a str)> {
    if expected == actual {
        return None;
    }
    let mut expected_lines = expected.split_inclusive('\n');
    let mut actual_lines = actual.split_inclusive('\n');
    let mut number = 1;
    loop {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(want), Some(got)) if want == got => number += 1,
            (want, got) => {
                return Some((
                    number,
                    want.map_or("(end of file)", str::trim_end),
                    got.map_or("(end of run)", str::trim_end),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that the first differing line is found with its number,
    /// also when one text is a prefix of the other or only a final
    /// newline differs.
    #[test]
    fn the_first_difference_is_named_by_its_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), Some((2, "b", "c")));
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            Some((2, "(end of file)", "b"))
        );
        assert_eq!(first_difference("a\n", "a"), Some((1, "a", "a")));
    }
}
