//! Pulls from a real registry: the result must equal umoci's unpack of the same image, shared
//! layers are stored once, repeated and concurrent pulls are cheap and safe.

use std::fs;
use std::process::Command;

use integration::image::{Compression, Layer, LayerBlob, OciLayout};
use integration::pinkerton::Pinkerton;
use integration::registry::Registry;
use integration::{root_test, run_ok, tree};
use serde_json::json;

/// Three layers covering every kind of entry and every way of deleting one.
fn rich_layers(c: Compression) -> Vec<LayerBlob> {
    let base = Layer::new()
        .busybox_root()
        .dir("data", 0o755)
        .file("data/a", b"first a\n", 0o644)
        .file("data/b", b"b\n", 0o644)
        .dir("opq", 0o755)
        .file("opq/x", b"x\n", 0o644)
        .dir("opq/sub", 0o755)
        .file("opq/sub/y", b"y\n", 0o644)
        .file("del", b"to be deleted\n", 0o644)
        .dir("gone", 0o755)
        .file("gone/inner", b"whole dir goes\n", 0o644)
        .build(c);
    let second = Layer::new()
        .whiteout("del")
        .whiteout("gone")
        .dir("opq", 0o750)
        .opaque("opq")
        .file("opq/z", b"only z survives\n", 0o600)
        .dir("data", 0o755)
        .file("data/a", b"second a\n", 0o644)
        .whiteout("data/b")
        .dir("hl", 0o755)
        .file("hl/one", b"linked\n", 0o644)
        .hardlink("hl/two", "hl/one")
        .hardlink("hl/three", "hl/one")
        .symlink("abs", "/etc/passwd")
        .symlink("rel", "../etc/group")
        .fifo("pipe")
        .dir("dev", 0o755)
        .char_device("dev/null", 1, 3)
        .file_with_xattrs("xattrs", b"x\n", &[("user.flynn.test", b"value")])
        .file("suid", b"#!/bin/sh\n", 0o4755)
        .dir("home", 0o755)
        .raw(
            tar::EntryType::Directory,
            "home/user/",
            "",
            b"",
            0o700,
            1000,
            1000,
        )
        .file_owned("home/user/secret", b"s\n", 0o640, 1000, 1000)
        .build(c);
    let third = Layer::new()
        .whiteout("hl/one")
        .dir("gone", 0o700)
        .file("gone/new", b"recreated\n", 0o644)
        .build(c);
    vec![base, second, third]
}

fn config() -> serde_json::Value {
    json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/data", "ExposedPorts": {"80/tcp": {}}})
}

#[root_test]
fn pulled_rootfs_equals_umoci_unpack() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    layout.add_image("rich", &rich_layers(Compression::Gzip), config());
    layout.push("rich", &format!("{}/test/rich:oci", reg.addr), &[]);
    layout.push(
        "rich",
        &format!("{}/test/rich:docker", reg.addr),
        &["--format", "v2s2"],
    );

    let bundle = p.scratch().join("umoci");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:rich", layout.dir.display()))
            .arg(&bundle),
    );
    let expected = tree::snapshot(&bundle.join("rootfs"));
    assert!(expected.contains_key("opq/z") && !expected.contains_key("opq/x"));
    assert_eq!(
        expected["xattrs"].xattrs,
        [("user.flynn.test".to_string(), b"value".to_vec())]
    );
    assert_eq!(
        (expected["dev/null"].kind, expected["dev/null"].rdev),
        ("char", libc::makedev(1, 3))
    );

    for tag in ["oci", "docker"] {
        let name = format!("{}/test/rich:{tag}", reg.addr);
        p.ok(&["pull", &name]);
        let out = p.scratch().join(format!("rootfs-{tag}"));
        p.ok(&["rootfs", &name, out.to_str().unwrap()]);
        let got = tree::snapshot(&out);
        let d = tree::diff(&expected, &got);
        assert!(
            d.is_empty(),
            "{tag}: pinkerton differs from umoci:\n{}",
            d.join("\n")
        );
    }
    // The docker-format copy has other blob digests but the same diff_ids: layers are shared.
    assert_eq!(
        fs::read_dir(p.store().join("layers/sha256"))
            .unwrap()
            .count(),
        3
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&p.ok(&["inspect", &format!("{}/test/rich:oci", reg.addr)])).unwrap();
    assert_eq!(inspect["defaults"]["cmd"], json!(["/bin/sh"]));
    assert_eq!(inspect["defaults"]["working_dir"], json!("/data"));
    assert_eq!(inspect["defaults"]["exposed_ports"], json!(["80/tcp"]));
}

#[root_test]
fn zstd_and_plain_layers_unpack_the_same() {
    let reg = Registry::start();
    let mut trees = Vec::new();
    for (tag, c) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("plain", Compression::None),
    ] {
        let p = Pinkerton::new();
        let mut layout = OciLayout::new(&p.scratch().join("layout"));
        layout.add_image(tag, &rich_layers(c), config());
        layout.push(tag, &format!("{}/test/comp:{tag}", reg.addr), &[]);
        p.ok(&["pull", &format!("{}/test/comp:{tag}", reg.addr)]);
        let out = p.scratch().join("rootfs");
        p.ok(&[
            "rootfs",
            &format!("{}/test/comp:{tag}", reg.addr),
            out.to_str().unwrap(),
        ]);
        trees.push(tree::snapshot(&out));
    }
    assert!(tree::diff(&trees[0], &trees[1]).is_empty());
    assert!(tree::diff(&trees[0], &trees[2]).is_empty());
}

#[root_test]
fn layers_are_overlay_lower_dirs() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    let layers = rich_layers(Compression::Gzip);
    layout.add_image("rich", &layers, config());
    layout.push("rich", &format!("{}/test/rich:v1", reg.addr), &[]);
    p.ok(&["pull", &format!("{}/test/rich:v1", reg.addr)]);
    let second = p
        .store()
        .join("layers/sha256")
        .join(layers[1].diff_id.trim_start_matches("sha256:"))
        .join("fs");
    let wh = fs::symlink_metadata(second.join("del")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert_eq!(
        xattr::get(second.join("opq"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::metadata(second.join("hl/one")).unwrap().nlink(), 3);
}

#[root_test]
fn second_pull_fetches_only_the_manifest_and_shared_layers_are_stored_once() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    let base = Layer::new().busybox_root().build(Compression::Gzip);
    let app1 = Layer::new()
        .file("app", b"one\n", 0o755)
        .build(Compression::Gzip);
    let app2 = Layer::new()
        .file("app", b"two\n", 0o755)
        .build(Compression::Gzip);
    layout.add_image("one", &[base.clone(), app1], config());
    layout.add_image("two", &[base, app2], config());
    layout.push("one", &format!("{}/test/app:one", reg.addr), &[]);
    layout.push("two", &format!("{}/test/app:two", reg.addr), &[]);

    p.ok(&["pull", &format!("{}/test/app:one", reg.addr)]);
    assert_eq!(reg.blob_gets(), 3, "config + 2 layers");
    p.ok(&["pull", &format!("{}/test/app:one", reg.addr)]);
    assert_eq!(reg.blob_gets(), 3, "a repeated pull fetches no blob");
    p.ok(&["pull", &format!("{}/test/app:two", reg.addr)]);
    assert_eq!(
        reg.blob_gets(),
        5,
        "the shared base layer is not fetched again"
    );
    assert_eq!(
        fs::read_dir(p.store().join("layers/sha256"))
            .unwrap()
            .count(),
        3
    );

    // Removing one image keeps the shared layer; removing both empties the store.
    let out = p.ok(&["rm", &format!("{}/test/app:one", reg.addr)]);
    assert!(out.contains("Deleted: 1 layers"), "{out}");
    p.ok(&["rm", &format!("{}/test/app:two", reg.addr)]);
    assert_eq!(
        fs::read_dir(p.store().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(p.store().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

/// Runs `n` pulls of `name` at once; all must succeed.
fn pull_concurrently(p: &Pinkerton, name: &str, n: usize) {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let mut cmd = p.cmd();
            cmd.args(["pull", name]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for t in threads {
        let out = t.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[root_test]
fn concurrent_pulls_of_one_image_are_safe() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    layout.add_image("rich", &rich_layers(Compression::Gzip), config());
    layout.push("rich", &format!("{}/test/rich:v1", reg.addr), &[]);
    let name = format!("{}/test/rich:v1", reg.addr);
    // Into an empty store, then into one that has the image already.
    pull_concurrently(&p, &name, 4);
    pull_concurrently(&p, &name, 4);
    let p2 = Pinkerton::new();
    pull_concurrently(&p2, &name, 3);
    assert_eq!(
        fs::read_dir(p2.store().join("layers/sha256"))
            .unwrap()
            .count(),
        3
    );
    assert_eq!(fs::read_dir(p2.store().join("tmp")).unwrap().count(), 0);
    assert_eq!(p2.ok(&["images"]).lines().count(), 2);
}

#[root_test]
fn a_killed_pull_leaves_the_store_consistent() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    // Incompressible content so the pull takes long enough to be interrupted.
    let mut big = Layer::new();
    let mut seed = 0x2545F4914F6CDD1Du64;
    for i in 0..8 {
        let data: Vec<u8> = (0..4 << 20)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        big.file(&format!("blob{i}"), &data, 0o644);
    }
    let layers = vec![
        Layer::new().busybox_root().build(Compression::Gzip),
        big.build(Compression::Gzip),
    ];
    layout.add_image("big", &layers, config());
    let name = format!("{}/test/big:v1", reg.addr);
    layout.push("big", &name, &[]);
    for delay_ms in [30u64, 120, 400] {
        let mut child = p
            .cmd()
            .args(["pull", &name])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever is visible is complete: every layer dir has its metadata, no image is half-recorded.
        for e in fs::read_dir(p.store().join("layers/sha256")).unwrap() {
            assert!(
                e.unwrap().path().join("layer.json").is_file(),
                "partial layer visible"
            );
        }
        let images = p.ok(&["images", "--json"]);
        let images: serde_json::Value = serde_json::from_str(&images).unwrap();
        for img in images.as_array().unwrap() {
            for l in img["layers"].as_array().unwrap() {
                let hex = l.as_str().unwrap().trim_start_matches("sha256:");
                assert!(p
                    .store()
                    .join("layers/sha256")
                    .join(hex)
                    .join("layer.json")
                    .is_file());
            }
        }
    }
    p.ok(&["pull", &name]);
    assert_eq!(
        fs::read_dir(p.store().join("tmp")).unwrap().count(),
        0,
        "leftovers of killed pulls are swept"
    );
    let out = p.scratch().join("rootfs");
    p.ok(&["rootfs", &name, out.to_str().unwrap()]);
    assert_eq!(fs::metadata(out.join("blob7")).unwrap().len(), 4 << 20);
}

#[root_test]
fn index_picks_the_host_platform_or_the_one_asked_for() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let mut layout = OciLayout::new(&p.scratch().join("layout"));
    let base = Layer::new().busybox_root().build(Compression::Gzip);
    let amd = Layer::new()
        .file("arch", b"amd64\n", 0o644)
        .build(Compression::Gzip);
    let arm = Layer::new()
        .file("arch", b"arm64\n", 0o644)
        .build(Compression::Gzip);
    let m_amd = layout.manifest(&[base.clone(), amd], "amd64", config());
    let m_arm = layout.manifest(&[base.clone(), arm.clone()], "arm64", config());
    layout.add_index("multi", vec![m_arm.clone(), m_amd]);
    layout.push("multi", &format!("{}/test/multi:v1", reg.addr), &["--all"]);
    layout.add_index("armonly", vec![m_arm]);
    layout.push(
        "armonly",
        &format!("{}/test/armonly:v1", reg.addr),
        &["--all"],
    );

    let name = format!("{}/test/multi:v1", reg.addr);
    p.ok(&["pull", &name]);
    let out = p.scratch().join("amd");
    p.ok(&["rootfs", &name, out.to_str().unwrap()]);
    assert_eq!(fs::read(out.join("arch")).unwrap(), b"amd64\n");

    let arm_store = Pinkerton::new();
    arm_store.ok(&["pull", "--platform", "linux/arm64", &name]);
    let out = arm_store.scratch().join("arm");
    arm_store.ok(&["rootfs", &name, out.to_str().unwrap()]);
    assert_eq!(fs::read(out.join("arch")).unwrap(), b"arm64\n");

    let before = tree::store_state(&p.store());
    let err = p.fails(&["pull", &format!("{}/test/armonly:v1", reg.addr)]);
    assert!(
        err.contains("no manifest for platform linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    assert!(tree::diff(&before, &tree::store_state(&p.store())).is_empty());
}
