//! Checks of what a release asks for, before anything is stored.

use std::collections::BTreeMap;

use controller_api::ProcessType;

use crate::error::ControllerError;

fn invalid(msg: String) -> ControllerError {
    ControllerError::Invalid(msg)
}

/// An environment: names non-empty, without `=` or NUL; values without NUL.
pub fn env(env: &BTreeMap<String, String>, whose: &str) -> Result<(), ControllerError> {
    for (k, v) in env {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(invalid(format!(
                "{whose} env name {k:?}: use a non-empty name without '=' or NUL"
            )));
        }
        if v.contains('\0') {
            return Err(invalid(format!("{whose} env {k}: the value contains NUL")));
        }
    }
    Ok(())
}

fn absolute(path: &str, what: &str) -> Result<(), ControllerError> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") || path.contains('\0') {
        return Err(invalid(format!(
            "{what} {path:?}: use an absolute path without '..'"
        )));
    }
    Ok(())
}

/// A process type: its env, ports, volumes and mounts; `system` says whether the app may
/// reach the host.
pub fn process(name: &str, p: &ProcessType, system: bool) -> Result<(), ControllerError> {
    if p.args.iter().any(|a| a.contains('\0')) {
        return Err(invalid(format!(
            "process type {name}: an argument contains NUL"
        )));
    }
    env(&p.env, &format!("process type {name}"))?;
    if p.ports.len() > 64 {
        return Err(invalid(format!(
            "process type {name}: {} ports, at most 64",
            p.ports.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for port in &p.ports {
        if port.port != 0 && !seen.insert((port.port, port.proto)) {
            return Err(invalid(format!(
                "process type {name}: port {}/{} is listed twice",
                port.port,
                port.proto.as_str()
            )));
        }
        if let Some(check) = port.service.as_ref().and_then(|s| s.check.as_ref()) {
            if let Some(path) = &check.path {
                let printable = path.bytes().all(|b| b.is_ascii_graphic());
                if !path.starts_with('/') || !printable || path.len() > 1024 {
                    return Err(invalid(format!(
                        "process type {name}: health check path {path:?} must start with '/' and be printable ASCII without spaces"
                    )));
                }
            }
            if let Some(status) = check.status {
                if !(100..=599).contains(&status) {
                    return Err(invalid(format!(
                        "process type {name}: health check status {status}: use 100 to 599"
                    )));
                }
            }
        }
    }
    for v in &p.volumes {
        absolute(&v.path, &format!("process type {name}: volume path"))?;
    }
    for m in &p.mounts {
        absolute(&m.location, &format!("process type {name}: mount location"))?;
        absolute(&m.target, &format!("process type {name}: mount target"))?;
    }
    if let (Some(what), false) = (p.reaches_host(), system) {
        return Err(ControllerError::HostAccess {
            process: name.to_string(),
            what,
        });
    }
    // Jobs get the default capability set; the host can add CAP_NET_RAW and nothing else, so
    // asking for another is refused rather than silently left out.
    for c in &p.linux_capabilities {
        if !c.eq_ignore_ascii_case("CAP_NET_RAW") {
            return Err(invalid(format!(
                "process type {name}: linux_capabilities {c:?}: hosts can grant CAP_NET_RAW only (the rest of the default set is always there)"
            )));
        }
    }
    for (what, l) in [
        ("memory", p.resources.memory),
        ("cpu", p.resources.cpu),
        ("max_fd", p.resources.max_fd),
        ("max_procs", p.resources.max_procs),
    ] {
        if let Some(l) = l {
            if l.limit == Some(0) || l.request == Some(0) {
                return Err(invalid(format!(
                    "process type {name}: {what} must be above 0 (leave it out for the default)"
                )));
            }
            if let (Some(r), Some(lim)) = (l.request, l.limit) {
                if r > lim {
                    return Err(invalid(format!(
                        "process type {name}: {what} request {r} is over its limit {lim}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// An artifact URI: an image pinned by digest, `REGISTRY/NAME@sha256:HEX`.
pub fn image_uri(uri: &str) -> Result<(), ControllerError> {
    let bad = |why: &str| {
        invalid(format!(
            "artifact uri {uri:?}: {why}; use REGISTRY/NAME@sha256:<64 hex digits>"
        ))
    };
    let reference: oci_spec::distribution::Reference =
        uri.parse().map_err(|e| bad(&format!("{e}")))?;
    let digest = reference.digest().ok_or_else(|| bad("no digest"))?;
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("the digest is not sha256"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("the digest is not 64 lowercase hex digits"));
    }
    if !uri
        .split_once('/')
        .is_some_and(|(r, _)| r.contains(['.', ':']) || r == "localhost")
    {
        return Err(bad("it names no registry"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use controller_api::{Resources, DEFAULT_RESOURCES};

    #[test]
    fn image_uris_need_a_registry_and_a_sha256_digest() {
        let d = "a".repeat(64);
        assert!(image_uri(&format!("127.0.0.1:5000/app/web@sha256:{d}")).is_ok());
        assert!(image_uri(&format!("registry.example/web@sha256:{d}")).is_ok());
        assert!(
            image_uri(&format!("web@sha256:{d}")).is_err(),
            "no registry"
        );
        assert!(
            image_uri("127.0.0.1:5000/web:latest").is_err(),
            "a tag only"
        );
        assert!(image_uri("127.0.0.1:5000/web@sha256:abc").is_err());
        assert!(image_uri(&format!("127.0.0.1:5000/web@sha512:{d}")).is_err());
    }

    #[test]
    fn capabilities_beyond_net_raw_are_refused() {
        let mut p = ProcessType {
            linux_capabilities: vec!["cap_net_raw".into()],
            ..Default::default()
        };
        assert!(process("web", &p, true).is_ok());
        p.linux_capabilities.push("CAP_SYS_ADMIN".into());
        let e = process("web", &p, true).unwrap_err().to_string();
        assert!(e.contains("hosts can grant CAP_NET_RAW only"), "{e}");
    }

    #[test]
    fn defaults_fill_what_a_process_leaves_out() {
        let r = Resources::with_defaults(Resources {
            memory: Some(controller_api::Limit {
                request: None,
                limit: Some(256 << 20),
            }),
            ..Resources::default()
        });
        assert_eq!(r.memory.unwrap().request, Some(256 << 20));
        assert_eq!(r.max_fd, DEFAULT_RESOURCES.max_fd);
        assert_eq!(r.max_procs, DEFAULT_RESOURCES.max_procs);
    }
}
