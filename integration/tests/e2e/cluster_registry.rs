//! The cluster registry as a job: `images/recipes/registry.toml` (Debian's docker-registry
//! behind flynn-registry) run by flynn-host with its storage on a volume; pinkerton pushes to
//! it with the platform credential, the host pulls from it with the same credential through
//! `--registry-auth`, and what was pushed outlives the job.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use integration::host::HostDaemon;
use integration::image::{Compression, Layer, OciLayout};
use integration::pinkerton::Pinkerton;
use integration::{root_test, run_ok, workspace_bin};
use serde_json::json;

const PORT: u16 = 15000;

fn wait_for_registry(addr: &str) {
    let url = format!("http://{addr}/v2/");
    let deadline = Instant::now() + Duration::from_secs(30);
    while integration::http_status(&[], &[&url]) != "401" {
        assert!(
            Instant::now() < deadline,
            "the registry job did not answer at {url}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[root_test(isolated)]
fn the_registry_runs_as_a_job_with_the_platform_credential() {
    let key = integration::random_key();
    let addr = format!("100.100.0.1:{PORT}");
    let auth_dir = tempfile::tempdir().unwrap();
    let auth_file = auth_dir.path().join("registry-auth.json");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("flynn:{key}"));
    std::fs::write(
        &auth_file,
        json!({"auths": {&addr: {"auth": basic}}}).to_string(),
    )
    .unwrap();
    let h = HostDaemon::start_with(&[
        "--insecure-registry",
        &addr,
        "--registry-auth",
        auth_file.to_str().unwrap(),
    ]);

    let bin_dir = workspace_bin("flynn-registry")
        .parent()
        .unwrap()
        .to_path_buf();
    let out = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(workspace_bin("flynn-images"))
            .args(["build", "registry", "--bin-dir"])
            .arg(&bin_dir)
            .arg("--out")
            .arg(out.path().join("registry"))
            .args(["--tag", "flynn/registry:test", "--store"])
            .arg(h.state().join("pinkerton")),
    );
    h.ok(&["volume", "create", "registry-data"]);
    let start = |name: &str| {
        h.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "-e",
            &format!("AUTH_KEY={key}"),
            "-p",
            &format!("{PORT}:5000"),
            "-v",
            "registry-data:/data",
            "flynn/registry:test",
        ]);
    };
    start("registry");
    wait_for_registry(&addr);

    let p = Pinkerton::new();
    let mut l = OciLayout::new(&p.scratch().join("layout"));
    l.add_image(
        "hello",
        &[Layer::new()
            .busybox_root()
            .file("hello", b"hello from the cluster registry\n", 0o644)
            .build(Compression::Gzip)],
        json!({"Cmd": ["cat", "/hello"]}),
    );
    let layout = l.dir.to_str().unwrap().to_string();
    let name = format!("{addr}/apps/hello:v1");
    let push = |creds: Option<&str>| {
        let mut args = vec!["push", "--insecure-registry", &addr, &layout, &name];
        let c;
        if let Some(creds) = creds {
            c = creds.to_string();
            args.extend(["--creds", &c]);
        }
        p.run(&args)
    };
    let err = String::from_utf8_lossy(&push(None).stderr).into_owned();
    assert!(
        err.contains("denied access"),
        "a push needs the credential: {err}"
    );
    let wrong = format!("flynn:{}", integration::random_key());
    let err = String::from_utf8_lossy(&push(Some(&wrong)).stderr).into_owned();
    assert!(err.contains("credentials were refused"), "{err}");
    let ok = push(Some(&format!("flynn:{key}")));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let pinned = String::from_utf8_lossy(&ok.stdout).trim().to_string();

    // The host pulls with the credential of --registry-auth and runs it.
    h.ok(&["pull", &name]);
    assert_eq!(
        h.ok(&["run", "--rm", &name]),
        "hello from the cluster registry\n"
    );

    // The images live on the volume: a new registry job serves them.
    h.ok(&["rm", "-f", "registry"]);
    let repo = h
        .state()
        .join("runtime/volumes/registry-data/data/docker/registry/v2/repositories/apps/hello");
    assert!(repo.is_dir(), "{} is missing", repo.display());
    start("registry-2");
    wait_for_registry(&addr);
    let q = Pinkerton::new();
    q.ok(&[
        "pull",
        "--insecure-registry",
        &addr,
        "--creds",
        &format!("flynn:{key}"),
        &pinned,
    ]);
    h.ok(&["rm", "-f", "registry-2"]);
}
