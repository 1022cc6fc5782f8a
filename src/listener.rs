//! Closing the shop's listener without resetting a connection.
//!
//! A listening socket closed with connections in its accept queue resets them. Their clients
//! had connected and sent their requests, so a balancer cannot tell them from requests the shop
//! failed: nginx answers a POST 502 rather than send it again. A replica behind Docker's DNS
//! takes new connections until it exits, so at the end of every drain some waited in the queue
//! (a shopper's 502 in CI's rolling update, and the SIGTERM test's "connection reset" under load).
//!
//! So before the server closes it, the socket stops taking new connections: a filter drops
//! every new SYN (the client sends it again a second later, by when the port refuses or is
//! gone, and a balancer tries another replica with the request unsent), while handshakes under
//! way complete; then the shop waits until the server has accepted every connection waiting.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use socket2::{SockFilter, Socket};

/// A classic BPF socket filter, run on each packet with the TCP header at offset 0: a segment
/// with SYN and without ACK (a new connection) is dropped, any other is kept.
const DROP_NEW_CONNECTIONS: [SockFilter; 5] = [
    // ldb [13]: the TCP flags.
    SockFilter::new(0x30, 0, 0, 13),
    // and #0x12: SYN and ACK.
    SockFilter::new(0x54, 0, 0, 0x12),
    // jeq #0x02: SYN alone? Then the next instruction, else the one after.
    SockFilter::new(0x15, 0, 1, 0x02),
    // ret #0: dropped.
    SockFilter::new(0x06, 0, 0, 0),
    // ret #-1: kept whole.
    SockFilter::new(0x06, 0, 0, u32::MAX),
];

/// The listening socket the server accepts from, through a descriptor of its own.
pub struct Listener {
    socket: Socket,
    port: u16,
}

impl Listener {
    pub fn of(listener: &TcpListener) -> std::io::Result<Self> {
        Ok(Self {
            socket: Socket::from(listener.try_clone()?),
            port: listener.local_addr()?.port(),
        })
    }

    /// Lets no new connection in, then waits (up to `within`) until none waits to be accepted.
    pub async fn refuse_new_connections(&self, within: Duration) {
        if let Err(err) = self.socket.attach_filter(&DROP_NEW_CONNECTIONS) {
            log::warn!(
                "The listener could not stop taking new connections ({err}); closing it may reset some."
            );
            return;
        }
        let started = Instant::now();
        // A handshake under way completes within a round trip: the queue must be seen empty
        // twice, 10 ms apart, after at least 20 ms.
        let mut empty = 0;
        while empty < 2 || started.elapsed() < Duration::from_millis(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match waiting_to_be_accepted(self.port) {
                Some(0) | None => empty += 1,
                Some(waiting) if started.elapsed() >= within => {
                    log::warn!(
                        "{waiting} connection(s) still wait to be accepted; closing anyway."
                    );
                    return;
                }
                Some(_) => empty = 0,
            }
        }
    }
}

/// Connections in the accept queue of the listening sockets on `port`, as the kernel reports
/// them (`/proc/net/tcp`: a listener's `rx_queue`); `None` where that cannot be read.
fn waiting_to_be_accepted(port: u16) -> Option<u64> {
    let mut waiting = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        waiting = Some(waiting.unwrap_or(0) + listening_queue(&text, port));
    }
    waiting
}

/// The accept queue lengths of the sockets listening on `port`, in a `/proc/net/tcp` table.
fn listening_queue(table: &str, port: u16) -> u64 {
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
            if !local.ends_with(&port) || *state != "0A" {
                return None;
            }
            u64::from_str_radix(queues.split_once(':')?.1, 16).ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::listening_queue;

    #[test]
    fn a_listeners_queue_is_read_from_its_line_and_no_other() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000007 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000005 00:00000000 00000000  1000        0 3 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(
            listening_queue(table, 8080),
            3,
            "the listener on 8080, not a connection"
        );
        assert_eq!(listening_queue(table, 8081), 5);
        assert_eq!(listening_queue(table, 8082), 0);
    }
}
