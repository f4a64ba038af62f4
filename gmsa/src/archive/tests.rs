//! Unit tests of the ustar writer and reader: layout, round trips, path limits and refusals.

use proptest::prelude::*;

use super::*;

fn mk_files(entries: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    entries.iter().map(|(path, data)| (path.to_string(), data.to_vec())).collect()
}

#[test]
fn layout_is_header_padded_data_and_two_zero_blocks() {
    let archive = tar(&mk_files(&[("a.txt", b"hello"), ("empty", b"")])).unwrap();
    // header + 1 data block, header + no data, two end blocks.
    assert_eq!(archive.len(), 5 * BLOCK);
    assert_eq!(&archive[..5], b"a.txt");
    assert_eq!(&archive[100..108], b"0000644\0");
    assert_eq!(&archive[124..136], b"00000000005\0");
    assert_eq!(&archive[136..148], b"00000000000\0");
    assert_eq!(archive[156], b'0');
    assert_eq!(&archive[257..265], b"ustar\x0000");
    assert_eq!(&archive[BLOCK..BLOCK + 5], b"hello");
    assert!(archive[BLOCK + 5..2 * BLOCK].iter().all(|byte| *byte == 0));
    assert!(archive[3 * BLOCK..].iter().all(|byte| *byte == 0));
    assert_eq!(octal(&archive[148..156]), Some(checksum(&archive[..BLOCK])));
}

#[test]
fn the_same_files_make_the_same_bytes_and_mtime_is_recorded() {
    let files = mk_files(&[("x/y.json", b"{}")]);
    assert_eq!(tar(&files).unwrap(), tar(&files).unwrap());
    let dated = tar_at(&files, 1_700_000_000).unwrap();
    assert_eq!(octal(&dated[136..148]), Some(1_700_000_000));
    assert!(matches!(tar_at(&files, 1 << 40), Err(ArchiveError::MtimeTooLarge { .. })));
}

#[test]
fn long_paths_split_into_prefix_and_name() {
    let directory = "d".repeat(150);
    let path = format!("{directory}/{}", "n".repeat(100));
    let archive = tar(&mk_files(&[(&path, b"x")])).unwrap();
    assert_eq!(&archive[345..495], directory.as_bytes());
    assert_eq!(untar(&archive).unwrap(), [(path, b"x".to_vec())]);
}

#[test]
fn paths_beyond_ustar_are_refused_with_their_name() {
    let unsplittable = "n".repeat(101);
    let name_too_long = format!("dir/{}", "n".repeat(101));
    let prefix_too_long = format!("{}/name", "p".repeat(156));
    for path in [unsplittable, name_too_long, prefix_too_long] {
        let error = tar(&mk_files(&[("ok", b""), (&path, b"")])).unwrap_err();
        assert_eq!(error, ArchiveError::PathTooLong { path: path.clone(), len: path.len() });
        assert!(error.to_string().contains(&path) && error.to_string().contains("155"), "{error}");
    }
}

#[test]
fn unsafe_or_duplicate_paths_are_refused() {
    for path in ["", "/etc/passwd", "../up", "a/../b", "a//b", "./a", "a/", "nul\0"] {
        let error = tar(&mk_files(&[(path, b"")])).unwrap_err();
        assert!(matches!(error, ArchiveError::InvalidPath { .. }), "{path:?}: {error}");
    }
    let error = tar(&mk_files(&[("same", b"1"), ("same", b"2")])).unwrap_err();
    assert_eq!(error, ArchiveError::DuplicatePath { path: "same".to_string() });
}

#[test]
fn damaged_archives_are_reported_not_misread() {
    let archive = tar(&mk_files(&[("a.txt", b"hello")])).unwrap();

    let mut flipped = archive.clone();
    flipped[0] = b'b';
    assert!(matches!(untar(&flipped), Err(ArchiveError::BadChecksum { offset: 0, .. })));

    assert!(matches!(untar(&archive[..BLOCK + 3]), Err(ArchiveError::Truncated { .. })));
    assert!(matches!(untar(&archive[..BLOCK * 2]), Err(ArchiveError::Truncated { offset: 1024 })));
    assert!(matches!(untar(&[1u8; BLOCK]), Err(ArchiveError::NotUstar { offset: 0 })));

    let mut symlink = archive.clone();
    symlink[156] = b'2';
    let sum = checksum(&symlink[..BLOCK]);
    symlink[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    let error = untar(&symlink).unwrap_err();
    assert_eq!(error, ArchiveError::UnsupportedEntry { path: "a.txt".to_string(), typeflag: '2' });
}

proptest! {
    #[test]
    fn untar_returns_what_tar_was_given(
        entries in proptest::collection::btree_map(
            "[a-zA-Z0-9_.-]{1,40}(/[a-zA-Z0-9_-]{1,40}){0,4}",
            proptest::collection::vec(any::<u8>(), 0..1500),
            0..8,
        ),
        mtime in 0u64..MAX_MTIME,
    ) {
        let files: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .filter(|(path, _)| check_path(path).is_ok())
            .collect();
        let archive = tar_at(&files, mtime).unwrap();
        prop_assert_eq!(archive.len() % BLOCK, 0);
        prop_assert_eq!(untar(&archive).unwrap(), files);
    }
}
