//! `pinkerton push` against Debian's docker-registry, read back with skopeo and with
//! pinkerton's own pull: OCI layouts (one image, an index), `docker save` archives, blobs the
//! registry has skipped, chunked uploads, cross-repository mounts, basic and token auth, and
//! bad input that pushes nothing.

use std::fs;
use std::path::Path;
use std::process::Command;

use integration::image::{Compression, Layer, LayerBlob, OciLayout};
use integration::pinkerton::Pinkerton;
use integration::registry::{Auth, Registry};
use integration::token::TokenServer;
use integration::{root_test, run, run_ok};
use serde_json::{json, Value};

fn layers() -> Vec<LayerBlob> {
    let mut big = Vec::new();
    for i in 0..20_000u32 {
        big.extend_from_slice(format!("line {i} of a file that spans several chunks\n").as_bytes());
    }
    vec![
        Layer::new().busybox_root().build(Compression::Gzip),
        Layer::new()
            .dir("srv", 0o755)
            .file("srv/big.txt", &big, 0o644)
            .build(Compression::Gzip),
    ]
}

/// The manifest bytes and digest a layout's index names for `tag`.
fn layout_manifest(dir: &Path, tag: &str) -> (Vec<u8>, String) {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let digest = d["digest"].as_str().unwrap().to_string();
    let hex = digest.strip_prefix("sha256:").unwrap();
    (
        fs::read(dir.join("blobs/sha256").join(hex)).unwrap(),
        digest,
    )
}

fn skopeo(args: &[&str]) -> std::process::Output {
    run(Command::new("skopeo").args(args))
}

/// What the registry serves for `name`, as skopeo reads it.
fn raw_manifest(name: &str) -> Vec<u8> {
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a push that must succeed; returns (stdout, stderr).
fn push(p: &Pinkerton, args: &[&str]) -> (String, String) {
    let mut all = vec!["push"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "pinkerton {all:?} failed:\n{e}");
    (o, e)
}

#[root_test]
fn layouts_push_skip_chunk_and_mount_and_read_back() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let dir = p.scratch().join("layout");
    let mut l = OciLayout::new(&dir);
    l.add_image("web", &layers(), json!({"Cmd": ["sh"]}));
    let (manifest, digest) = layout_manifest(&dir, "web");
    let layout = dir.to_str().unwrap();

    // A first push uploads the config and both layers, then the manifest, unchanged.
    let name = format!("{}/apps/web:v1", reg.addr);
    let (out, err) = push(&p, &[layout, &name]);
    assert_eq!(out.trim(), format!("{}/apps/web@{digest}", reg.addr));
    assert_eq!(err.matches(": pushed (").count(), 3, "{err}");
    assert_eq!(
        raw_manifest(&name),
        manifest,
        "the registry serves the layout's manifest"
    );
    let copy = p.scratch().join("copy");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:web", copy.display())),
    );
    assert_eq!(
        layout_manifest(&copy, "web").1,
        digest,
        "skopeo copies what was pushed"
    );
    p.ok(&["pull", &name]);
    let rootfs = p.scratch().join("rootfs");
    p.ok(&["rootfs", &name, rootfs.to_str().unwrap()]);
    assert!(rootfs.join("srv/big.txt").is_file() && rootfs.join("bin/busybox").is_file());

    // Again: every blob is there already; the same digest.
    let (out2, err) = push(&p, &[layout, &name]);
    assert_eq!(out2, out);
    assert_eq!(err.matches(": already there (").count(), 3, "{err}");

    // Chunked uploads: the same content, in 64 KiB PATCHes.
    let chunked = format!("{}/apps/chunked:v1", reg.addr);
    let (_, err) = push(&p, &["--chunk-size", "64K", layout, &chunked]);
    assert!(
        err.contains("chunks"),
        "the big layer went in chunks: {err}"
    );
    assert_eq!(raw_manifest(&chunked), manifest);
    let q = Pinkerton::new();
    q.ok(&["pull", &chunked]);

    // Mounted from the first repository: nothing uploaded.
    let mounted = format!("{}/apps/mounted:v1", reg.addr);
    let (_, err) = push(&p, &["--mount-from", "apps/web", layout, &mounted]);
    assert_eq!(err.matches("mounted from apps/web").count(), 3, "{err}");
    assert_eq!(raw_manifest(&mounted), manifest);

    // A multi-platform index: both images by digest, then the index under the tag.
    let mut m = OciLayout::new(&p.scratch().join("multi"));
    let amd = m.manifest(&layers(), "amd64", json!({}));
    let arm = m.manifest(
        &[Layer::new()
            .file("arch", b"arm64\n", 0o644)
            .build(Compression::Gzip)],
        "arm64",
        json!({}),
    );
    m.add_index("multi", vec![amd, arm]);
    let (index, index_digest) = layout_manifest(&m.dir, "multi");
    let multi = format!("{}/apps/multi:v1", reg.addr);
    let (out, _) = push(&p, &[m.dir.to_str().unwrap(), &multi]);
    assert!(out.trim().ends_with(&index_digest), "{out}");
    assert_eq!(raw_manifest(&multi), index);
    let r = Pinkerton::new();
    r.ok(&["pull", "--platform", "linux/arm64", &multi]);
    let arm_root = r.scratch().join("arm");
    r.ok(&["rootfs", &multi, arm_root.to_str().unwrap()]);
    assert_eq!(fs::read(arm_root.join("arch")).unwrap(), b"arm64\n");

    // Pushed by digest: accepted when it is the manifest's.
    let pinned = format!("{}/apps/pinned@{digest}", reg.addr);
    push(&p, &[layout, &pinned]);
    assert_eq!(raw_manifest(&pinned), manifest);
}

#[root_test]
fn docker_save_archives_push_as_docker_would() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let dir = p.scratch().join("layout");
    let mut l = OciLayout::new(&dir);
    l.add_image("web", &layers(), json!({"Cmd": ["sh"]}));
    let archive = p.scratch().join("web.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:web", dir.display()))
            .arg(format!("docker-archive:{}:apps/web:v1", archive.display())),
    );
    let archive = archive.to_str().unwrap();

    let name = format!("{}/apps/saved:v1", reg.addr);
    let (out, _) = push(&p, &[archive, &name]);
    let raw: Value = serde_json::from_slice(&raw_manifest(&name)).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(raw["layers"].as_array().unwrap().len(), 2);
    assert!(raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"));
    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    // The image is the same image: the config (its id) is the layout's.
    p.ok(&["pull", &name]);
    let pulled: Value = serde_json::from_str(&p.ok(&["inspect", &name])).unwrap();
    let config: Value = serde_json::from_slice(
        &fs::read(dir.join("blobs/sha256").join(layout_config_hex(&dir))).unwrap(),
    )
    .unwrap();
    assert_eq!(pulled["image"]["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        pulled["image"]["layers"], config["rootfs"]["diff_ids"],
        "the layers pulled are the archive's"
    );
    // Gzipped the same way each time: another push gives the same digest.
    let again = format!("{}/apps/saved-again:v1", reg.addr);
    let (out2, err) = push(&p, &[archive, &again]);
    assert_eq!(
        out.trim().rsplit_once('@').unwrap().1,
        out2.trim().rsplit_once('@').unwrap().1
    );
    assert_eq!(err.matches(": pushed (").count(), 3, "{err}");
    // And to the same repository: nothing new to upload.
    let (_, err) = push(&p, &[archive, &again]);
    assert_eq!(err.matches(": already there (").count(), 3, "{err}");
}

fn layout_config_hex(dir: &Path) -> String {
    let (m, _) = layout_manifest(dir, "web");
    let m: Value = serde_json::from_slice(&m).unwrap();
    m["config"]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string()
}

#[root_test]
fn bad_pushes_say_why_and_push_nothing() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let dir = p.scratch().join("layout");
    let mut l = OciLayout::new(&dir);
    l.add_image("a", &layers(), json!({}));
    l.add_image(
        "b",
        &[Layer::new().file("b", b"b", 0o644).build(Compression::Gzip)],
        json!({}),
    );
    let layout = dir.to_str().unwrap();
    let gone = |name: &str| {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ]);
        !out.status.success()
    };

    let name = format!("{}/bad/two:v1", reg.addr);
    let err = p.fails(&["push", layout, &name]);
    assert!(
        err.contains("holds 2 images") && err.contains("--ref"),
        "{err}"
    );
    let err = p.fails(&["push", "--ref", "c", layout, &name]);
    assert!(err.contains("no image named \"c\""), "{err}");
    assert!(gone(&name));

    let wrong = format!("{}/bad/pinned@sha256:{}", reg.addr, "0".repeat(64));
    let err = p.fails(&["push", "--ref", "a", layout, &wrong]);
    assert!(err.contains("names digest"), "{err}");

    // A layer whose bytes changed: refused before the manifest, so no tag appears.
    let (m, _) = layout_manifest(&dir, "a");
    let m: Value = serde_json::from_slice(&m).unwrap();
    let layer = m["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let path = dir.join("blobs/sha256").join(&layer);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let corrupt = format!("{}/bad/corrupt:v1", reg.addr);
    for chunk in ["32M", "4K"] {
        let err = p.fails(&[
            "push",
            "--ref",
            "a",
            "--chunk-size",
            chunk,
            layout,
            &corrupt,
        ]);
        assert!(err.contains("does not match its digest"), "{err}");
        assert!(gone(&corrupt), "no manifest after a refused blob");
    }

    let empty = p.scratch().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = p.fails(&["push", empty.to_str().unwrap(), &name]);
    assert!(err.contains("neither a docker save archive"), "{err}");
    let junk = p.scratch().join("junk.tar");
    fs::write(
        &junk,
        b"not a tar at all, just some bytes that are long enough to be read",
    )
    .unwrap();
    let err = p.fails(&["push", junk.to_str().unwrap(), &name]);
    assert!(err.contains("junk.tar"), "{err}");
}

#[root_test]
fn pushes_authenticate_with_basic_and_token_auth() {
    let p = Pinkerton::new();
    let dir = p.scratch().join("layout");
    let mut l = OciLayout::new(&dir);
    l.add_image("web", &layers(), json!({}));
    let layout = dir.to_str().unwrap();

    let reg = Registry::start_with(Auth::Htpasswd {
        user: "alice".into(),
        password: "wonder".into(),
    });
    let name = format!("{}/private/web:v1", reg.addr);
    let err = p.fails(&["push", layout, &name]);
    assert!(
        err.contains("denied access") && err.contains("--creds"),
        "{err}"
    );
    let err = p.fails(&["push", "--creds", "alice:wrong", layout, &name]);
    assert!(err.contains("credentials were refused"), "{err}");
    push(&p, &["--creds", "alice:wonder", layout, &name]);
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wonder",
        &format!("docker://{name}"),
    ]);
    assert!(out.status.success());

    let tokens = TokenServer::start("bob", "builder");
    let reg = Registry::start_with(Auth::Token {
        realm: tokens.realm.clone(),
        service: tokens.service.clone(),
        issuer: tokens.issuer.clone(),
        cert_pem: tokens.cert.clone(),
    });
    let name = format!("{}/team/web:v1", reg.addr);
    let err = p.fails(&["push", layout, &name]);
    assert!(err.contains("token server refused"), "{err}");
    push(&p, &["--creds", "bob:builder", layout, &name]);
    // A mount reads a second repository: the token asked for covers both.
    let other = format!("{}/team/other:v1", reg.addr);
    let (_, err) = push(
        &p,
        &[
            "--creds",
            "bob:builder",
            "--mount-from",
            "team/web",
            layout,
            &other,
        ],
    );
    assert_eq!(err.matches("mounted from team/web").count(), 3, "{err}");
    let q = Pinkerton::new();
    q.ok(&["pull", "--creds", "bob:builder", &other]);
}

#[root_test]
fn append_puts_a_layer_on_a_base_without_downloading_it() {
    let reg = Registry::start();
    let p = Pinkerton::new();
    let dir = p.scratch().join("layout");
    let mut l = OciLayout::new(&dir);
    l.add_image(
        "base",
        &layers(),
        json!({"Env": ["PATH=/bin", "PORT=1"], "Cmd": ["sh"]}),
    );
    let base = format!("{}/flynn/stack:v1", reg.addr);
    push(&p, &[dir.to_str().unwrap(), &base]);
    let gets = reg.blob_gets();

    // The layer: /app with a file, as a build leaves it.
    let app = p.scratch().join("app");
    fs::create_dir_all(app.join("app")).unwrap();
    fs::write(app.join("app/hello.txt"), "hello from the slug\n").unwrap();
    let tar = p.scratch().join("slug.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&app)
            .arg("-cf")
            .arg(&tar)
            .arg("app"),
    );

    let target = format!("{}/apps/web:v3", reg.addr);
    let out = p.run(&[
        "append",
        "--base",
        &base,
        "--layer",
        tar.to_str().unwrap(),
        "--env",
        "PORT=5000",
        "--cmd",
        r#"["start","web"]"#,
        "--label",
        "git.commit=abc123",
        &target,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("mounted from flynn/stack").count(), 2, "{err}");
    assert_eq!(
        err.matches(": pushed (").count(),
        2,
        "the layer and the config: {err}"
    );
    assert_eq!(
        reg.blob_gets(),
        gets + 1,
        "only the base's config was read: {}",
        reg.log()
    );

    let raw: Value = serde_json::from_slice(&raw_manifest(&target)).unwrap();
    assert_eq!(raw["layers"].as_array().unwrap().len(), 3);
    let inspect = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Labels"]["git.commit"], "abc123");
    assert_eq!(inspect["Env"], json!(["PATH=/bin", "PORT=5000"]));
    p.ok(&["pull", &target]);
    let rootfs = p.scratch().join("rootfs");
    p.ok(&["rootfs", &target, rootfs.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(rootfs.join("app/hello.txt")).unwrap(),
        "hello from the slug\n"
    );
    assert!(rootfs.join("bin/busybox").is_file(), "the base is under it");

    // A base elsewhere, or missing, pushes nothing.
    let err = p.fails(&[
        "append",
        "--base",
        "127.0.0.1:1/x/y:z",
        "--layer",
        tar.to_str().unwrap(),
        &target,
    ]);
    assert!(err.contains("another registry"), "{err}");
    let missing = format!("{}/apps/missing:v1", reg.addr);
    let err = p.fails(&[
        "append",
        "--base",
        &format!("{}/flynn/none:v1", reg.addr),
        "--layer",
        tar.to_str().unwrap(),
        &missing,
    ]);
    assert!(err.contains("not found"), "{err}");
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{missing}"),
    ]);
    assert!(!out.status.success());
}
