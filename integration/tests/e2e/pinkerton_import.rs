//! `pinkerton import` of archives written by skopeo (docker-archive, as `docker save` makes,
//! and oci-archive) and of OCI layout directories: the result equals a registry pull.

use std::process::Command;

use integration::image::{Compression, Layer, OciLayout};
use integration::pinkerton::Pinkerton;
use integration::registry::Registry;
use integration::{root_test, run_ok, tree};
use serde_json::json;

fn image(p: &Pinkerton) -> OciLayout {
    let mut l = OciLayout::new(&p.scratch().join("layout"));
    let base = Layer::new().busybox_root().build(Compression::Gzip);
    let app = Layer::new()
        .dir("app", 0o755)
        .file("app/run", b"#!/bin/sh\necho hi\n", 0o755)
        .whiteout("etc/group")
        .build(Compression::Gzip);
    l.add_image("v1", &[base, app], json!({"Entrypoint": ["/app/run"]}));
    l
}

fn rootfs(p: &Pinkerton, name: &str, dir: &str) -> std::collections::BTreeMap<String, tree::Node> {
    let out = p.scratch().join(dir);
    p.ok(&["rootfs", name, out.to_str().unwrap()]);
    tree::snapshot(&out)
}

#[root_test]
fn imports_equal_a_registry_pull() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let layout = image(&p);
    let pulled_name = format!("{}/test/imp:v1", reg.addr);
    layout.push("v1", &pulled_name, &[]);
    let reference = Pinkerton::new();
    reference.ok(&["pull", &pulled_name]);
    let expected = rootfs(&reference, &pulled_name, "expected");

    // docker save format (what `docker save` writes), made by skopeo.
    let docker_tar = p.scratch().join("saved.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:v1", layout.dir.display()))
            .arg(format!(
                "docker-archive:{}:example.com/team/app:v1",
                docker_tar.display()
            )),
    );
    let out = p.ok(&["import", docker_tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "example.com/team/app:v1");
    let d = tree::diff(&expected, &rootfs(&p, "example.com/team/app:v1", "docker"));
    assert!(
        d.is_empty(),
        "docker-archive import differs:\n{}",
        d.join("\n")
    );

    // OCI layout directory, named by --tag.
    let out = p.ok(&[
        "import",
        "--tag",
        "localhost/layout:v1",
        layout.dir.to_str().unwrap(),
    ]);
    assert_eq!(out.trim(), "localhost/layout:v1");
    assert!(tree::diff(&expected, &rootfs(&p, "localhost/layout:v1", "from-layout")).is_empty());

    // oci-archive tar; its bare tag is qualified with the file name.
    let oci_tar = p.scratch().join("webapp.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:v1", layout.dir.display()))
            .arg(format!("oci-archive:{}:v2", oci_tar.display())),
    );
    let out = p.ok(&["import", oci_tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "localhost/webapp:v2");
    assert!(tree::diff(&expected, &rootfs(&p, "localhost/webapp:v2", "ocitar")).is_empty());

    // All four names share the same two layers.
    assert_eq!(
        std::fs::read_dir(p.store().join("layers/sha256"))
            .unwrap()
            .count(),
        2
    );
    let images: serde_json::Value = serde_json::from_str(&p.ok(&["images", "--json"])).unwrap();
    let ids: std::collections::BTreeSet<_> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "same config, same image id: {ids:?}");
}

#[root_test]
fn bad_archives_are_refused_and_change_nothing() {
    let p = Pinkerton::new();
    let layout = image(&p);
    p.ok(&[
        "import",
        "--tag",
        "localhost/ok:v1",
        layout.dir.to_str().unwrap(),
    ]);
    let before = tree::store_state(&p.store());

    let junk = p.scratch().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
    let err = p.fails(&["import", junk.to_str().unwrap()]);
    assert!(err.contains("is not a tar archive"), "{err}");

    // A layout whose layer blob was tampered with.
    let bad = p.scratch().join("bad-layout");
    run_ok(Command::new("cp").arg("-a").arg(&layout.dir).arg(&bad));
    let blobs: Vec<_> = std::fs::read_dir(bad.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let biggest = blobs
        .iter()
        .max_by_key(|b| std::fs::metadata(b).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(biggest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(biggest, bytes).unwrap();
    let fresh = Pinkerton::new();
    let err = fresh.fails(&["import", "--tag", "localhost/bad:v1", bad.to_str().unwrap()]);
    assert!(
        err.contains("failed verification") || err.contains("does not match"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(fresh.store().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );

    // A store that already has those layers does not read them again; a broken index still fails.
    std::fs::write(
        bad.join("index.json"),
        b"{\"schemaVersion\": 2, \"manifests\": [",
    )
    .unwrap();
    let err = p.fails(&["import", "--tag", "localhost/bad:v1", bad.to_str().unwrap()]);
    assert!(err.contains("malformed"), "{err}");
    assert!(tree::diff(&before, &tree::store_state(&p.store())).is_empty());
}

#[root_test]
fn layouts_with_several_tagged_images() {
    let p = Pinkerton::new();
    let dir = p.scratch().join("many");
    let mut l = OciLayout::new(&dir);
    let one = Layer::new()
        .file("one", b"1\n", 0o644)
        .build(Compression::Gzip);
    let two = Layer::new()
        .file("two", b"2\n", 0o644)
        .build(Compression::Gzip);
    l.add_image("one", std::slice::from_ref(&one), json!({}));
    l.add_image("two", std::slice::from_ref(&two), json!({}));
    // An index whose manifests carry no platform, as some tools write them: the platform is
    // read from each image's config.
    let mut bare_amd64 = l.manifest(std::slice::from_ref(&one), "amd64", json!({}));
    let mut bare_arm64 = l.manifest(std::slice::from_ref(&two), "arm64", json!({}));
    bare_amd64.as_object_mut().unwrap().remove("platform");
    bare_arm64.as_object_mut().unwrap().remove("platform");
    l.add_index("bare", vec![bare_arm64, bare_amd64]);
    let path = dir.to_str().unwrap();

    // --tag on several images would give them one name: refused, nothing imported.
    let err = p.fails(&["import", "--tag", "example.com/x:v1", path]);
    assert!(err.contains("3 images") && err.contains("--ref"), "{err}");
    assert!(!p.ok(&["images"]).contains("example.com"));
    // One chosen by name, then renamed with --tag.
    let out = p.ok(&["import", "--ref", "two", "--tag", "example.com/x:v1", path]);
    assert_eq!(out.trim(), "example.com/x:v1");
    let err = p.fails(&["import", "--ref", "three", path]);
    assert!(
        err.contains("no image named \"three\"") && err.contains("one, two, bare"),
        "{err}"
    );
    // Every image under its own name.
    let out = p.ok(&["import", "--platform", "linux/amd64", path]);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(
        names,
        [
            "localhost/many:one",
            "localhost/many:two",
            "localhost/many:bare"
        ]
    );
    let bare = rootfs(&p, "localhost/many:bare", "bare");
    assert!(
        bare.contains_key("one") && !bare.contains_key("two"),
        "{bare:?}"
    );
}
