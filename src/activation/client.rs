//! Who is asking: the client address the per-client limit counts, from the connection, or from
//! `X-Forwarded-For` when (and only when) the connection comes from a proxy named as trusted.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies (ingress controllers, gateways) whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Parses `CIDR,CIDR,...` (a bare address is one host); empty: none.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR (such as 10.0.0.0/8) or an address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client: the connection's peer, unless the peer is a trusted proxy; then, reading
    /// `X-Forwarded-For` from the right (each proxy appends the address it saw), the first
    /// address that is not a trusted proxy. An entry that is not an address ends the walk at
    /// the last trusted hop, as does a list of trusted proxies only.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(address) = std::str::from_utf8(hop)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
            else {
                return client;
            };
            client = canonical(address);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are (one client, one bucket).
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let headers = forwarded("203.0.113.9");
        assert_eq!(none.client(ip("10.1.2.3"), &headers), ip("10.1.2.3"));
        let ingress = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        assert_eq!(ingress.client(ip("10.1.2.3"), &headers), ip("203.0.113.9"));
        assert_eq!(ingress.client(ip("192.0.2.1"), &headers), ip("192.0.2.1"));
        assert_eq!(
            ingress.client(ip("::ffff:10.1.2.3"), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client_whatever_the_client_wrote() {
        let ingress = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.5");
        // The client forged the first entries; the ingress appended the real one.
        let headers = forwarded("1.1.1.1, 2.2.2.2, 198.51.100.7, 10.0.0.9");
        assert_eq!(ingress.client(peer, &headers), ip("198.51.100.7"));
        let mut two = forwarded("1.1.1.1");
        two.append("x-forwarded-for", "198.51.100.8".parse().unwrap());
        assert_eq!(ingress.client(peer, &two), ip("198.51.100.8"));
        // Garbage ends the walk at the last trusted hop; no header: the proxy itself.
        assert_eq!(
            ingress.client(peer, &forwarded("1.1.1.1, junk, 10.0.0.9")),
            ip("10.0.0.9")
        );
        assert_eq!(ingress.client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn a_list_that_is_no_cidr_is_refused_naming_the_entry() {
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
        let error = TrustedProxies::parse("10.0.0.0/8,ingress").unwrap_err();
        assert!(error.contains("\"ingress\""), "{error}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
