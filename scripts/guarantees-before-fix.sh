#!/usr/bin/env bash
# Measures how often the code before the cloud guard (commit 202c566) broke the guarantees: the
# generated-case harness adapted to that API (tests/before-fix/guarantees_before_fix.rs) runs in a
# worktree of that commit, as a crate of its own on its core without the edge engine (own target
# directory, so the main build is untouched). Prints the harness's summary and first violations.
set -euo pipefail
source "$(dirname "$0")/env.sh"
worktree="$HYBRIDFLOW_CACHE/before-fix-202c566"
cd "$HYBRIDFLOW_ROOT"
[[ -d "$worktree" ]] || git worktree add --detach "$worktree" 202c566 >&2
harness="$worktree/before-fix-harness"
mkdir -p "$harness/tests" "$harness/src"
cat > "$harness/Cargo.toml" <<'TOML'
[package]
name = "before-fix-harness"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
hybridflow-core = { path = "../core", default-features = false }
tokio = { version = "1.49", features = ["full"] }
tokio-util = "0.7"
futures = "0.3"
serde_json = "1"
TOML
echo "// The harness is in tests/." > "$harness/src/lib.rs"
cp tests/before-fix/guarantees_before_fix.rs "$harness/tests/guarantees_before_fix.rs"
cp tests/src/generated_cases.rs "$harness/tests/generated_cases.rs"
cd "$harness"
CARGO_TARGET_DIR="$HYBRIDFLOW_CACHE/target-before-fix" cargo test --release --test guarantees_before_fix -- --nocapture 2>&1 | grep -E "^guarantees:|^  violations by kind|^error" | head -3
