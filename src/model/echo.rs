//! User input quoted back in error messages, cut short: an answer must not grow with what a
//! client sent (a 10 KB `node_id` once came back twice in a 400 body).

use std::borrow::Cow;

/// The most characters of user input an error message quotes, the cut marker included.
pub const ECHO_MAX_CHARS: usize = 64;

/// What marks a cut.
const CUT_MARKER: char = '…';

/// `input` as an error message may quote it: whole when it has at most [`ECHO_MAX_CHARS`]
/// characters, else its first characters and `…`, [`ECHO_MAX_CHARS`] in all. Cuts between
/// characters, never inside one.
pub fn echo(input: &str) -> Cow<'_, str> {
    match input.char_indices().nth(ECHO_MAX_CHARS) {
        None => Cow::Borrowed(input),
        Some(_) => {
            let keep = input
                .char_indices()
                .nth(ECHO_MAX_CHARS - 1)
                .map_or(input.len(), |(at, _)| at);
            let mut cut = String::with_capacity(keep + CUT_MARKER.len_utf8());
            cut.push_str(&input[..keep]);
            cut.push(CUT_MARKER);
            Cow::Owned(cut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_quoted_whole() {
        assert_eq!(echo(""), "");
        assert_eq!(echo("worker-01"), "worker-01");
        let exact = "x".repeat(ECHO_MAX_CHARS);
        assert!(matches!(echo(&exact), Cow::Borrowed(s) if s == exact));
    }

    #[test]
    fn long_input_is_cut_with_a_marker() {
        let long = "x".repeat(10_000);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), ECHO_MAX_CHARS);
        assert_eq!(cut, format!("{}…", "x".repeat(ECHO_MAX_CHARS - 1)));
        assert_eq!(echo(&"y".repeat(ECHO_MAX_CHARS + 1)).chars().count(), 64);
    }

    #[test]
    fn cuts_fall_between_characters() {
        // Multi-byte characters on both sides of the cut: byte slicing would panic here.
        let input = "é".repeat(100) + "🙂";
        let cut = echo(&input);
        assert_eq!(cut.chars().count(), ECHO_MAX_CHARS);
        assert!(cut.starts_with("éé"));
        assert!(cut.ends_with('…'));
        let emoji = "🙂".repeat(65);
        assert_eq!(echo(&emoji), format!("{}…", "🙂".repeat(63)));
    }
}
