//! `shop healthcheck`: the image's health check, by the binary itself, so the runtime image needs
//! no curl. It asks the running shop's `/readyz` (database and session store reachable) on
//! `HOST`:`PORT` as the container sees them, and exits 0 only on a 200.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The whole check, connection to answer, is given this long.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Where the shop listening on `host`:`port` answers from inside its own container: a wildcard
/// address (`0.0.0.0`, `::`) is reached on loopback.
fn target(host: &str, port: u16) -> SocketAddr {
    let ip = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    SocketAddr::new(ip, port)
}

/// Whether the shop at `address` answers `/readyz` with 200.
pub fn is_ready(address: SocketAddr) -> Result<bool, std::io::Error> {
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(
        b"GET /readyz HTTP/1.0\r\nHost: localhost\r\nUser-Agent: shop-healthcheck\r\n\r\n",
    )?;
    // "HTTP/1.x 200 " or "HTTP/1.x 200\r"
    let mut head = [0_u8; 13];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200" && matches!(head[12], b' ' | b'\r'))
}

/// Runs the check against `HOST` and `PORT` from the environment (the image's defaults, else
/// the shop's) and returns the process's exit code.
pub fn run() -> i32 {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = match std::env::var("PORT").map(|p| p.trim().parse::<u16>()) {
        Err(_) => 8080,
        Ok(Ok(port)) => port,
        Ok(Err(_)) => {
            eprintln!("healthcheck: PORT is not a port number");
            return 2;
        }
    };
    let address = target(&host, port);
    match is_ready(address) {
        Ok(true) => 0,
        Ok(false) => {
            eprintln!("healthcheck: {address}/readyz did not answer 200");
            1
        }
        Err(err) => {
            eprintln!("healthcheck: {address}/readyz could not be asked: {err}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers one request with `status_line`.
    fn answering(status_line: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0_u8; 512];
            let read = stream.read(&mut request).unwrap();
            assert!(request[..read].starts_with(b"GET /readyz "));
            stream
                .write_all(format!("{status_line}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .unwrap();
        });
        address
    }

    #[test]
    fn ready_only_on_a_200() {
        assert!(is_ready(answering("HTTP/1.1 200 OK")).unwrap());
        assert!(!is_ready(answering("HTTP/1.1 503 Service Unavailable")).unwrap());
        assert!(!is_ready(answering("HTTP/1.1 2000 Nonsense")).unwrap());
    }

    #[test]
    fn nothing_listening_is_an_error() {
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(is_ready(address).is_err());
    }

    #[test]
    fn a_wildcard_listener_is_asked_on_loopback() {
        assert_eq!(target("0.0.0.0", 8080), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target("::", 80), "127.0.0.1:80".parse().unwrap());
        assert_eq!(target("10.1.2.3", 80), "10.1.2.3:80".parse().unwrap());
        assert_eq!(target("[::1]", 80), "[::1]:80".parse().unwrap());
    }
}
