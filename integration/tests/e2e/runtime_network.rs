//! Job networking: modes, published ports with hairpin NAT, outbound NAT.

use integration::root_test;
use std::time::Duration;

use integration::jobs::{self, Jobs};

fn curl(url: &str) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "2", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn curl_until(url: &str) -> String {
    for _ in 0..100 {
        if let Some(body) = curl(url) {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} never answered");
}

#[root_test(isolated)]
fn network_modes_none_and_host() {
    let j = Jobs::new();
    let link = [
        "link",
        "add",
        "flynntest0",
        "type",
        "veth",
        "peer",
        "name",
        "flynntest1",
    ];
    integration::run_ok(std::process::Command::new("ip").args(link));
    let mut none = j.sh(
        "net-none",
        "ls /sys/class/net | tr '\\n' ' '; cat /sys/class/net/lo/flags",
    );
    none.config.network = runtime::NetworkMode::None;
    let (_, none) = j.output(&none);
    assert_eq!(none, "lo 0x9", "only loopback, up");
    let mut host = j.sh("net-host", "ls /sys/class/net | tr '\\n' ' '");
    host.config.network = runtime::NetworkMode::Host;
    let (_, out) = j.output(&host);
    assert!(
        out.contains("flynntest0"),
        "host mode shares the host's links: {out}"
    );
}

#[root_test(isolated)]
fn bridge_jobs_publish_ports_with_hairpin() {
    let j = Jobs::new();
    let before_rules = runtime::net::nat::rules("nat").unwrap_or_default().len();
    let serve = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    let mut web = j.sh("web", serve);
    web.config.ports = vec![jobs::port(18080, 8080), jobs::port(0, 8080)];
    j.rt.create(&web).unwrap();
    let att =
        j.rt.attachment("web")
            .unwrap()
            .expect("bridge jobs have an attachment");
    assert_eq!(att.ip.octets()[..2], [100, 100]);
    assert_eq!(att.gateway.to_string(), "100.100.0.1");
    let auto = att.ports[1].host;
    assert!((30000..=32767).contains(&auto), "{auto}");

    // From the host: loopback, the bridge address, the job's own address, the auto port.
    assert_eq!(curl_until("http://127.0.0.1:18080/"), "hello-from-web\n");
    assert_eq!(curl_until("http://100.100.0.1:18080/"), "hello-from-web\n");
    assert_eq!(
        curl_until(&format!("http://{}:8080/", att.ip)),
        "hello-from-web\n"
    );
    assert_eq!(
        curl_until(&format!("http://127.0.0.1:{auto}/")),
        "hello-from-web\n"
    );

    // A host service on every address, which jobs must not reach (nor publish over).
    let host_service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let service_port = host_service.local_addr().unwrap().port();

    // From another job, through the host's address (hairpin), and its view of the network;
    // not straight to the other job's address, and not to the host's own services.
    let client = j.sh(
        "client",
        &format!(
            "wget -qO- http://100.100.0.1:18080/; ip route | grep default; grep client /etc/hosts | cut -f2; \
             grep -c nameserver /etc/resolv.conf >/dev/null && echo resolv-ok; \
             echo | nc -w 2 {ip} 8080 >/dev/null 2>&1 && echo direct=reached || echo direct=blocked; \
             echo | nc -w 2 100.100.0.1 {service_port} >/dev/null 2>&1 && echo host=reached || echo host=blocked",
            ip = att.ip
        ),
    );
    let (status, out) = j.output(&client);
    assert_eq!(status.code, Some(0), "{out}");
    assert!(
        out.contains("hello-from-web"),
        "hairpin from another job: {out}"
    );
    assert!(out.contains("default via 100.100.0.1"), "{out}");
    assert!(out.contains("client"), "hosts: {out}");
    // The bridge keeps the MAC it was given while job ports come and go (one that took the
    // lowest port MAC would change under the jobs' ARP entries for the gateway).
    let link = integration::run_ok(
        std::process::Command::new("ip").args(["-o", "link", "show", "flynnbr0"]),
    );
    assert!(link.contains("link/ether 02:00:64:64:00:01 "), "{link}");
    assert!(out.contains("direct=blocked"), "jobs are isolated: {out}");
    assert!(
        out.contains("host=blocked"),
        "host services are closed to jobs: {out}"
    );

    // A port a host process listens on is never published over it.
    let mut hijack = j.sh("hijack", "true");
    hijack.config.ports = vec![jobs::port(service_port, 80)];
    let err = j.rt.create(&hijack).unwrap_err().to_string();
    assert!(err.contains("used by a process on the host"), "{err}");
    drop(host_service);

    // A job reaching its own published port through the host address.
    let mut selfish = j.sh(
        "selfish",
        "mkdir -p /www && echo me > /www/index.html && httpd -p 8080 -h /www && sleep 0.3 && wget -qO- http://100.100.0.1:18081/",
    );
    selfish.config.ports = vec![jobs::port(18081, 8080)];
    let (_, out) = j.output(&selfish);
    assert_eq!(out, "me", "hairpin to itself");

    // A port another job holds is refused and the failed job leaves nothing behind.
    let mut clash = j.sh("clash", "true");
    clash.config.ports = vec![jobs::port(18080, 80)];
    let err = j.rt.create(&clash).unwrap_err().to_string();
    assert!(
        err.contains("host port 18080 is already published"),
        "{err}"
    );
    assert!(!j.root().join("clash").exists());
    assert!(!j
        .rt
        .network()
        .ipam()
        .leases()
        .unwrap()
        .contains_key("clash"));

    j.rt.stop("web", Duration::from_millis(200)).unwrap();
    j.rt.delete("web").unwrap();
    assert!(
        curl("http://127.0.0.1:18080/").is_none(),
        "port unpublished"
    );
    assert!(
        j.rt.network().ipam().leases().unwrap().is_empty(),
        "leases released"
    );
    let left = integration::leaks::job_veths_gone_within(Duration::from_secs(10));
    assert!(
        !left.iter().any(|l| l.contains(&att.host_veth)),
        "veth removed: {left:?}"
    );
    let after_rules = runtime::net::nat::rules("nat").unwrap();
    assert!(
        !after_rules
            .iter()
            .any(|r| r.contains("18080") || r.contains("18081")),
        "{after_rules:?}"
    );
    assert!(
        after_rules.len() <= before_rules + 7,
        "only the shared base rules remain: {after_rules:?}"
    );
    assert!(!att.netns.exists(), "namespace unpinned");
}

#[root_test(isolated)]
fn outbound_nat_reaches_another_namespace() {
    let j = Jobs::new();
    // An "outside" host: a namespace of the test's own, joined by a veth pair on 198.18.0.0/30.
    let sh =
        |script: &str| integration::run_ok(std::process::Command::new("sh").args(["-c", script]));
    let ns = format!("flynn-outside-{}", std::process::id());
    sh(&format!(
        "ip netns add {ns} && ip link add ob0 type veth peer name ob1 netns {ns} && \
         ip addr add 198.18.0.1/30 dev ob0 && ip link set ob0 up && \
         ip -n {ns} addr add 198.18.0.2/30 dev ob1 && ip -n {ns} link set ob1 up && ip -n {ns} link set lo up"
    ));
    /// Deletes the outside namespace (its pin file lives in the host's /run) even on failure.
    struct OutsideNs(String);
    impl Drop for OutsideNs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let outside = OutsideNs(ns.clone());
    let www = j.pinkerton.scratch().join("outside-www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "outside\n").unwrap();
    let log = j.pinkerton.scratch().join("outside.log");
    /// Kills the outside server even when an assertion fails.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Server(
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "busybox", "httpd", "-f", "-v", "-p", "8000", "-h",
            ])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let (status, out) = j.output(&j.sh("egress", "sleep 0.2; wget -qO- http://198.18.0.2:8000/"));
    drop(server);
    drop(outside);
    assert_eq!((status.code, out.as_str()), (Some(0), "outside"));
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(
        seen.contains("198.18.0.1") && !seen.contains("100.100."),
        "source is masqueraded: {seen}"
    );
}

#[root_test(isolated)]
fn a_job_id_can_be_used_again_at_once() {
    let j = Jobs::new();
    // Each job's veth pair goes with its namespace a little after the job is deleted; the
    // next job of the same id must not trip over it.
    for round in 0..5 {
        let (status, out) = j.output(&j.sh("again", &format!("echo round {round}")));
        assert_eq!((status.code, out), (Some(0), format!("round {round}")));
    }
}

#[root_test(isolated)]
fn a_bridge_jobs_eth0_has_no_ipv6() {
    // Job networking is IPv4: an eth0 with IPv6 sent neighbour discovery and multicast
    // listener reports that the bridge flooded to every running job. Loopback keeps ::1.
    let j = Jobs::new();
    let (status, out) = j.output(&j.sh(
        "no-ipv6",
        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; awk '{print $6}' /proc/net/if_inet6",
    ));
    assert_eq!(status.code, Some(0), "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1", "lo"],
        "{out}"
    );
}
