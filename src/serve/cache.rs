//! Each representation of the latest snapshot, encoded once: a thousand requests (or stream
//! subscribers) in one interval cost one serialization.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;

use super::prometheus::{self, Format, Shadowed};
use crate::model::wire::{headline_array_json, metrics_array_json, Info};
use crate::model::Snapshot;

/// Encoded responses keyed by snapshot sequence, one slot per representation.
#[derive(Default)]
pub struct EncodedCache {
    /// `/api/system/metrics` (and each SSE event).
    metrics: Slot,
    /// `/api/system/metrics?view=headline`.
    headline: Slot,
    /// `/api/system/info`.
    info: Slot,
    /// `/metrics` as Prometheus text.
    prometheus_text: Slot,
    /// `/metrics` as OpenMetrics.
    openmetrics: Slot,
    /// Textfile families already reported as left out of `/metrics` (each is reported once,
    /// not at every encoding); cleared if it ever grows large.
    reported: Mutex<HashSet<Shadowed>>,
}

impl EncodedCache {
    /// `[element]` of `snapshot` as JSON.
    pub fn metrics(&self, snapshot: &Snapshot) -> Result<Bytes, serde_json::Error> {
        self.metrics
            .get_or_encode(snapshot.sequence, || metrics_array_json([snapshot]))
    }

    /// `[headline]` of `snapshot` as JSON: the headline view of [`EncodedCache::metrics`].
    pub fn headline(&self, snapshot: &Snapshot) -> Result<Bytes, serde_json::Error> {
        self.headline.get_or_encode(snapshot.sequence, || {
            headline_array_json(&self.metrics(snapshot)?)
        })
    }

    /// The info object of `snapshot` as JSON.
    pub fn info(&self, snapshot: &Snapshot) -> Result<Bytes, serde_json::Error> {
        self.info.get_or_encode(snapshot.sequence, || {
            serde_json::to_vec(&Info::of(snapshot))
        })
    }

    /// `/metrics` of `snapshot` in `format`.
    pub fn prometheus(&self, snapshot: &Snapshot, format: Format) -> Bytes {
        let slot = match format {
            Format::Text => &self.prometheus_text,
            Format::OpenMetrics => &self.openmetrics,
        };
        let Ok(body) = slot.get_or_encode(snapshot.sequence, || {
            let (text, shadowed) = prometheus::encode_reporting(snapshot, format);
            self.report(shadowed);
            Ok::<_, std::convert::Infallible>(text.into_bytes())
        });
        body
    }

    /// Logs each family read from outside that `/metrics` left out, the first time only.
    fn report(&self, shadowed: Vec<Shadowed>) {
        if shadowed.is_empty() {
            return;
        }
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        if reported.len() > 1024 {
            reported.clear();
        }
        for s in shadowed {
            if !reported.contains(&s) {
                tracing::warn!(
                    "{} (read from {}) left out of /metrics: the monitor writes a family of that \
                     name itself",
                    s.family,
                    s.source
                );
                reported.insert(s);
            }
        }
    }
}

/// The bytes of one representation of one snapshot.
#[derive(Default)]
struct Slot(Mutex<Option<(u64, Bytes)>>);

impl Slot {
    /// The cached bytes for snapshot `sequence`, encoding them first if the slot holds another
    /// snapshot. Concurrent requests for a new snapshot wait for the one encoding rather than
    /// each doing it.
    fn get_or_encode<E>(
        &self,
        sequence: u64,
        encode: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Bytes, E> {
        // A panic while encoding leaves at worst a stale entry, which the sequence check ignores.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, bytes)) = slot.as_ref() {
            if *cached == sequence {
                return Ok(bytes.clone());
            }
        }
        let bytes = Bytes::from(encode()?);
        *slot = Some((sequence, bytes.clone()));
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn slot_encodes_once_per_sequence() {
        let slot = Slot::default();
        let calls = Cell::new(0);
        let encode = |text: &'static str| {
            calls.set(calls.get() + 1);
            Ok::<_, std::convert::Infallible>(text.as_bytes().to_vec())
        };
        let Ok(first) = slot.get_or_encode(1, || encode("one"));
        let Ok(again) = slot.get_or_encode(1, || encode("other"));
        assert_eq!((&first[..], &again[..]), (&b"one"[..], &b"one"[..]));
        assert_eq!(calls.get(), 1);
        let Ok(next) = slot.get_or_encode(2, || encode("two"));
        assert_eq!(&next[..], b"two");
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn slot_keeps_nothing_when_encoding_fails() {
        let slot = Slot::default();
        assert!(slot.get_or_encode(1, || Err("broken")).is_err());
        let encoded: Result<Bytes, &str> = slot.get_or_encode(1, || Ok(b"ok".to_vec()));
        assert_eq!(&encoded.unwrap()[..], b"ok");
    }
}
