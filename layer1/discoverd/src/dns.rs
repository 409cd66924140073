//! DNS for services (UDP): in the `discoverd.` zone,
//!
//! ```text
//! NAME.discoverd.            A     every live instance's address
//! leader.NAME.discoverd.     A     the leader's address
//! _NAME._tcp.discoverd.      SRV   one per instance (also _udp), target IP-A-B-C-D.NAME.discoverd.
//! A-B-C-D.NAME.discoverd.    A     the address a SRV target names
//! ```
//!
//! Other names go to the upstream resolvers (so jobs can use discoverd as their only name
//! server), or are refused when there are none.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::registry::Registry;
use crate::store::Store;

/// The zone served.
pub const ZONE: &str = "discoverd.";
/// TTL of answers: short, instances come and go.
const TTL: u32 = 1;

/// Answers queries on `socket` until the task is dropped.
pub async fn serve<S: Store>(socket: UdpSocket, registry: Registry<S>, upstream: Vec<SocketAddr>) {
    let socket = std::sync::Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (socket, registry, upstream) = (socket.clone(), registry.clone(), upstream.clone());
        tokio::spawn(async move {
            if let Some(reply) = answer(&registry, &query, &upstream).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

fn ipv4(addr: &SocketAddr) -> Option<(Ipv4Addr, u16)> {
    match addr {
        SocketAddr::V4(a) => Some((*a.ip(), a.port())),
        SocketAddr::V6(_) => None,
    }
}

/// The reply to one query packet (`None` for packets that are not queries).
pub async fn answer<S: Store>(
    r: &Registry<S>,
    packet: &[u8],
    upstream: &[SocketAddr],
) -> Option<Vec<u8>> {
    let msg = Message::from_vec(packet).ok()?;
    if msg.message_type() != MessageType::Query {
        return None;
    }
    let q = msg.queries().first()?.clone();
    let name = q.name().to_ascii().to_ascii_lowercase();
    let Some(local) = name.strip_suffix(ZONE) else {
        return forward(packet, upstream)
            .await
            .or_else(|| Some(reply(&msg, ResponseCode::Refused, Vec::new())));
    };
    let labels: Vec<&str> = local.trim_end_matches('.').split('.').collect();
    let mut answers = Vec::new();
    let mut found = false;
    let a = |ip: Ipv4Addr| Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip)));
    match labels.as_slice() {
        ["leader", service] => {
            if let Some(l) = r.leader(service) {
                found = true;
                if let (Some((ip, _)), RecordType::A) = (ipv4(&l.addr), q.query_type()) {
                    answers.push(a(ip));
                }
            }
        }
        [srv, proto] if srv.starts_with('_') && proto.starts_with('_') => {
            let (service, proto) = (&srv[1..], &proto[1..]);
            let instances = r.instances(service);
            found = !instances.is_empty();
            if q.query_type() == RecordType::SRV {
                for i in instances.iter().filter(|i| i.proto.as_str() == proto) {
                    if let Some((ip, port)) = ipv4(&i.addr) {
                        let target =
                            format!("{}.{service}.{ZONE}", ip.to_string().replace('.', "-"));
                        let target = Name::from_ascii(&target).ok()?;
                        let srv = SRV::new(0, 0, port, target);
                        answers.push(Record::from_rdata(q.name().clone(), TTL, RData::SRV(srv)));
                    }
                }
            }
        }
        [host, service] => {
            let ip: Option<Ipv4Addr> = host.replace('-', ".").parse().ok();
            if let Some(ip) = ip.filter(|ip| {
                r.instances(service)
                    .iter()
                    .any(|i| ipv4(&i.addr).is_some_and(|(a, _)| a == *ip))
            }) {
                found = true;
                if q.query_type() == RecordType::A {
                    answers.push(a(ip));
                }
            }
        }
        [service] => {
            let instances = r.instances(service);
            found = !instances.is_empty();
            if q.query_type() == RecordType::A {
                let mut ips: Vec<Ipv4Addr> = instances
                    .iter()
                    .filter_map(|i| ipv4(&i.addr))
                    .map(|(ip, _)| ip)
                    .collect();
                ips.dedup();
                answers.extend(ips.into_iter().map(a));
            }
        }
        _ => {}
    }
    let code = if found {
        ResponseCode::NoError
    } else {
        ResponseCode::NXDomain
    };
    Some(reply(&msg, code, answers))
}

fn reply(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .set_response_code(code);
    m.add_queries(query.queries().to_vec());
    m.add_answers(answers);
    m.to_vec().unwrap_or_default()
}

/// Relays a query to the first upstream that answers within 1.5 s (a connected socket, so an
/// upstream that refuses is skipped at once).
async fn forward(packet: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstream {
        let bind: SocketAddr = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .ok()?;
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.connect(up).await.is_err() || s.send(packet).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1500), s.recv(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}
