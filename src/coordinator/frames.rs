//! The coordinator's metrics array of every node, in each view, encoded once per poll round:
//! a thousand `/api/system/ws` subscribers woken by the same round share one encoding (the
//! full array of 1,000 large nodes is 18 MB) instead of building one each.

use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;

use crate::serve::view::View;

/// The last encoding of each view, with the round it was built in.
#[derive(Debug, Default)]
pub struct RoundFrames {
    full: Slot,
    headline: Slot,
}

/// One view's encoding and its round.
#[derive(Debug, Default)]
struct Slot(Mutex<Option<(u64, Bytes)>>);

impl RoundFrames {
    /// The array of `view` for `round`: encoded by `encode` the first time it is asked for in
    /// that round, the same bytes after. Concurrent askers wait for the one encoding.
    pub fn get(&self, view: View, round: u64, encode: impl FnOnce() -> Bytes) -> Bytes {
        let slot = match view {
            View::Full => &self.full,
            View::Headline => &self.headline,
        };
        // A panic while encoding leaves at worst a stale entry, which the round check ignores.
        let mut slot = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some((built, bytes)) if *built == round => bytes.clone(),
            _ => {
                let bytes = encode();
                *slot = Some((round, bytes.clone()));
                bytes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn each_view_is_encoded_once_per_round() {
        let frames = RoundFrames::default();
        let calls = Cell::new(0);
        let encode = |text: &'static str| {
            calls.set(calls.get() + 1);
            Bytes::from_static(text.as_bytes())
        };
        assert_eq!(
            &frames.get(View::Full, 1, || encode("full 1"))[..],
            b"full 1"
        );
        assert_eq!(
            &frames.get(View::Full, 1, || encode("again"))[..],
            b"full 1"
        );
        assert_eq!(
            &frames.get(View::Headline, 1, || encode("headline 1"))[..],
            b"headline 1"
        );
        assert_eq!(calls.get(), 2);
        assert_eq!(
            &frames.get(View::Full, 2, || encode("full 2"))[..],
            b"full 2"
        );
        assert_eq!(calls.get(), 3);
    }
}
