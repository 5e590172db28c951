//! Hostile archives, crafted byte by byte: nothing may be written outside the
//! root, and refused entries are named in the error.

mod layer_util;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hoist_image::layer::{apply_layer, ApplyOptions};
use hoist_image::Error;
use layer_util::{raw_entry, raw_tar, snapshot};

/// `<tmp>/outside/secret` next to `<tmp>/root`, plus a snapshot of everything
/// outside the root to compare afterwards.
struct Jail {
    _tmp: tempfile::TempDir,
    userspace: bool,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl Jail {
    fn new(userspace: bool) -> Jail {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        fs::write(base.join("x"), "x").unwrap();
        Jail {
            _tmp: tmp,
            userspace,
            base,
            root,
            outside,
        }
    }

    /// Everything under the temp dir except the root.
    fn outside_state(&self) -> BTreeMap<String, String> {
        snapshot(&self.base)
            .into_iter()
            .filter(|(k, _)| k != "root" && !k.starts_with("root/"))
            .collect()
    }

    fn apply(&self, entries: &[Vec<u8>]) -> hoist_image::Result<hoist_image::layer::ApplyStats> {
        let before = self.outside_state();
        let opts = ApplyOptions {
            userspace_resolution: self.userspace,
            ..Default::default()
        };
        let r = apply_layer(&raw_tar(entries)[..], None, &self.root, &opts);
        assert_eq!(
            self.outside_state(),
            before,
            "something changed outside the root"
        );
        assert_eq!(
            fs::metadata(self.outside.join("secret")).unwrap().nlink(),
            1,
            "the secret was hard-linked"
        );
        r
    }
}

fn assert_unsafe(r: hoist_image::Result<impl std::fmt::Debug>, name: &str) {
    match r {
        Err(Error::UnsafeEntry { entry, .. }) => assert_eq!(entry, name),
        other => panic!("expected UnsafeEntry for {name:?}, got {other:?}"),
    }
}

fn abs(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn dot_dot_names_are_refused_and_named() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        assert_unsafe(
            j.apply(&[raw_entry("../../x", b'0', "", b"pwned")]),
            "../../x",
        );
        assert_unsafe(
            j.apply(&[raw_entry("sub/../../x", b'0', "", b"pwned")]),
            "sub/../../x",
        );
        assert_unsafe(
            j.apply(&[raw_entry("/abs/../../x", b'0', "", b"pwned")]),
            "/abs/../../x",
        );
        let err = j
            .apply(&[raw_entry("../outside/secret", b'5', "", b"")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("../outside/secret"), "{err}");
        assert_eq!(fs::read_to_string(j.base.join("x")).unwrap(), "x");
    }
}

#[test]
fn absolute_names_land_inside_the_root() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        let name = format!("{}/secret", abs(&j.outside));
        j.apply(&[raw_entry(&name, b'0', "", b"inside")]).unwrap();
        let inside = j.root.join(name.trim_start_matches('/'));
        assert_eq!(fs::read_to_string(inside).unwrap(), "inside");
    }
}

#[test]
fn absolute_symlink_then_write_through_it_stays_inside() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        // a -> /  then a/<unique>/x: must land in root/<unique>/x, never in /<unique>.
        let unique = format!("hoist-layer-test-{}", std::process::id());
        j.apply(&[
            raw_entry("a", b'2', "/", b""),
            raw_entry(&format!("a/{unique}/x"), b'0', "", b"inside"),
        ])
        .unwrap();
        assert!(!Path::new("/").join(&unique).exists());
        assert_eq!(
            fs::read_to_string(j.root.join(&unique).join("x")).unwrap(),
            "inside"
        );

        // b -> <abs path of outside>  then b/secret: resolves to root/<outside path>.
        let r = j.apply(&[
            raw_entry("b", b'2', &abs(&j.outside), b""),
            raw_entry("b/secret", b'0', "", b"pwned"),
        ]);
        // Refused: inside the root, the symlink's target directory does not exist.
        let err = hoist_image::chain_text(&r.unwrap_err());
        assert!(err.contains("b/secret"), "{err}");
    }
}

#[test]
fn relative_symlink_escape_then_write_stays_inside() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        j.apply(&[
            raw_entry("sub/deeper/up", b'2', "../../..", b""),
            raw_entry("sub/deeper/up/x", b'0', "", b"inside"),
            raw_entry("sub/deeper/up/outside/secret", b'0', "", b"pwned"),
        ])
        .unwrap();
        // `../../..` from root/sub/deeper is clamped at the root.
        assert_eq!(fs::read_to_string(j.root.join("x")).unwrap(), "inside");
        assert_eq!(
            fs::read_to_string(j.root.join("outside/secret")).unwrap(),
            "pwned"
        );
        // The symlink itself is kept verbatim.
        assert_eq!(
            fs::read_link(j.root.join("sub/deeper/up")).unwrap(),
            Path::new("../../..")
        );
    }
}

#[test]
fn hardlinks_outside_are_refused() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        assert_unsafe(
            j.apply(&[raw_entry("h", b'1', "../outside/secret", b"")]),
            "h",
        );
        // An absolute target is taken inside the root: there is no such file there.
        let err = j
            .apply(&[raw_entry(
                "h2",
                b'1',
                &format!("{}/secret", abs(&j.outside)),
                b"",
            )])
            .unwrap_err()
            .to_string();
        assert!(err.contains("h2"), "{err}");
    }
}

#[test]
fn hardlink_through_an_escaping_symlink_stays_inside() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        // s -> <outside dir>; a hard link to s/secret resolves s inside the root.
        let r = j.apply(&[
            raw_entry("s", b'2', &abs(&j.outside), b""),
            raw_entry("h", b'1', "s/secret", b""),
        ]);
        let err = hoist_image::chain_text(&r.unwrap_err());
        assert!(err.contains("\"h\""), "{err}");

        // A hard link to an escaping symlink links the symlink, not its target; then
        // writing a file over the link replaces it instead of writing through it.
        let j = Jail::new(userspace);
        j.apply(&[
            raw_entry("s", b'2', &format!("{}/secret", abs(&j.outside)), b""),
            raw_entry("h", b'1', "s", b""),
            raw_entry("h", b'0', "", b"pwned"),
            raw_entry("s", b'0', "", b"pwned too"),
        ])
        .unwrap();
        assert_eq!(
            fs::read_to_string(j.outside.join("secret")).unwrap(),
            "secret"
        );
        assert_eq!(fs::read_to_string(j.root.join("h")).unwrap(), "pwned");
        assert_eq!(fs::read_to_string(j.root.join("s")).unwrap(), "pwned too");
    }
}

#[test]
fn whiteouts_cannot_delete_outside() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        assert_unsafe(j.apply(&[raw_entry("../.wh.x", b'0', "", b"")]), "../.wh.x");
        assert_unsafe(
            j.apply(&[raw_entry("../outside/.wh.secret", b'0', "", b"")]),
            "../outside/.wh.secret",
        );
        // Through a symlink to the outside dir: resolved inside, so nothing to delete.
        j.apply(&[
            raw_entry("o", b'2', &abs(&j.outside), b""),
            raw_entry("o/.wh.secret", b'0', "", b""),
            raw_entry("o/.wh..wh..opq", b'0', "", b""),
            raw_entry("up", b'2', "../..", b""),
            raw_entry("up/.wh.x", b'0', "", b""),
        ])
        .unwrap();
        // `.wh..` would name the parent directory itself.
        assert_unsafe(
            j.apply(&[raw_entry("sub/.wh..", b'0', "", b"")]),
            "sub/.wh..",
        );
        assert!(j.root.join("sub").is_dir());
    }
}

#[test]
fn directory_and_file_entries_replace_symlinks_instead_of_following_them() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        j.apply(&[
            raw_entry("d", b'2', &abs(&j.outside), b""),
            raw_entry("d/", b'5', "", b""),
            raw_entry("d/secret", b'0', "", b"inside"),
            raw_entry("f", b'2', &format!("{}/secret", abs(&j.outside)), b""),
            raw_entry("f", b'0', "", b"inside"),
            raw_entry("dev", b'2', &format!("{}/secret", abs(&j.outside)), b""),
            raw_entry("dev", b'6', "", b""),
        ])
        .unwrap();
        assert!(fs::symlink_metadata(j.root.join("d")).unwrap().is_dir());
        assert_eq!(
            fs::read_to_string(j.root.join("d/secret")).unwrap(),
            "inside"
        );
        assert_eq!(fs::read_to_string(j.root.join("f")).unwrap(), "inside");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    // Both path resolvers: openat2(RESOLVE_IN_ROOT) and the user-space walk.
    for userspace in [false, true] {
        let j = Jail::new(userspace);
        let mut bad = raw_entry("ok", b'0', "", b"data");
        bad[148] = b'9'; // broken checksum
        assert!(j.apply(&[bad]).is_err());
        let truncated = raw_entry("big", b'0', "", &[7u8; 4096]);
        let r = apply_layer(&truncated[..1000], None, &j.root, &ApplyOptions::default());
        assert!(r.is_err());
        let r = apply_layer(
            &[0x1f, 0x8b, 8, 0, 1, 2][..],
            None,
            &j.root,
            &ApplyOptions::default(),
        );
        assert!(r.is_err());
    }
}
