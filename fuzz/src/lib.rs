//! Fuzzing HybridFlow's parsers of model and network output and its configuration decoder.
//! The properties live in `checks.rs`, which the regression test replays on the corpus.

pub mod checks;
