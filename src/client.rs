//! Who is asking: the client's address, for login limits and logs.
//!
//! The peer's address, unless the peer is a proxy listed in `TRUSTED_PROXIES`: then the
//! `X-Forwarded-For` chain is read from the right (the entry the trusted proxy itself added)
//! past every trusted hop, and the first address that is not a trusted proxy is the client. A
//! client cannot pose as another by sending its own `X-Forwarded-For`: entries left of the
//! first untrusted one are never read, and from an untrusted peer the header is ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

pub fn client_address(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(resolve(
        peer,
        req.headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok()),
        trusted,
    ))
}

fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = forwarded
        .flat_map(|value| value.split(','))
        .map(|hop| hop.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
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
}
