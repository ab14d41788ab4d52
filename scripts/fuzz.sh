#!/usr/bin/env bash
# Fuzzes the parsers of model and network output and the configuration decoder with libFuzzer
# (cargo-fuzz, nightly), each for a bounded time, growing the corpus committed in fuzz/corpus.
#   scripts/fuzz.sh [seconds-per-target]      (default 120)
# A crash is saved by libFuzzer under fuzz/artifacts/<target>/; copy it into fuzz/corpus/<target>/
# so the regression test (tests/tests/fuzz_corpus.rs) replays it on every test run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HYBRIDFLOW_ROOT/fuzz"
seconds="${1:-120}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
export CARGO_TARGET_DIR="$HYBRIDFLOW_CACHE/fuzz-target"
for target in plan_parser cloud_response client_config; do
  log "fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 2>&1 \
    | grep -E '^(Done|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|thread .* panicked)|stat::number_of_executed_units' || true
  cargo +nightly fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1 || true
done
