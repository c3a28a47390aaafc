//! Where webhook deliveries may connect: a Distributor writes the URL, so the operator must not
//! become its way into the cluster's own network (the cloud's metadata service, the API
//! server's Service address, a mesh sidecar's admin port on loopback) nor a scanner of it.
//!
//! Every address a delivery would connect to is checked at connect time, after resolution:
//! names go through [`GuardedResolver`] (so a name that resolves to a public address when
//! admitted and to a private one later, DNS rebinding, is refused all the same), and an IP
//! literal in the URL, which the HTTP client connects to without resolving, through
//! [`EgressPolicy::permits`] before the request is made. Refused are loopback, private,
//! link-local, CGNAT, ULA, multicast, unspecified, broadcast, documentation and reserved
//! ranges, also when written as an IPv4-mapped, IPv4-compatible, 6to4 or NAT64 IPv6 address;
//! except the networks the operator was told to allow (`--webhook-allow-private-networks`).
//! Plain `http://` goes only to an allowed network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The networks deliveries may reach although they are not public.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allowed: Vec<IpNet>,
    /// A loopback address another stands in for (see [`EgressPolicy::standing_in`]).
    stand_in: Option<(SocketAddr, SocketAddr)>,
}

/// Why a `--webhook-allow-private-networks` entry was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither a CIDR (10.0.0.0/8, fd00::/8) nor an IP address")]
pub struct BadNetwork(pub String);

impl EgressPolicy {
    /// Only public addresses.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Public addresses and `allowed`.
    pub fn allowing(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed,
            stand_in: None,
        }
    }

    /// Deliveries addressed to loopback `for_` (an IP literal and port in the URL) go to
    /// loopback `at` instead: the sandbox's webhook receiver, when the port the examples deliver
    /// to was taken by someone else's. Nothing else is redirected, and only between loopback
    /// addresses: set by the sandbox alone, never from the command line.
    pub fn standing_in(mut self, for_: SocketAddr, at: SocketAddr) -> Self {
        if for_.ip().is_loopback() && at.ip().is_loopback() {
            self.stand_in = Some((for_, at));
        }
        self
    }

    /// Where a delivery to `addr` goes: `addr`, or the address standing in for it.
    pub fn destination(&self, addr: SocketAddr) -> SocketAddr {
        match self.stand_in {
            Some((for_, at)) if for_ == addr => at,
            _ => addr,
        }
    }

    /// Loopback allowed (IPv4 and IPv6): for a receiver on this machine, as the sandbox's.
    pub fn loopback() -> Vec<IpNet> {
        vec![
            IpNet::V4(Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).expect("a prefix")),
            IpNet::V6(Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).expect("a prefix")),
        ]
    }

    /// One entry of the flag: a CIDR, or an address (that address alone).
    pub fn parse_network(text: &str) -> Result<IpNet, BadNetwork> {
        let text = text.trim();
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(|net| net.trunc())
            .map_err(|_| BadNetwork(text.to_string()))
    }

    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether the operator was told to allow `ip` (in any of its forms).
    pub fn explicitly_allowed(&self, ip: IpAddr) -> bool {
        let canonical = canonical(ip);
        self.allowed
            .iter()
            .any(|net| net.contains(&ip) || canonical.is_some_and(|c| net.contains(&c)))
    }

    /// Whether a delivery may connect to `ip`: a public address, or an allowed one.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.explicitly_allowed(ip) || public(ip)
    }
}

/// The address `ip` stands for: the IPv4 address an IPv4-mapped, IPv4-compatible, 6to4 or
/// NAT64 address embeds, else `ip` itself; `None` for an IPv6 form whose embedded address
/// cannot be told (Teredo, local-use NAT64), which is refused.
fn canonical(ip: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(v6) = ip else {
        return Some(ip);
    };
    let s = v6.segments();
    let o = v6.octets();
    let embedded_low = || IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(IpAddr::V4(v4));
    }
    // ::a.b.c.d (IPv4-compatible, deprecated), but not :: and ::1 themselves.
    if s[..6] == [0; 6] && !(s[6] == 0 && (s[7] == 0 || s[7] == 1)) {
        return Some(embedded_low());
    }
    // 64:ff9b::/96, the well-known NAT64 prefix.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(embedded_low());
    }
    // 2002::/16, 6to4: the IPv4 address follows the prefix.
    if s[0] == 0x2002 {
        return Some(IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5])));
    }
    // 64:ff9b:1::/48 (local-use NAT64) and 2001::/32 (Teredo) hide where they lead.
    if (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) || (s[0] == 0x2001 && s[1] == 0) {
        return None;
    }
    Some(ip)
}

/// Whether `ip` (in whatever form) is a public unicast address.
fn public(ip: IpAddr) -> bool {
    match canonical(ip) {
        None => false,
        Some(IpAddr::V4(v4)) => !FORBIDDEN_V4.iter().any(|(a, len)| in_v4(v4, *a, *len)),
        Some(IpAddr::V6(v6)) => !FORBIDDEN_V6.iter().any(|(a, len)| in_v6(v6, *a, *len)),
    }
}

/// IPv4 ranges no delivery goes to (IANA special-purpose registry, and the rest of what is
/// not public unicast).
const FORBIDDEN_V4: [([u8; 4], u8); 16] = [
    ([0, 0, 0, 0], 8),          // "this network", the unspecified address
    ([10, 0, 0, 0], 8),         // private
    ([100, 64, 0, 0], 10),      // CGNAT (cloud metadata at 100.100.100.200)
    ([127, 0, 0, 0], 8),        // loopback
    ([169, 254, 0, 0], 16),     // link-local (cloud metadata at 169.254.169.254)
    ([172, 16, 0, 0], 12),      // private
    ([192, 0, 0, 0], 24),       // IETF protocol assignments
    ([192, 0, 2, 0], 24),       // documentation
    ([192, 88, 99, 0], 24),     // 6to4 relay anycast
    ([192, 168, 0, 0], 16),     // private
    ([198, 18, 0, 0], 15),      // benchmarking
    ([198, 51, 100, 0], 24),    // documentation
    ([203, 0, 113, 0], 24),     // documentation
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved
    ([255, 255, 255, 255], 32), // broadcast (inside the reserved range; said for clarity)
];

/// IPv6 ranges no delivery goes to (embedded IPv4 forms are judged by their IPv4 address).
const FORBIDDEN_V6: [(u128, u8); 12] = [
    (0, 128),                                        // unspecified
    (1, 128),                                        // loopback
    (0x0000_0000_0000_0000_ffff_0000_0000_0000, 96), // IPv4-translated (SIIT), any IPv4
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // IETF protocol assignments
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16), // SRv6 SIDs
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local (ULA)
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local (deprecated)
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == net & mask
}

/// Resolves names for the delivery client and keeps only the addresses it may connect to:
/// those [`EgressPolicy::permits`] or, for the plain-HTTP client (`allowed_only`), only those
/// the operator was told to allow. A name left without addresses fails as one that does not
/// resolve, in the same words.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    allowed_only: bool,
}

/// The one error of a refused or unresolvable name: it says no more than that.
#[derive(Debug, thiserror::Error)]
#[error("no permitted address")]
pub struct NoPermittedAddress;

impl GuardedResolver {
    pub fn new(policy: Arc<EgressPolicy>, allowed_only: bool) -> Self {
        Self {
            policy,
            allowed_only,
        }
    }

    /// Whether a connection to `ip` may be made by this resolver's client.
    pub fn accepts(&self, ip: IpAddr) -> bool {
        if self.allowed_only {
            self.policy.explicitly_allowed(ip)
        } else {
            self.policy.permits(ip)
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // The system's resolver, as the client's own would use, off the async threads.
            let resolved = tokio::task::spawn_blocking(move || {
                (host.as_str(), 0)
                    .to_socket_addrs()
                    .map(|addrs| addrs.collect::<Vec<SocketAddr>>())
            })
            .await
            .map_err(|_| NoPermittedAddress)?
            .map_err(|_| NoPermittedAddress)?;
            let permitted: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| this.accepts(addr.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(NoPermittedAddress) as _);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_in_every_form_are_refused() {
        let policy = EgressPolicy::public_only();
        for refused in [
            "169.254.169.254",
            "::ffff:a9fe:a9fe",
            "::ffff:169.254.169.254",
            "::ffff:0:7f00:1",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "64:ff9b:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100.100.100.200",
            "10.96.0.1",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "::",
            "172.16.0.1",
            "192.168.1.1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "198.18.0.1",
            "100::1",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused}");
        }
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80e::200e",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(policy.permits(ip(public)), "{public}");
        }
    }

    #[test]
    fn an_allowed_network_is_reached_in_any_form_and_nothing_beside_it() {
        let policy = EgressPolicy::allowing(vec![
            EgressPolicy::parse_network("10.20.0.0/16").unwrap(),
            EgressPolicy::parse_network("::1").unwrap(),
        ]);
        assert!(policy.permits(ip("10.20.3.4")));
        assert!(policy.permits(ip("::ffff:10.20.3.4")));
        assert!(policy.permits(ip("::1")));
        assert!(!policy.permits(ip("10.21.0.1")));
        assert!(!policy.permits(ip("127.0.0.1")));
        assert!(policy.explicitly_allowed(ip("10.20.0.9")));
        assert!(!policy.explicitly_allowed(ip("8.8.8.8")));
        assert!(EgressPolicy::parse_network("10.0.0.0/33").is_err());
        assert!(EgressPolicy::parse_network("example.com").is_err());
        assert_eq!(
            EgressPolicy::parse_network("10.1.2.3/8")
                .unwrap()
                .to_string(),
            "10.0.0.0/8"
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_like_one_that_does_not_resolve() {
        use reqwest::dns::Resolve;
        let guarded = GuardedResolver::new(Arc::new(EgressPolicy::public_only()), false);
        let loopback = guarded.resolve("localhost".parse().unwrap()).await;
        let missing = guarded.resolve("nowhere.invalid".parse().unwrap()).await;
        let (a, b) = (
            loopback.err().map(|e| e.to_string()),
            missing.err().map(|e| e.to_string()),
        );
        assert_eq!(a.as_deref(), Some("no permitted address"));
        assert_eq!(a, b);
        let allowed = GuardedResolver::new(
            Arc::new(EgressPolicy::allowing(EgressPolicy::loopback())),
            true,
        );
        let addrs: Vec<_> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
