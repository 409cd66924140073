//! Bad input from a registry: each case fails with a clear error and leaves the store exactly
//! as it was.

use std::fs;

use integration::image::{Compression, Layer, LayerBlob, OciLayout};
use integration::pinkerton::Pinkerton;
use integration::registry::Registry;
use integration::{root_test, tree};
use serde_json::json;
use tar::EntryType;

/// A store that already holds one image, so "unchanged" is checked against real content.
fn seeded(reg: &Registry) -> (Pinkerton, OciLayout) {
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    layout.add_image(
        "seed",
        &[Layer::new().busybox_root().build(Compression::Gzip)],
        json!({}),
    );
    layout.push("seed", &format!("{}/test/seed:v1", reg.addr), &[]);
    p.ok(&["pull", &format!("{}/test/seed:v1", reg.addr)]);
    (p, layout)
}

/// Pushes `layers` as `test/NAME:v1`, pulls it with `extra` flags, and checks that the pull
/// fails with `expect` in its message and changes nothing in the store.
fn pull_fails(
    reg: &Registry,
    p: &Pinkerton,
    layout: &mut OciLayout,
    name: &str,
    layers: &[LayerBlob],
    extra: &[&str],
    expect: &str,
) {
    layout.add_image(name, layers, json!({}));
    let reference = format!("{}/test/{name}:v1", reg.addr);
    layout.push(name, &reference, &[]);
    assert_unchanged(
        p,
        &[&["pull"], extra, &[reference.as_str()]].concat(),
        expect,
    );
}

fn assert_unchanged(p: &Pinkerton, args: &[&str], expect: &str) {
    let before = tree::store_state(&p.store());
    let err = p.fails(args);
    assert!(
        err.contains(expect),
        "expected {expect:?} in the error of {args:?}, got:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let d = tree::diff(&before, &tree::store_state(&p.store()));
    assert!(
        d.is_empty(),
        "{args:?} changed the store:\n{}",
        d.join("\n")
    );
}

#[root_test]
fn hostile_layers_are_refused() {
    let reg = Registry::start();
    let (p, mut layout) = seeded(&reg);
    let outside = p.scratch().join("outside");
    fs::create_dir(&outside).unwrap();
    let out = outside.display().to_string();
    let cases: Vec<(&str, Layer)> = vec![
        ("dotdot", {
            let mut l = Layer::new();
            l.file("../../../../../../../../tmp/pinkerton-escape", b"x", 0o644);
            l
        }),
        ("dotdot-inner", {
            let mut l = Layer::new();
            l.dir("a", 0o755).file("a/../../escape", b"x", 0o644);
            l
        }),
        ("symlink-parent", {
            let mut l = Layer::new();
            l.symlink("evil", &out).file("evil/planted", b"x", 0o644);
            l
        }),
        ("relative-symlink-parent", {
            let mut l = Layer::new();
            l.symlink("up", "../../../../../../../..")
                .file("up/tmp/planted", b"x", 0o644);
            l
        }),
        ("hardlink-outside", {
            let mut l = Layer::new();
            l.hardlink("passwd", "../../../../../../../etc/passwd");
            l
        }),
        ("hardlink-via-symlink", {
            let mut l = Layer::new();
            l.symlink("etc", "/etc").hardlink("shadow", "etc/shadow");
            l
        }),
        ("whiteout-via-symlink", {
            let mut l = Layer::new();
            l.symlink("victim", &out).whiteout("victim/file");
            l
        }),
        ("opaque-via-symlink", {
            let mut l = Layer::new();
            l.symlink("victim", &out).opaque("victim");
            l
        }),
    ];
    for (name, mut layer) in cases {
        let blob = layer.build(Compression::Gzip);
        pull_fails(&reg, &p, &mut layout, name, &[blob], &[], "refused");
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing was written outside"
    );
    assert!(!std::path::Path::new("/tmp/pinkerton-escape").exists());
    assert!(!std::path::Path::new("/escape").exists());
}

#[root_test]
fn absolute_entry_names_stay_inside_the_layer() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    let target = p.scratch().join("abs-target");
    let name = format!("{}/planted", target.display());
    let layer = Layer::new()
        .file(&name, b"inside\n", 0o644)
        .build(Compression::Gzip);
    layout.add_image("abs", &[layer], json!({}));
    layout.push("abs", &format!("{}/test/abs:v1", reg.addr), &[]);
    p.ok(&["pull", &format!("{}/test/abs:v1", reg.addr)]);
    assert!(
        !target.exists(),
        "the absolute path was written on the host"
    );
    let out = p.scratch().join("rootfs");
    p.ok(&[
        "rootfs",
        &format!("{}/test/abs:v1", reg.addr),
        out.to_str().unwrap(),
    ]);
    let inside = out.join(name.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"inside\n");
}

#[root_test]
fn corrupt_and_truncated_blobs_are_detected() {
    let reg = Registry::start();
    let (p, mut layout) = seeded(&reg);
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (tag, expect) in [
        ("corrupt", "failed verification"),
        ("truncated", "truncated or padded"),
    ] {
        let layer = Layer::new()
            .file("data", &content, 0o644)
            .file(tag, b"", 0o644)
            .build(Compression::Gzip);
        let hex = integration::sha256_hex(&layer.blob);
        layout.add_image(tag, std::slice::from_ref(&layer), json!({}));
        let reference = format!("{}/test/{tag}:v1", reg.addr);
        layout.push(tag, &reference, &[]);
        let stored = reg.blob_data_path(&hex);
        let mut bytes = fs::read(&stored).unwrap();
        if tag == "corrupt" {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        } else {
            bytes.truncate(bytes.len() / 2);
        }
        fs::write(&stored, bytes).unwrap();
        assert_unchanged(&p, &["pull", &reference], expect);
    }
}

#[root_test]
fn wrong_diff_ids_and_unknown_media_types_are_refused() {
    let reg = Registry::start();
    let (p, mut layout) = seeded(&reg);
    let mut layer = Layer::new()
        .file("f", b"content\n", 0o644)
        .build(Compression::Gzip);
    layer.diff_id = format!("sha256:{}", integration::sha256_hex(b"something else"));
    pull_fails(
        &reg,
        &p,
        &mut layout,
        "diffid",
        &[layer],
        &[],
        "but the image config says",
    );

    let mut weird = Layer::new()
        .file("f", b"x\n", 0o644)
        .build(Compression::Gzip);
    weird.media_type = "application/vnd.example.layer.v1.squashfs".into();
    pull_fails(
        &reg,
        &p,
        &mut layout,
        "weird",
        &[weird],
        &[],
        "unsupported layer media type",
    );
}

#[root_test]
fn decompression_bombs_stop_at_the_size_limit() {
    let reg = Registry::start();
    let (p, mut layout) = seeded(&reg);
    let zeros = vec![0u8; 64 << 20];
    let bomb = Layer::new()
        .file("zeros", &zeros, 0o644)
        .build(Compression::Gzip);
    assert!(bomb.blob.len() < 1 << 20, "the bomb is small on the wire");
    pull_fails(
        &reg,
        &p,
        &mut layout,
        "bomb",
        &[bomb],
        &["--max-layer-size", "16M"],
        "larger than the limit",
    );
}

#[root_test]
fn registry_errors_are_reported_with_the_registry_message() {
    let reg = Registry::start();
    let (p, _layout) = seeded(&reg);
    let missing = format!("{}/test/seed:nosuchtag", reg.addr);
    assert_unchanged(&p, &["pull", &missing], "MANIFEST_UNKNOWN");
    let missing = format!("{}/nosuch/repo:v1", reg.addr);
    assert_unchanged(&p, &["pull", &missing], "not found");

    // A real 500: the registry cannot parse its own tag link.
    let link = reg
        .storage()
        .join("data/docker/registry/v2/repositories/test/seed/_manifests/tags/v1/current/link");
    fs::write(&link, "garbage").unwrap();
    assert_unchanged(
        &p,
        &["pull", &format!("{}/test/seed:v1", reg.addr)],
        "500 Internal Server Error",
    );

    let port = integration::free_port();
    assert_unchanged(
        &p,
        &["pull", &format!("127.0.0.1:{port}/test/x:v1")],
        "cannot reach registry",
    );
    assert_unchanged(
        &p,
        &["pull", "Upper/Case"],
        "repository name must be lowercase",
    );
    assert_unchanged(&p, &["rm", "nosuchimage"], "no such image");
    assert_unchanged(
        &p,
        &["rootfs", "nosuchimage", "/tmp/never"],
        "no such image",
    );
}

#[root_test]
fn hostile_layer_raw_kinds_are_refused() {
    let reg = Registry::start();
    let (p, mut layout) = seeded(&reg);
    let mut l = Layer::new();
    l.raw(EntryType::Link, "self", "does/not/exist", b"", 0o644, 0, 0);
    pull_fails(
        &reg,
        &p,
        &mut layout,
        "danglinglink",
        &[l.build(Compression::Gzip)],
        &[],
        "is not in this layer",
    );
}
