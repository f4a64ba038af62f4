//! The network side of the reachability checks: one DNS query over UDP or TCP, and a TCP connect.

use super::dns::{self, DnsError, Record};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// DNS transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// A query that did not get a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("no answer from {server} over {transport:?} within {timeout:?}")]
    Timeout { server: SocketAddr, transport: Transport, timeout: Duration },
    /// The socket failed (refused, unreachable, reset).
    #[error("{transport:?} to {server}: {source}")]
    Io {
        server: SocketAddr,
        transport: Transport,
        #[source]
        source: std::io::Error,
    },
    /// The answer was not usable.
    #[error("answer from {server} over {transport:?}: {source}")]
    Dns {
        server: SocketAddr,
        transport: Transport,
        #[source]
        source: DnsError,
    },
}

/// Asks `server` for `name`'s records of `record_type`.
pub async fn lookup(
    server: SocketAddr,
    transport: Transport,
    name: &str,
    record_type: u16,
    timeout: Duration,
) -> Result<Vec<Record>, ProbeError> {
    let id = query_id(name);
    let dns_error = |source| ProbeError::Dns { server, transport, source };
    let io_error = |source| ProbeError::Io { server, transport, source };
    let packet = dns::query(id, name, record_type).map_err(dns_error)?;
    let exchange = async {
        match transport {
            Transport::Udp => {
                let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                    .parse()
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bind address"))?;
                let socket = UdpSocket::bind(bind).await?;
                socket.connect(server).await?;
                socket.send(&packet).await?;
                let mut buffer = vec![0u8; 4096];
                let read = socket.recv(&mut buffer).await?;
                buffer.truncate(read);
                Ok::<_, std::io::Error>(buffer)
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(server).await?;
                let length = u16::try_from(packet.len())
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
                stream.write_all(&length.to_be_bytes()).await?;
                stream.write_all(&packet).await?;
                let mut prefix = [0u8; 2];
                stream.read_exact(&mut prefix).await?;
                let mut buffer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                stream.read_exact(&mut buffer).await?;
                Ok(buffer)
            }
        }
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout { server, transport, timeout })?
        .map_err(io_error)?;
    dns::parse(id, &response).map_err(dns_error)
}

/// A query id derived from the name and the clock: distinct per query, no randomness crate needed.
fn query_id(name: &str) -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    name.bytes().fold(nanos, |hash, byte| hash.rotate_left(5) ^ u32::from(byte)) as u16
}

/// Whether a TCP connection to `address` opens within `timeout`.
pub async fn tcp_open(address: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("{address}: {err}")),
        Err(_) => Err(format!("{address}: no answer within {timeout:?}")),
    }
}
