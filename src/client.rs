//! Who is asking: the client's address, for login limits and logs.
//!
//! The peer's address, unless the peer is a proxy listed in `TRUSTED_PROXIES`: then the
//! `X-Forwarded-For` chain is read from the right (the entry the trusted proxy itself added)
//! past every trusted hop, and the first hop that is not a trusted proxy is the client. A client
//! cannot pose as another by sending its own `X-Forwarded-For`: entries left of the first
//! untrusted one are never read, whatever they hold, and from an untrusted peer the header is
//! ignored. A hop may carry a port (`198.51.100.7:4711`, `[2001:db8::1]:4711`) or brackets; a hop
//! that names no address at all (`unknown`, a proxy's obfuscated name) in the client's place
//! leaves the last trusted hop as the client, since nothing nearer is known.
//!
//! Addresses are made canonical (an IPv4-mapped IPv6 address is its IPv4 address), and the login
//! limits count an IPv6 client by its network (`IPV6_CLIENT_PREFIX`, /64 by default): one host
//! is routinely given a whole /64, and counting its 2^64 addresses apart would give it as many
//! budgets.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The prefix length an IPv6 client is counted by unless configured: a /64 is what one host or
/// one home network is usually given.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// How the shop tells its clients apart.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
    /// The IPv6 prefix length a client is counted by (`IPV6_CLIENT_PREFIX`).
    pub ipv6_prefix: u8,
    /// The wider IPv6 networks a failed sign-in is counted in as well
    /// (`IPV6_NETWORK_PREFIXES`), widest last.
    pub wider_prefixes: Vec<u8>,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            wider_prefixes: vec![56, 48],
        }
    }
}

impl Clients {
    /// The client's address, canonical.
    pub fn address(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        Some(resolve(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .filter_map(|value| value.to_str().ok()),
            &self.trusted_proxies,
        ))
    }

    /// What a login limit counts the client as: its address, or its IPv6 network.
    pub fn bucket(&self, address: IpAddr) -> IpNet {
        let prefix = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => self.ipv6_prefix,
        };
        IpNet::new(address, prefix)
            .map(|net| net.trunc())
            .unwrap_or_else(|_| IpNet::from(address))
    }
}

impl Clients {
    /// The client's bucket, then, for IPv6, each wider network it is in: what a failed
    /// sign-in is counted in, so that one /48 is not 65,536 budgets.
    pub fn networks(&self, address: IpAddr) -> Vec<IpNet> {
        let bucket = self.bucket(address);
        let mut networks = vec![bucket];
        if address.is_ipv6() {
            networks.extend(
                self.wider_prefixes
                    .iter()
                    .filter(|&&prefix| prefix < bucket.prefix_len())
                    .filter_map(|&prefix| IpNet::new(address, prefix).ok())
                    .map(|net| net.trunc()),
            );
        }
        networks
    }
}

fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(hop) = parse_hop(hop) else {
            // No address in the client's place: the nearest trusted hop is all that is known.
            break;
        };
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry as an address: bare, with a port, or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let address = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            hop.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = nets(&["10.0.0.0/8"]);
        let client = resolve(ip("192.0.2.7"), ["203.0.113.9"].into_iter(), &trusted);
        assert_eq!(client, ip("192.0.2.7"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_from_the_right() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client claimed 1.2.3.4 itself; the proxy appended the address it saw.
        let chain = ["1.2.3.4, 198.51.100.20", "10.1.1.1"];
        let client = resolve(ip("10.0.0.2"), chain.into_iter(), &trusted);
        assert_eq!(client, ip("198.51.100.20"));
    }

    #[test]
    fn a_trusted_peer_without_a_usable_header_is_the_client() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), ["not an address"].into_iter(), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn whatever_a_client_writes_left_of_its_own_address_is_never_read() {
        let trusted = nets(&["127.0.0.1/32"]);
        for chain in [
            "junk, 198.51.100.7",
            "unknown, 198.51.100.7",
            "[2001:db8::1], 198.51.100.7",
            "1.2.3.4:80, ::ffff:198.51.100.7",
            ", , 198.51.100.7",
        ] {
            assert_eq!(
                resolve(ip("127.0.0.1"), [chain].into_iter(), &trusted),
                ip("198.51.100.7"),
                "{chain}"
            );
        }
    }

    #[test]
    fn hops_with_ports_and_brackets_are_read() {
        let trusted = nets(&["127.0.0.1/32"]);
        for (chain, client) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            (" 2001:db8::2 ", "2001:db8::2"),
        ] {
            assert_eq!(
                resolve(ip("127.0.0.1"), [chain].into_iter(), &trusted),
                ip(client),
                "{chain}"
            );
        }
    }

    #[test]
    fn an_unknown_hop_in_the_clients_place_leaves_the_nearest_trusted_hop() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let client = resolve(ip("127.0.0.1"), ["unknown, 10.1.2.3"].into_iter(), &trusted);
        assert_eq!(client, ip("10.1.2.3"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("::ffff:198.51.100.7"), std::iter::empty(), &trusted),
            ip("198.51.100.7")
        );
        // A proxy that listens on IPv6 is matched as the IPv4 address it is.
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), ["192.0.2.1"].into_iter(), &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_network_and_an_ipv4_one_by_its_address() {
        let clients = Clients::default();
        let a = clients.bucket(ip("2001:db8:1:2:aaaa::1"));
        let b = clients.bucket(ip("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_ne!(a, clients.bucket(ip("2001:db8:1:3::1")));
        assert_eq!(
            clients.bucket(ip("198.51.100.7")).to_string(),
            "198.51.100.7/32"
        );
        let wide = Clients {
            ipv6_prefix: 48,
            ..Clients::default()
        };
        assert_eq!(
            wide.bucket(ip("2001:db8:1:3::1")),
            wide.bucket(ip("2001:db8:1:2::1"))
        );
    }

    #[test]
    fn an_ipv6_client_is_also_counted_in_its_wider_networks_and_an_ipv4_one_is_not() {
        let clients = Clients::default();
        let networks: Vec<String> = clients
            .networks(ip("2001:db8:1:2:aaaa::1"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            networks,
            ["2001:db8:1:2::/64", "2001:db8:1::/56", "2001:db8:1::/48"]
        );
        assert_eq!(clients.networks(ip("198.51.100.7")).len(), 1);
    }
}
