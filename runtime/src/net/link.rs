//! Links and addresses through netlink: the bridge, a veth pair per job, the job's side of it.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::{
    new_connection, Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::NetError;

fn nl(what: &str) -> impl FnOnce(rtnetlink::Error) -> NetError + '_ {
    move |e| NetError::Netlink(format!("{what}: {e}"))
}

/// Runs `f` with a netlink handle on a current-thread tokio runtime (in the caller's netns).
pub fn with_handle<T>(f: impl AsyncFnOnce(Handle) -> Result<T, NetError>) -> Result<T, NetError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetError::Netlink(format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        let (conn, handle, _) =
            new_connection().map_err(|e| NetError::Netlink(format!("netlink socket: {e}")))?;
        tokio::spawn(conn);
        f(handle).await
    })
}

/// The index of link `name`, if it exists.
pub async fn index(h: &Handle, name: &str) -> Result<Option<u32>, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl("looking up a link")(e)),
    }
}

/// The bridge's MAC: locally administered, from the gateway address (`02:00:` and its four
/// bytes). A bridge whose MAC was not set takes the lowest MAC of its ports, so adding or
/// removing a job's veth could change it, and every job's ARP entry for the gateway would point
/// at a MAC that is gone: their replies dropped for seconds until ARP asks again.
pub fn bridge_mac(gateway: Ipv4Addr) -> Vec<u8> {
    let g = gateway.octets();
    vec![0x02, 0x00, g[0], g[1], g[2], g[3]]
}

/// Creates the bridge with `gateway/prefix` unless it exists; sets it up, with its MAC fixed
/// ([`bridge_mac`]; with `fix_mac`, also on a bridge that exists, which an earlier daemon may
/// have made without one).
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    fix_mac: bool,
) -> Result<u32, NetError> {
    if let Some(i) = index(h, name).await? {
        if !fix_mac {
            return Ok(i);
        }
        h.link()
            .set(
                LinkUnspec::new_with_index(i)
                    .address(bridge_mac(gateway))
                    .build(),
            )
            .execute()
            .await
            .map_err(nl("setting the bridge's MAC"))?;
        return Ok(i);
    }
    h.link()
        .add(LinkBridge::new(name).address(bridge_mac(gateway)).build())
        .execute()
        .await
        .map_err(nl("creating the bridge"))?;
    let i = index(h, name)
        .await?
        .ok_or_else(|| NetError::Netlink("bridge vanished".into()))?;
    h.address()
        .add(i, IpAddr::V4(gateway), prefix)
        .execute()
        .await
        .map_err(nl("addressing the bridge"))?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .map_err(nl("bridge up"))?;
    Ok(i)
}

/// Creates veth `host`/`eth0` in one request: `host` on the bridge and up, its peer `eth0`
/// born inside `netns` (moving a link between namespaces afterwards costs an RCU grace
/// period); then sets hairpin mode on the bridge port (and isolation, when `isolated`).
pub async fn create_veth(
    h: &Handle,
    host: &str,
    bridge: u32,
    netns: &std::fs::File,
    isolated: bool,
) -> Result<(), NetError> {
    use rtnetlink::packet_route::link::{InfoData, InfoVeth};
    use rtnetlink::LinkMessageBuilder;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0".to_string())
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let msg = LinkVeth::new(host, "eth0")
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .controller(bridge)
        .up()
        .build();
    match h.link().add(msg.clone()).execute().await {
        Ok(()) => {}
        // A job of the same id that just ended: its pair goes with its namespace, which the
        // kernel may not have destroyed yet. The name is this job's, so the pair can go now.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {
            delete(h, host).await?;
            h.link()
                .add(msg)
                .execute()
                .await
                .map_err(nl("creating the veth pair"))?;
        }
        Err(e) => return Err(nl("creating the veth pair")(e)),
    }
    let hi = index(h, host)
        .await?
        .ok_or_else(|| NetError::Netlink("veth vanished".into()))?;
    // Hairpin: frames may leave through the port they came in on, so a job reaches itself
    // through a published port. Isolated (where iptables cannot see bridged frames): frames
    // between two job ports are not bridged, so jobs reach each other only through the host,
    // where the filter rules decide. With br_netfilter the rules see bridged frames, and
    // isolation would drop the DNATed hairpin frames it bridges from job to job.
    h.link()
        .set_port(
            LinkBridgePort::new(hi)
                .hairpin(true)
                .isolated(isolated)
                .build(),
        )
        .execute()
        .await
        .map_err(nl("turning hairpin and isolation on"))
}

/// Inside the job's namespace: gives `eth0` `ip/prefix`, brings it and `lo` up and routes
/// through `gateway`.
pub async fn configure_inside(
    h: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetError> {
    let pi = index(h, "eth0")
        .await?
        .ok_or_else(|| NetError::Netlink("eth0 missing in the job's namespace".into()))?;
    h.address()
        .add(pi, IpAddr::V4(ip), prefix)
        .execute()
        .await
        .map_err(nl("addressing eth0"))?;
    h.link()
        .set(LinkUnspec::new_with_index(pi).up().build())
        .execute()
        .await
        .map_err(nl("eth0 up"))?;
    if let Some(lo) = index(h, "lo").await? {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl("lo up"))?;
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(pi)
        .build();
    h.route()
        .add(route)
        .execute()
        .await
        .map_err(nl("default route"))
}

/// Names of the host ends of job veths (`fl` and 10 hex digits) that are ports of `bridge`
/// or of no bridge yet (a setup interrupted half-way).
pub async fn job_veths(h: &Handle, bridge: &str) -> Result<Vec<String>, NetError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let br = index(h, bridge).await?;
    let mut links = h.link().get().execute();
    let mut out = Vec::new();
    while let Some(l) = links.try_next().await.map_err(nl("listing links"))? {
        let mut name = None;
        let mut controller = None;
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Controller(c) => controller = Some(*c),
                _ => {}
            }
        }
        let Some(name) = name else { continue };
        let ours = name.len() == 12
            && name.starts_with("fl")
            && name[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if ours && (controller.is_none() || controller == br) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Deletes link `name` (a veth with its peer, or the bridge); missing is fine.
pub async fn delete(h: &Handle, name: &str) -> Result<(), NetError> {
    let Some(i) = index(h, name).await? else {
        return Ok(());
    };
    match h.link().del(i).execute().await {
        Ok(()) => Ok(()),
        // Gone between the lookup and the delete: the kernel destroys a pair with the
        // namespace holding its other end, on its own schedule.
        Err(rtnetlink::Error::NetlinkError(m))
            if m.to_io().raw_os_error() == Some(libc::ENODEV) =>
        {
            Ok(())
        }
        Err(e) => Err(nl(&format!("deleting link {name}"))(e)),
    }
}
