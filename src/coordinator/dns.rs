//! Resolves a name to all its addresses: through the system resolver (`getaddrinfo`: /etc/hosts,
//! search domains, what Kubernetes pods are set up for), or — with `--dns-server` — by asking one
//! DNS server directly for A and AAAA records (UDP with EDNS0, TCP when truncated). The direct
//! query is a few dozen lines of RFC 1035, far less than a resolver library, and is all the
//! coordinator needs: one name, its address records, no caching (the interval is the cache).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// EDNS0 UDP payload size we advertise: room for about 250 A records before TCP is needed.
const UDP_PAYLOAD: u16 = 4096;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("resolving {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("resolving {name} at {server}: {reason}")]
    Answer {
        name: String,
        server: SocketAddr,
        reason: String,
    },
    #[error(
        "resolving {name} at {server}: no answer within {}",
        humantime::format_duration(QUERY_TIMEOUT)
    )]
    Timeout { name: String, server: SocketAddr },
}

/// Every address of `name` (deduplicated, sorted): from `server` when given, else from the
/// system resolver. A name that does not exist is an empty list with a server, an error without.
pub async fn resolve(name: &str, server: Option<SocketAddr>) -> Result<Vec<IpAddr>, DnsError> {
    let mut addresses = match server {
        None => tokio::net::lookup_host((name, 0))
            .await
            .map_err(|source| DnsError::Io {
                name: name.to_string(),
                source,
            })?
            .map(|a| a.ip().to_canonical())
            .collect(),
        Some(server) => {
            let mut all = query(name, server, TYPE_A).await?;
            all.extend(query(name, server, TYPE_AAAA).await?);
            all
        }
    };
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

/// The addresses of one record type from `server`.
async fn query(name: &str, server: SocketAddr, qtype: u16) -> Result<Vec<IpAddr>, DnsError> {
    let fail = |reason: String| DnsError::Answer {
        name: name.to_string(),
        server,
        reason,
    };
    let io = |source| DnsError::Io {
        name: name.to_string(),
        source,
    };
    let id = query_id();
    let message = encode_query(id, name, qtype).map_err(fail)?;
    let exchange = async {
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(server).await.map_err(io)?;
        socket.send(&message).await.map_err(io)?;
        let mut buffer = vec![0; usize::from(UDP_PAYLOAD)];
        loop {
            let n = socket.recv(&mut buffer).await.map_err(io)?;
            // Ignore stray datagrams: only our id answers our question.
            if n >= 2 && u16::from_be_bytes([buffer[0], buffer[1]]) == id {
                return Ok(buffer[..n].to_vec());
            }
        }
    };
    let answer = tokio::time::timeout(QUERY_TIMEOUT, exchange)
        .await
        .map_err(|_| DnsError::Timeout {
            name: name.to_string(),
            server,
        })??;
    match decode_answer(&answer, id, qtype).map_err(fail)? {
        Decoded::Addresses(addresses) => Ok(addresses),
        Decoded::Truncated => {
            let answer = tokio::time::timeout(QUERY_TIMEOUT, query_tcp(server, &message))
                .await
                .map_err(|_| DnsError::Timeout {
                    name: name.to_string(),
                    server,
                })?
                .map_err(io)?;
            match decode_answer(&answer, id, qtype).map_err(fail)? {
                Decoded::Addresses(addresses) => Ok(addresses),
                Decoded::Truncated => Err(fail("truncated over TCP".into())),
            }
        }
    }
}

/// The same question over TCP (two-byte length prefix), for answers too large for UDP.
async fn query_tcp(server: SocketAddr, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let length =
        u16::try_from(message.len()).map_err(|_| std::io::Error::other("query too long"))?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(message).await?;
    let mut length = [0; 2];
    stream.read_exact(&mut length).await?;
    let mut answer = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// An id that differs between queries (not a security measure: the server is configured).
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ (nanos >> 16)) as u16
}

/// A standard recursive query for `name`/`qtype`, with an EDNS0 OPT record.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // QD=1 AN=0 NS=0 AR=1
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root name, type 41, class = UDP payload size, TTL 0, no data.
    m.push(0);
    m.extend_from_slice(&TYPE_OPT.to_be_bytes());
    m.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(m)
}

/// What an answer said.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// The records of the asked type (none for NXDOMAIN or no data).
    Addresses(Vec<IpAddr>),
    /// The TC bit: ask again over TCP.
    Truncated,
}

/// Reads the A or AAAA records of an answer to query `id`.
pub fn decode_answer(m: &[u8], id: u16, qtype: u16) -> Result<Decoded, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        m.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "answer cut short".to_string())
    };
    if u16_at(0)? != id {
        return Err("answer to another query".into());
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err("not an answer".into());
    }
    if flags & 0x0200 != 0 {
        return Ok(Decoded::Truncated);
    }
    match flags & 0x000f {
        0 => {}
        3 => return Ok(Decoded::Addresses(Vec::new())), // NXDOMAIN
        rcode => return Err(format!("server error (rcode {rcode})")),
    }
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(m, at)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(m, at)?;
        let rtype = u16_at(at)?;
        let class = u16_at(at + 2)?;
        let length = usize::from(u16_at(at + 8)?);
        let data = m.get(at + 10..at + 10 + length).ok_or("answer cut short")?;
        at += 10 + length;
        if class != CLASS_IN || rtype != qtype {
            continue; // CNAMEs and the like: the addresses follow as their own records.
        }
        match (rtype, data.len()) {
            (TYPE_A, 4) => addresses.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (TYPE_AAAA, 16) => {
                let mut octets = [0; 16];
                octets.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(octets)).to_canonical());
            }
            _ => return Err(format!("malformed record of type {rtype}")),
        }
    }
    Ok(Decoded::Addresses(addresses))
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(m: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let length = *m.get(at).ok_or("answer cut short")?;
        match length {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return Err("malformed name".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `query` with `records` (type, data) and a compressed name pointer.
    fn answer(query: &[u8], flags: u16, records: &[(u16, &[u8])]) -> Vec<u8> {
        // The question ends before the OPT record (11 bytes).
        let question = &query[12..query.len() - 11];
        let mut m = query[..2].to_vec();
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&(records.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(question);
        for (rtype, data) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn a_records_are_read() {
        let q = encode_query(7, "agents.monitoring.svc", TYPE_A).unwrap();
        let cname = [6, b'o', b't', b'h', b'e', b'r', 0];
        let m = answer(
            &q,
            0x8180,
            &[
                (5, &cname),
                (TYPE_A, &[127, 0, 0, 2]),
                (TYPE_A, &[127, 0, 0, 3]),
            ],
        );
        assert_eq!(
            decode_answer(&m, 7, TYPE_A).unwrap(),
            Decoded::Addresses(vec![[127, 0, 0, 2].into(), [127, 0, 0, 3].into()])
        );
        assert!(decode_answer(&m, 8, TYPE_A).is_err());
        assert!(decode_answer(&m[..m.len() - 1], 7, TYPE_A).is_err());
    }

    #[test]
    fn flags_are_honoured() {
        let q = encode_query(1, "x", TYPE_AAAA).unwrap();
        assert_eq!(
            decode_answer(&answer(&q, 0x8183, &[]), 1, TYPE_AAAA).unwrap(),
            Decoded::Addresses(vec![])
        );
        assert_eq!(
            decode_answer(&answer(&q, 0x8380, &[]), 1, TYPE_AAAA).unwrap(),
            Decoded::Truncated
        );
        assert!(decode_answer(&answer(&q, 0x8182, &[]), 1, TYPE_AAAA).is_err());
        assert!(
            decode_answer(&q, 1, TYPE_AAAA).is_err(),
            "a query is not an answer"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_err());
        assert!(encode_query(1, "agents.", TYPE_A).is_ok());
    }
}
