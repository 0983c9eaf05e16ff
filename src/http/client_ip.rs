//! Who the client is, by address: the TCP peer, or, when the peer is one of
//! `STOWAGE_TRUSTED_PROXIES`, the address that the proxies' `X-Forwarded-For`
//! names. Rate limits, logs and object events all use this one answer.
//!
//! The header is read from the right: each trusted proxy appends the
//! address it heard from, so the rightmost address that is not a trusted
//! proxy is the first one no proxy of ours vouches for, and that is the
//! client. Whatever a client writes into the header itself stands to the
//! left of it and is never believed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, web};
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address, given the peer's and the `X-Forwarded-For`
    /// header values in the order they arrived.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let mut client = peer;
        for value in forwarded_for.rev() {
            let Ok(value) = value.to_str() else {
                return canonical(client);
            };
            for hop in value.rsplit(',') {
                let Some(ip) = parse_hop(hop.trim()) else {
                    // Nothing left of a malformed entry can be trusted.
                    return canonical(client);
                };
                client = ip;
                if !self.trusts(ip) {
                    return canonical(ip);
                }
            }
        }
        canonical(client)
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// An IPv4 address that arrived as IPv4-mapped IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a request, as [`middleware`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The request's client address (the peer's when the middleware did not run).
    pub fn of(req: &HttpRequest) -> IpAddr {
        req.extensions()
            .get::<ClientIp>()
            .map(|c| c.0)
            .or_else(|| req.peer_addr().map(|a| canonical(a.ip())))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// Works out the client address once per request.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let ip = match req.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client_ip(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        None => canonical(peer),
    };
    req.extensions_mut().insert(ClientIp(ip));
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn client(p: &TrustedProxies, peer: &str, headers: &[&str]) -> String {
        let values: Vec<HeaderValue> = headers
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        p.client_ip(peer.parse().unwrap(), values.iter())
            .to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&p, "203.0.113.9", &["1.1.1.1"]), "203.0.113.9");
        assert_eq!(
            client(&TrustedProxies::default(), "10.0.0.1", &["1.1.1.1"]),
            "10.0.0.1"
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.1/32"]);
        assert_eq!(client(&p, "10.0.0.1", &["198.51.100.7"]), "198.51.100.7");
        // A client that forges a header of its own stands to the left.
        assert_eq!(
            client(&p, "10.0.0.1", &["6.6.6.6, 198.51.100.7, 192.168.1.1"]),
            "198.51.100.7"
        );
        // Several header lines read as one list, in order.
        assert_eq!(
            client(
                &p,
                "10.0.0.1",
                &["6.6.6.6", "198.51.100.7:4711", "10.1.2.3"]
            ),
            "198.51.100.7"
        );
        assert_eq!(
            client(&p, "10.0.0.1", &["[2001:db8::7]:443"]),
            "2001:db8::7"
        );
        // Only proxies all the way: the leftmost one.
        assert_eq!(client(&p, "10.0.0.1", &["10.9.9.9, 10.0.0.2"]), "10.9.9.9");
        // No header: the proxy itself.
        assert_eq!(client(&p, "10.0.0.1", &[]), "10.0.0.1");
        // Garbage stops the walk at the last hop a proxy vouched for.
        assert_eq!(
            client(&p, "10.0.0.1", &["1.1.1.1, nonsense, 10.0.0.3"]),
            "10.0.0.3"
        );
        assert_eq!(
            client(&p, "::ffff:10.0.0.1", &["198.51.100.7"]),
            "198.51.100.7"
        );
    }
}
