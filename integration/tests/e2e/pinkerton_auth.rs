//! Registry authentication: basic auth (htpasswd) and the bearer-token flow, with credentials
//! from flags or from the Docker config file.

use std::fs;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use integration::image::{Compression, Layer, OciLayout};
use integration::pinkerton::Pinkerton;
use integration::registry::{Auth, Registry};
use integration::token::TokenServer;
use integration::{root_test, run_ok};
use serde_json::json;

fn push_with_creds(layout: &OciLayout, dest: &str, creds: &str) {
    run_ok(
        std::process::Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
            ])
            .arg(format!("oci:{}:img", layout.dir.display()))
            .arg(format!("docker://{dest}")),
    );
}

fn layout(p: &Pinkerton) -> OciLayout {
    let mut l = OciLayout::new(&p.scratch().join("layout"));
    l.add_image(
        "img",
        &[Layer::new().busybox_root().build(Compression::Gzip)],
        json!({}),
    );
    l
}

fn write_docker_config(p: &Pinkerton, registry: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let cfg = json!({"auths": {registry: {"auth": auth}}});
    fs::write(p.docker_config_dir().join("config.json"), cfg.to_string()).unwrap();
}

#[root_test]
fn basic_auth_with_flags_and_docker_config() {
    let reg = Registry::start_with(Auth::Htpasswd {
        user: "alice".into(),
        password: "wonder".into(),
    });
    let p = Pinkerton::new();
    let name = format!("{}/private/app:v1", reg.addr);
    push_with_creds(&layout(&p), &name, "alice:wonder");

    let err = p.fails(&["pull", &name]);
    assert!(
        err.contains("denied access") && err.contains("--creds"),
        "{err}"
    );
    let err = p.fails(&["pull", "--creds", "alice:wrong", &name]);
    assert!(err.contains("credentials were refused"), "{err}");
    assert_eq!(
        p.ok(&["images"]).lines().count(),
        1,
        "no image after refused pulls"
    );

    p.ok(&["pull", "--creds", "alice:wonder", &name]);
    let p2 = Pinkerton::new();
    write_docker_config(&p2, &reg.addr, "alice", "wonder");
    p2.ok(&["pull", &name]);
}

#[root_test]
fn bearer_token_flow() {
    let tokens = TokenServer::start("bob", "builder");
    let reg = Registry::start_with(Auth::Token {
        realm: tokens.realm.clone(),
        service: tokens.service.clone(),
        issuer: tokens.issuer.clone(),
        cert_pem: tokens.cert.clone(),
    });
    let p = Pinkerton::new();
    let name = format!("{}/team/app:v1", reg.addr);
    push_with_creds(&layout(&p), &name, "bob:builder");
    let before = tokens.issued.load(Ordering::Relaxed);

    let err = p.fails(&["pull", &name]);
    assert!(err.contains("token server refused"), "{err}");
    p.ok(&["pull", "--creds", "bob:builder", &name]);
    assert!(
        tokens.issued.load(Ordering::Relaxed) > before,
        "pinkerton used a token"
    );
    let out = p.scratch().join("rootfs");
    p.ok(&["rootfs", &name, out.to_str().unwrap()]);
    assert!(out.join("bin/busybox").is_file());

    let p2 = Pinkerton::new();
    write_docker_config(&p2, &reg.addr, "bob", "builder");
    p2.ok(&["pull", &name]);
}
