//! Where a webhook may point: never, unless the operator allows it, at
//! loopback, private, link-local (cloud metadata included), shared,
//! unspecified, broadcast or multicast addresses. Checked when a webhook is
//! registered (every address its name resolves to) and again when each
//! delivery connects (the resolver drops forbidden addresses, so a name
//! that later resolves elsewhere cannot reach inside); redirects are never
//! followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is one a webhook may never reach.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24, IETF protocol assignments; 198.18.0.0/15, benchmarks.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7, unique local; fe80::/10, link-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // 64:ff9b::/96 and friends could reach v4 inside: NAT64 prefixes.
        || first == 0x0064
}

/// Why a URL cannot be a webhook.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error(
        "must be an http or https URL without user or password, e.g. https://hooks.example.com/stowage"
    )]
    Malformed,
    #[error("{0} resolves to no address")]
    Unresolvable(String),
    #[error(
        "{host} resolves to {ip}, a loopback, private or link-local address; webhooks may not point inside"
    )]
    Forbidden { host: String, ip: IpAddr },
}

/// Checks a webhook URL: its form, and (unless `allow_private`) every
/// address its host resolves to now.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    let url = reqwest::Url::parse(raw).map_err(|_| UrlError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || raw.len() > 2048
    {
        return Err(UrlError::Malformed);
    }
    let host = url.host_str().ok_or(UrlError::Malformed)?.to_owned();
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| UrlError::Unresolvable(host.clone()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable(host));
    }
    if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip())) {
        return Err(UrlError::Forbidden { host, ip: bad.ip() });
    }
    Ok(url)
}

/// The deliveries' resolver: the system's answers, forbidden addresses
/// dropped (none left: the connection fails).
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !forbidden(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves only to forbidden addresses").into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client deliveries go through: a 10 s limit per attempt, no
/// redirects, and (unless private addresses are allowed) the guarded
/// resolver.
pub fn client(allow_private: bool, timeout: std::time::Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Stowage-Webhooks/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder.build().expect("the webhook client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_forbidden_and_public_ones_are_not() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(forbidden(bad.parse().unwrap()), "{bad}");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!forbidden(good.parse().unwrap()), "{good}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_before_any_request() {
        for bad in [
            "ftp://example.com/x",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(
                matches!(check_url(bad, false).await, Err(UrlError::Malformed)),
                "{bad}"
            );
        }
        for inside in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/",
        ] {
            assert!(
                matches!(
                    check_url(inside, false).await,
                    Err(UrlError::Forbidden { .. })
                ),
                "{inside}"
            );
            assert!(check_url(inside, true).await.is_ok(), "{inside}");
        }
    }
}
