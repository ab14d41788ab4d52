//! From token bytes to the text deltas a caller sees: llama.cpp hands out raw bytes per token (a
//! character may span tokens) and leaves stop strings to the caller, so text that could still turn
//! into a stop string is held back until it cannot.

/// Turns per-token byte pieces into UTF-8 text, holding back an incomplete character.
#[derive(Debug, Default)]
pub(crate) struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    /// The text completed by `piece` (possibly empty). Invalid bytes become U+FFFD.
    pub(crate) fn push(&mut self, piece: &[u8]) -> String {
        self.pending.extend_from_slice(piece);
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(valid) => {
                    text.push_str(valid);
                    self.pending.clear();
                    return text;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    text.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked prefix"));
                    match error.error_len() {
                        // An incomplete character at the end: wait for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return text;
                        }
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

/// What [`StopScanner::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// Text that can be shown (may be empty: it is held back while it could start a stop string).
    Text(String),
    /// A stop string was reached: the text before it, then the generation ends.
    Stopped(String),
}

/// Finds the caller's stop strings in streamed text, the way OpenAI-compatible servers do: the
/// stop string itself and anything after it are never shown.
#[derive(Debug)]
pub(crate) struct StopScanner {
    stops: Vec<String>,
    held: String,
}

impl StopScanner {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    pub(crate) fn push(&mut self, text: &str) -> Scanned {
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|stop| self.held.find(stop.as_str())).min() {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Scanned::Stopped(before);
        }
        let keep = self.longest_suffix_starting_a_stop();
        let shown = self.held[..self.held.len() - keep].to_owned();
        self.held.drain(..self.held.len() - keep);
        Scanned::Text(shown)
    }

    /// Text held back at the end of a generation that did not stop on a stop string.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    fn longest_suffix_starting_a_stop(&self) -> usize {
        let held = self.held.as_str();
        (1..=held.len())
            .rev()
            .filter(|&len| held.is_char_boundary(held.len() - len))
            .find(|&len| {
                let suffix = &held[held.len() - len..];
                self.stops.iter().any(|stop| stop.len() > len && stop.starts_with(suffix))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_tokens_is_emitted_once_complete() {
        let mut pieces = Utf8Pieces::default();
        let euro = "€".as_bytes();
        assert_eq!(pieces.push(&euro[..1]), "");
        assert_eq!(pieces.push(&euro[1..2]), "");
        assert_eq!(pieces.push(&[euro[2], b'!']), "€!");
        assert_eq!(pieces.push(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn a_stop_string_split_across_tokens_is_never_shown() {
        let mut scanner = StopScanner::new(&["</answer>".into(), "\n\n".into()]);
        assert_eq!(scanner.push("The sum is 4"), Scanned::Text("The sum is 4".into()));
        assert_eq!(scanner.push(" </ans"), Scanned::Text(" ".into()));
        assert_eq!(scanner.push("wer> and more"), Scanned::Stopped("".into()));
        let mut scanner = StopScanner::new(&["\n\n".into()]);
        assert_eq!(scanner.push("a\n"), Scanned::Text("a".into()));
        assert_eq!(scanner.push("b"), Scanned::Text("\nb".into()));
        assert_eq!(scanner.push("c\n\nd"), Scanned::Stopped("c".into()));
    }

    #[test]
    fn held_back_text_is_released_when_the_generation_ends() {
        let mut scanner = StopScanner::new(&["END".into()]);
        assert_eq!(scanner.push("done E"), Scanned::Text("done ".into()));
        assert_eq!(scanner.finish(), "E");
        let mut none = StopScanner::new(&[]);
        assert_eq!(none.push("anything"), Scanned::Text("anything".into()));
    }
}
