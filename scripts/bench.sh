#!/usr/bin/env bash
# The edge–cloud benchmark on the realistic pair, each side on its own core:
#   edge  Qwen2.5-Coder-0.5B-Instruct Q4_K_M through the SDK's mistral.rs engine, pinned to CPU 0
#   cloud Qwen2.5-Coder-1.5B-Instruct Q4_K_M on llama-server, pinned to CPU 1
# Usage: scripts/bench.sh <dataset> <questions> [strategies, comma-separated] [extra xtask bench args]
# Results and the call record go to docs/bench/<dataset>/ and resume: run it again to go on.
# HYBRIDFLOW_BENCH_SPLIT=train runs the train split instead (data for training the routers;
# never evaluated on), into docs/bench/<dataset>-train/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
dataset=${1:?dataset: gsm8k, mmlu-stem, livebench-reasoning or aime24-25}
questions=${2:?number of questions}
strategies=${3:-}
shift $(( $# < 3 ? $# : 3 ))

"$HYBRIDFLOW_ROOT/scripts/setup.sh"
"$CARGO_TARGET_DIR/release/xtask" fetch-models --with-benchmark-cloud
export HYBRIDFLOW_CLOUD_SIZE=1.5b HYBRIDFLOW_CLOUD_CPUS=1
url="$("$HYBRIDFLOW_ROOT/scripts/cloud-server.sh" start)"
trap '"$HYBRIDFLOW_ROOT/scripts/cloud-server.sh" stop' EXIT
split="${HYBRIDFLOW_BENCH_SPLIT:-dev}"
out="$HYBRIDFLOW_ROOT/docs/bench/$dataset"
[[ "$split" == dev ]] || out="$out-$split"
mkdir -p "$out"
args=(bench --dataset "$dataset" --questions "$questions" --cloud-url "$url" --cloud-model qwen2.5-coder-1.5b-instruct
      --edge-model qwen2.5-coder-0.5b-instruct-q4_k_m/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
      --split "$split" --out "$out/results.jsonl" --calls "$out/calls.jsonl")
[[ -n "$strategies" ]] && args+=(--strategies "$strategies")
cd "$HYBRIDFLOW_ROOT"
started=$(date +%s)
taskset -c 0 "$CARGO_TARGET_DIR/release/xtask" "${args[@]}" "$@"
log "benchmark ran $(( $(date +%s) - started )) s of wall time"
