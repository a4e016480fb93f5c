//! Resolves a `--discover-dns` name to all its addresses (A and AAAA) with hickory-resolver: through
//! the system's configuration (/etc/resolv.conf's servers, search domains and ndots; /etc/hosts —
//! what a pod is set up for), or — with `--dns-server` — by asking that one server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;

/// How long one query to `--dns-server` may take (hickory tries twice); the system's
/// configuration brings its own (`options timeout:`/`attempts:`).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a name could not be resolved. Hickory's error is boxed: at over 100 bytes it would
/// make every `Result` here that large.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No resolver could be set up (no /etc/resolv.conf, or one without a `nameserver`).
    #[error("resolving {name}: the system's resolver configuration: {source}")]
    Config {
        name: String,
        #[source]
        source: Box<NetError>,
    },
    /// A query failed (timeout, server failure, unreadable answer). A name without addresses is
    /// not an error: it resolves to none.
    #[error("resolving {name} ({record_type}) at {}: {source}", server_text(.server))]
    Query {
        name: String,
        record_type: RecordType,
        /// `--dns-server`, or `None` for the system's resolvers.
        server: Option<SocketAddr>,
        #[source]
        source: Box<NetError>,
    },
}

fn server_text(server: &Option<SocketAddr>) -> String {
    server.map_or_else(|| "the system's resolvers".to_string(), |s| s.to_string())
}

/// Every address of `name` (deduplicated, sorted): from `server` when given, else through the
/// system's configuration. A name without address records (NXDOMAIN, or neither A nor AAAA) has
/// none; a failed query of either type is an error, so the caller keeps what it knew before
/// rather than dropping one family's agents.
pub async fn resolve(name: &str, server: Option<SocketAddr>) -> Result<Vec<IpAddr>, DnsError> {
    // An address is its own answer, as getaddrinfo has it.
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip.to_canonical()]);
    }
    let resolver = resolver(name, server)?;
    // Two lookups rather than hickory's `lookup_ip`, which answers with one family when the
    // other's query fails, and so would drop that family's agents on a lost datagram.
    let (v4, v6) = tokio::join!(
        addresses(&resolver, name, server, RecordType::A),
        addresses(&resolver, name, server, RecordType::AAAA),
    );
    let mut all = v4?;
    all.extend(v6?);
    all.sort();
    all.dedup();
    Ok(all)
}

/// A resolver for one resolution, without a cache. Built each time, so a changed
/// /etc/resolv.conf or /etc/hosts counts from the next resolution (glibc rereads them too), and
/// no answer outlives it whatever its TTL: an address the name stopped listing is gone at the
/// next `--dns-interval` (the interval is the cache). `cache_size` 0 on top, so that a resolver
/// kept longer one day would not start serving cached answers unnoticed.
fn resolver(name: &str, server: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let config_error = |source| DnsError::Config {
        name: name.to_string(),
        source: Box::new(source),
    };
    let mut builder = match server {
        None => TokioResolver::builder_tokio().map_err(config_error)?,
        Some(server) => {
            // UDP first, TCP when the answer is truncated; hickory sends from a random port, with
            // a random id, and takes only an answer from `server` that repeats our question.
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .map(|mut connection| {
                    connection.port = server.port();
                    connection
                })
                .into();
            // It is the only server: its NXDOMAIN is the answer, there is no one else to ask.
            let trust_negative_responses = true;
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                server.ip(),
                trust_negative_responses,
                connections,
            )]);
            let mut builder =
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            let options = builder.options_mut();
            options.timeout = QUERY_TIMEOUT;
            // The server asked is the only source: not /etc/hosts either.
            options.use_hosts_file = ResolveHosts::Never;
            builder
        }
    };
    builder.options_mut().cache_size = 0;
    builder.build().map_err(config_error)
}

/// The addresses of one record type; none when the name has no such records.
async fn addresses(
    resolver: &TokioResolver,
    name: &str,
    server: Option<SocketAddr>,
    record_type: RecordType,
) -> Result<Vec<IpAddr>, DnsError> {
    match resolver.lookup(name, record_type).await {
        // The answers may hold the CNAMEs followed on the way: only addresses count.
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| record.data.ip_addr())
            .map(|ip| ip.to_canonical())
            .collect()),
        Err(e) if e.is_no_records_found() => Ok(Vec::new()),
        Err(source) => Err(DnsError::Query {
            name: name.to_string(),
            record_type,
            server,
            source: Box::new(source),
        }),
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA};
    use hickory_proto::rr::{Name, RData, Record};
    use tokio::net::UdpSocket;

    use super::*;

    /// Where a reply leaves from.
    enum Sender {
        /// The server's own socket (address and port asked).
        Server,
        /// Another socket on the same host: a spoofer that saw the query.
        Elsewhere,
    }

    /// A DNS server on loopback that sends, for each query, the replies `replies` makes.
    async fn serve(
        replies: impl Fn(&Message) -> Vec<(Sender, Message)> + Send + 'static,
    ) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let elsewhere = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
                let Ok(query) = Message::from_vec(&buffer[..n]) else {
                    continue;
                };
                for (sender, reply) in replies(&query) {
                    let sender = match sender {
                        Sender::Server => &socket,
                        Sender::Elsewhere => &elsewhere,
                    };
                    // The resolver may be gone by the time the last one leaves.
                    let _ = sender.send_to(&reply.to_vec().unwrap(), peer).await;
                }
            }
        });
        addr
    }

    /// The reply to `query` with `code`: its question, and those of `ips` of the type asked.
    fn reply(query: &Message, code: ResponseCode, ips: &[IpAddr]) -> Message {
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.response_code = code;
        reply.queries = query.queries.clone();
        for question in &query.queries {
            for ip in ips {
                let data = match *ip {
                    IpAddr::V4(ip) => RData::A(A(ip)),
                    IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
                };
                if data.record_type() == question.query_type() {
                    reply.add_answer(Record::from_rdata(question.name().clone(), 30, data));
                }
            }
        }
        reply
    }

    fn ips(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn every_address_of_both_types_is_found() {
        let records = ips(&["10.0.0.2", "10.0.0.1", "fd00::1", "::ffff:10.0.0.1"]);
        let server =
            serve(move |q| vec![(Sender::Server, reply(q, ResponseCode::NoError, &records))]).await;
        assert_eq!(
            resolve("agents.test", Some(server)).await.unwrap(),
            ips(&["10.0.0.1", "10.0.0.2", "fd00::1"]),
            "sorted, IPv4-mapped addresses as IPv4, without duplicates"
        );
    }

    #[tokio::test]
    async fn a_name_without_addresses_has_none_but_a_failure_is_an_error() {
        let nxdomain =
            serve(|q| vec![(Sender::Server, reply(q, ResponseCode::NXDomain, &[]))]).await;
        assert_eq!(
            resolve("gone.test", Some(nxdomain)).await.unwrap(),
            Vec::<IpAddr>::new()
        );

        let failing =
            serve(|q| vec![(Sender::Server, reply(q, ResponseCode::ServFail, &[]))]).await;
        let error = resolve("agents.test", Some(failing)).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("agents.test") && text.contains(&failing.to_string()),
            "names the name and the server: {text}"
        );
    }

    #[tokio::test]
    async fn only_the_answer_to_our_question_from_the_server_asked_counts() {
        let genuine = ips(&["10.0.0.1"]);
        let forged = ips(&["10.6.6.6"]);
        let server = serve(move |q| {
            let mut other_id = reply(q, ResponseCode::NoError, &forged);
            other_id.metadata.id = q.metadata.id.wrapping_add(1);
            let mut elsewhere = q.clone();
            for question in &mut elsewhere.queries {
                question.set_name(Name::from_ascii("elsewhere.test.").unwrap());
            }
            let other_question = reply(&elsewhere, ResponseCode::NoError, &forged);
            // The forgeries arrive first: taken, they would be the answer.
            vec![
                (Sender::Elsewhere, reply(q, ResponseCode::NoError, &forged)),
                (Sender::Server, other_id),
                (Sender::Server, other_question),
                (Sender::Server, reply(q, ResponseCode::NoError, &genuine)),
            ]
        })
        .await;
        assert_eq!(
            resolve("agents.test", Some(server)).await.unwrap(),
            ips(&["10.0.0.1"])
        );
    }

    #[tokio::test]
    async fn the_system_resolver_knows_localhost() {
        let addresses = resolve("localhost", None).await.unwrap();
        assert!(addresses.contains(&[127, 0, 0, 1].into()), "{addresses:?}");
    }

    #[tokio::test]
    async fn an_address_is_its_own_answer() {
        assert_eq!(
            resolve("10.0.0.7", Some("127.0.0.1:9".parse().unwrap()))
                .await
                .unwrap(),
            ips(&["10.0.0.7"])
        );
    }
}
