//! Node ids: the key of every API, checked once where they come in (flags, queries, registrations,
//! agents' answers).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::echo;

/// The longest node id (a DNS name's limit).
pub const MAX_LEN: usize = 253;

/// A checked node id: 1–253 ASCII letters, digits, `-`, `_` or `.`, so it is safe in URLs,
/// Prometheus labels, file names and log lines as it is. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Arc<str>);

/// Why a text is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-253 characters of letters, digits, '-', '_' or '.'")]
pub struct InvalidNodeId;

/// Why a `node_id=a,b` list is not one: its first bad id, quoted cut short ([`echo`]) in the
/// message, which may go back to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{:?}: {InvalidNodeId}", echo(.id))]
pub struct InvalidNodeIdList<'a> {
    /// The first id that is not one, as sent.
    pub id: &'a str,
}

impl NodeId {
    /// `text` as a node id, if it is one.
    pub fn parse(text: &str) -> Result<Self, InvalidNodeId> {
        Self::check(text)?;
        Ok(Self(text.into()))
    }

    /// Whether `text` is a well-formed node id, without keeping it.
    pub fn check(text: &str) -> Result<(), InvalidNodeId> {
        let valid = !text.is_empty()
            && text.len() <= MAX_LEN
            && text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if valid {
            Ok(())
        } else {
            Err(InvalidNodeId)
        }
    }

    /// A node id made from a host name: characters a node id may not hold become `-`, and the
    /// name is cut to the limit; an empty result is `localhost`.
    pub fn from_hostname(hostname: &str) -> Self {
        let cleaned: String = hostname
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(MAX_LEN)
            .collect();
        match cleaned.is_empty() {
            true => Self("localhost".into()),
            false => Self(cleaned.into()),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ids of a `node_id=a,b` query parameter, each checked; the error names the first bad
    /// one.
    pub fn parse_list(text: &str) -> Result<Vec<&str>, InvalidNodeIdList<'_>> {
        text.split(',')
            .map(|id| {
                Self::check(id)
                    .map(|()| id)
                    .map_err(|_| InvalidNodeIdList { id })
            })
            .collect()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for NodeId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for NodeId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl TryFrom<String> for NodeId {
    type Error = InvalidNodeId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::check(&text)?;
        Ok(Self(text.into()))
    }
}

impl std::str::FromStr for NodeId {
    type Err = InvalidNodeId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> Self {
        id.0.to_string()
    }
}

impl From<NodeId> for Arc<str> {
    fn from(id: NodeId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["a", "worker-01", "w_02.x", &"x".repeat(253)] {
            assert_eq!(NodeId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a/b", "ü", "a,b", &"x".repeat(254)] {
            assert_eq!(NodeId::parse(bad), Err(InvalidNodeId), "{bad:?}");
        }
        assert!(serde_json::from_str::<NodeId>("\"a/b\"").is_err());
        assert_eq!(
            serde_json::to_string(&NodeId::parse("n1").unwrap()).unwrap(),
            "\"n1\""
        );
    }

    #[test]
    fn lists_are_comma_separated_and_each_checked() {
        assert_eq!(NodeId::parse_list("a").unwrap(), ["a"]);
        assert_eq!(
            NodeId::parse_list("w-01,w_02.x").unwrap(),
            ["w-01", "w_02.x"]
        );
        for bad in ["", ",", "a,", "a b", "a/b", "ü"] {
            let err = NodeId::parse_list(bad).unwrap_err().to_string();
            assert!(err.contains("must be"), "{bad:?}: {err}");
        }
        assert_eq!(NodeId::parse_list("a,b/c,d").unwrap_err().id, "b/c");
    }

    #[test]
    fn a_long_bad_id_is_quoted_cut_short() {
        let long = format!("ok,{}", "x/".repeat(5_000));
        let err = NodeId::parse_list(&long).unwrap_err();
        assert_eq!(err.id.len(), 10_000, "the error keeps the id as sent");
        let message = err.to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.starts_with("\"x/x/"), "{message}");
        assert!(message.contains("…\": must be"), "{message}");
    }

    #[test]
    fn host_names_become_ids() {
        assert_eq!(NodeId::from_hostname("gpu-01.lab").as_str(), "gpu-01.lab");
        assert_eq!(NodeId::from_hostname("my host").as_str(), "my-host");
        assert_eq!(NodeId::from_hostname("").as_str(), "localhost");
        assert_eq!(NodeId::from_hostname(&"h".repeat(300)).as_str().len(), 253);
    }
}
