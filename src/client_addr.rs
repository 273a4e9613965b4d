//! The client's address behind reverse proxies (`TRUSTED_PROXIES`).
//!
//! `X-Forwarded-For` is the client's own word unless the hop that sent it is a proxy we run:
//! each proxy appends the address it saw, so the list is read from the right, and only as far
//! as trusted proxies vouch for it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The client's address for `req`: the peer, or behind a trusted proxy (the app's
/// [`TrustedProxies`]) the address it vouches for. The failure limiter counts it and the logs
/// show it; `None` only when the connection has no peer address (not a TCP request).
pub fn of_request(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(match req.app_data::<TrustedProxies>() {
        Some(proxies) => proxies.client_addr_from_headers(peer, req.headers()),
        None => peer.to_canonical(),
    })
}

/// The proxies whose `X-Forwarded-For` is believed: addresses and CIDR ranges. Empty (the
/// default) means no header is ever believed and the peer address is the client's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` carrying `x_forwarded_for` (all of its
    /// header lines joined by commas, in order).
    ///
    /// When `peer` is not trusted, the header is ignored and `peer` is the answer. Otherwise the
    /// header is read from the right: each trusted address is one more proxy, and the first
    /// address that is not trusted is the client. An entry that is not an address (garbage, a
    /// host name, `unknown`) ends the walk: nothing left of it can be believed, so the answer is
    /// the last trusted hop reached, the proxy that passed it on. A header made only of trusted
    /// addresses (or none) also answers with the last trusted hop.
    pub fn client_addr(&self, peer: IpAddr, x_forwarded_for: Option<&str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut hop = peer;
        for entry in x_forwarded_for.unwrap_or("").rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some(addr) = parse_entry(entry) else {
                return hop;
            };
            if !self.contains(addr) {
                return addr;
            }
            hop = addr;
        }
        hop
    }

    /// [`Self::client_addr`] with the `X-Forwarded-For` lines of `headers`.
    pub fn client_addr_from_headers(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer.to_canonical();
        }
        let lines: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.client_addr(peer, Some(&lines.join(",")))
    }
}

/// `192.0.2.1`, `2001:db8::1`, or the same with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`),
/// which some proxies write.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Comma-separated addresses (`10.0.0.7`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`).
impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpAddr>()
                    .map(|ip| IpNet::from(ip.to_canonical()))
                    .or_else(|_| entry.parse::<IpNet>().map(|net| net.trunc()))
                    .map_err(|_| {
                        format!("`{entry}` is not an IP address or CIDR range such as 10.0.0.0/8")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_parse_and_garbage_is_named() {
        let p = proxies(" 10.0.0.7 , 192.168.0.0/16,fd00::/8,");
        assert!(p.contains(ip("10.0.0.7")));
        assert!(!p.contains(ip("10.0.0.8")));
        assert!(p.contains(ip("192.168.44.1")));
        assert!(p.contains(ip("fd12::1")));
        assert!(
            p.contains(ip("::ffff:10.0.0.7")),
            "IPv4-mapped counts as IPv4"
        );
        assert_eq!(proxies("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!(proxies("").is_empty());

        let err = "10.0.0.1,proxy.internal".parse::<TrustedProxies>();
        assert_eq!(
            err.unwrap_err(),
            "`proxy.internal` is not an IP address or CIDR range such as 10.0.0.0/8"
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let p = proxies("10.0.0.0/8");
        assert_eq!(
            p.client_addr(ip("203.0.113.9"), Some("198.51.100.1")),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_addr(ip("10.0.0.1"), Some("198.51.100.1")),
            ip("10.0.0.1"),
            "nobody is trusted by default"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let p = proxies("10.0.0.0/8");
        // The client claims to be 1.1.1.1; the proxy appended what it really saw.
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("1.1.1.1, 198.51.100.7")),
            ip("198.51.100.7")
        );
        // Two proxies in a row.
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("1.1.1.1, 198.51.100.7, 10.0.0.2")),
            ip("198.51.100.7")
        );
        // Ports, IPv6 and IPv4-mapped entries.
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("198.51.100.7:4711")),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("[2001:db8::1]:4711")),
            ip("2001:db8::1")
        );
        assert_eq!(
            p.client_addr(ip("::ffff:10.0.0.1"), Some("::ffff:198.51.100.7")),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn without_a_usable_header_the_last_trusted_hop_is_the_answer() {
        let p = proxies("10.0.0.0/8");
        assert_eq!(p.client_addr(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(p.client_addr(ip("10.0.0.1"), Some(" , ")), ip("10.0.0.1"));
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("10.0.0.3, 10.0.0.2")),
            ip("10.0.0.3")
        );
        // Garbage is a boundary: what is left of it is not believed either.
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("198.51.100.7, unknown")),
            ip("10.0.0.1")
        );
        assert_eq!(
            p.client_addr(ip("10.0.0.1"), Some("198.51.100.7, bogus, 10.0.0.2")),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn header_lines_are_read_in_order() {
        use actix_web::http::header::{HeaderName, HeaderValue};
        let p = proxies("10.0.0.0/8");
        let mut headers = HeaderMap::new();
        let xff = HeaderName::from_static("x-forwarded-for");
        headers.append(xff.clone(), HeaderValue::from_static("1.1.1.1"));
        headers.append(xff, HeaderValue::from_static("198.51.100.7"));
        assert_eq!(
            p.client_addr_from_headers(ip("10.0.0.1"), &headers),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_addr_from_headers(ip("203.0.113.9"), &headers),
            ip("203.0.113.9")
        );
    }
}
