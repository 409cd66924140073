//! Checks a job request before anything is set up, so that bad input gets a 400 naming the
//! field instead of a failed start.

use runtime::NetworkMode;

use crate::error::HostError;
use host_api::CreateJob;

fn bad(msg: String) -> HostError {
    HostError::BadRequest(msg)
}

fn no_nul(what: &str, s: &str) -> Result<(), HostError> {
    if s.contains('\0') {
        return Err(bad(format!("{what} must not contain NUL bytes")));
    }
    Ok(())
}

fn range(what: &str, v: u64, min: u64, max: u64) -> Result<(), HostError> {
    if v < min || v > max {
        return Err(bad(format!(
            "{what} {v} is out of range: use {min} to {max}"
        )));
    }
    Ok(())
}

/// Most ports one job may publish: each is a NAT rule and a lease from a shared range.
pub const MAX_PORTS: usize = 64;

/// Refuses requests the runtime could only fail on.
pub fn job_request(req: &CreateJob) -> Result<(), HostError> {
    if req.config.image.is_empty() {
        return Err(bad("image must not be empty".into()));
    }
    no_nul("image", &req.config.image)?;
    for a in req
        .config
        .args
        .iter()
        .chain(req.config.entrypoint.iter().flatten())
    {
        no_nul("args and entrypoint", a)?;
    }
    for (k, v) in &req.config.env {
        if k.is_empty() || k.contains('=') {
            return Err(bad(format!(
                "environment variable name {k:?} must be non-empty and without '='"
            )));
        }
        no_nul("environment variables", k)?;
        no_nul("environment variables", v)?;
    }
    for (what, v) in [
        ("working_dir", &req.config.working_dir),
        ("user", &req.config.user),
    ] {
        if let Some(v) = v {
            no_nul(what, v)?;
        }
    }
    if req
        .config
        .working_dir
        .as_deref()
        .is_some_and(|w| !w.starts_with('/'))
    {
        return Err(bad("working_dir must be an absolute path".into()));
    }
    if let Some(h) = &req.config.hostname {
        let ok = !h.is_empty()
            && h.len() <= 64
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(bad(format!(
                "hostname {h:?}: use 1-64 letters, digits, '-' or '.'"
            )));
        }
    }
    for m in &req.config.mounts {
        no_nul("mount paths", &m.source)?;
        no_nul("mount paths", &m.target)?;
    }
    for v in &req.config.volumes {
        no_nul("volume targets", &v.target)?;
    }
    if !req.config.ports.is_empty() && req.config.network != NetworkMode::Bridge {
        return Err(bad(
            "ports can only be published in bridge network mode".into()
        ));
    }
    if req.config.ports.len() > MAX_PORTS {
        return Err(bad(format!(
            "{} ports requested: a job publishes at most {MAX_PORTS}",
            req.config.ports.len()
        )));
    }
    for (i, p) in req.config.ports.iter().enumerate() {
        let twice = req.config.ports[..i]
            .iter()
            .any(|q| p.host != 0 && q.host == p.host && q.proto == p.proto);
        if twice {
            return Err(bad(format!(
                "host port {}/{} is requested twice",
                p.host, p.proto
            )));
        }
        if p.job == 0 {
            return Err(bad("job port 0: use 1 to 65535".into()));
        }
    }
    if let Some(c) = &req.service_check {
        if req.service.is_none() {
            return Err(bad("service_check needs a service".into()));
        }
        let printable = c.path.bytes().all(|b| b.is_ascii_graphic());
        if !c.path.starts_with('/') || !printable || c.path.len() > 1024 {
            return Err(bad(format!(
                "service_check path {:?}: use an absolute path such as /health (printable ASCII, no spaces)",
                c.path
            )));
        }
        if let Some(s) = c.status {
            range("service_check status", s as u64, 100, 599)?;
        }
    }
    if let Some(t) = &req.service_check_timing {
        if req.service.is_none() {
            return Err(bad("service_check_timing needs a service".into()));
        }
        if t.interval_ms != 0 {
            range(
                "service_check_timing interval_ms",
                t.interval_ms,
                100,
                3_600_000,
            )?;
        }
        range("service_check_timing threshold", t.threshold.into(), 1, 100)?;
        if let Some(ms) = t.start_timeout_ms {
            range("service_check_timing start_timeout_ms", ms, 100, 86_400_000)?;
        }
    }
    if req.service.is_some() {
        let Some(port) = req.service_port.or(req.config.ports.first().map(|p| p.job)) else {
            return Err(bad(
                "a service needs service_port or a published port".into()
            ));
        };
        if req.config.network == NetworkMode::Bridge
            && !req.config.ports.iter().any(|p| p.job == port)
        {
            return Err(bad(format!(
                "service port {port} is not published: other jobs reach a job only through its published ports (add it to ports)"
            )));
        }
    }
    let r = &req.config.resources;
    if let Some(m) = r.memory {
        range("memory limit (bytes)", m, 1 << 20, i64::MAX as u64)?;
    }
    if let Some(s) = r.cpu_shares {
        range("cpu_shares", s, 2, 262_144)?;
    }
    if let Some(c) = r.cpu_millis {
        range("cpu_millis", c, 10, 1_000_000)?;
    }
    if let Some(p) = r.pids {
        // The job's start-up processes count against it (below 8 the start itself fails),
        // and the kernel refuses pids.max above PID_MAX_LIMIT (2^22 on 64-bit).
        range("pids limit", p.max(0) as u64, 8, 1 << 22)?;
    }
    if let Some(n) = r.nofile {
        range("nofile limit", n, 1, 1 << 20)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_refused() {
        let ok = CreateJob::new("busybox", Vec::new());
        assert!(job_request(&ok).is_ok());
        let mut r = ok.clone();
        r.config.ports.push(runtime::net::PortMap {
            host: 1,
            job: 0,
            proto: runtime::net::Proto::Udp,
        });
        assert!(job_request(&r).is_err());
        let mut r = ok.clone();
        r.config.env.insert("A=B".into(), "x".into());
        assert!(job_request(&r).is_err());
        let mut r = ok.clone();
        r.config.args = vec!["a\0b".into()];
        assert!(job_request(&r).is_err());
        let mut r = ok.clone();
        r.config.resources.memory = Some(10);
        assert!(job_request(&r).is_err());
        let mut r = ok;
        r.config.hostname = Some("bad host".into());
        assert!(job_request(&r).is_err());
    }
}
