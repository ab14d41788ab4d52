#!/usr/bin/env bash
# The test cloud: llama.cpp's OpenAI-compatible llama-server with Qwen2.5-Coder-0.5B-Instruct Q4_K_M
# on 127.0.0.1. Usage: scripts/cloud-server.sh start|stop|status. `start` is idempotent and waits
# until the server answers; prints the base URL to use (also HYBRIDFLOW_CLOUD_URL's default).
# HYBRIDFLOW_CLOUD_CPUS=1 pins the server to CPU 1 with one thread, so that a benchmark pinned to
# CPU 0 sees a "phone" and a "data centre" that do not share cores.
# HYBRIDFLOW_CLOUD_SIZE=1.5b serves the benchmark cloud (Qwen2.5-Coder-1.5B, fetched by
# `cargo xtask fetch-models --with-benchmark-cloud`) on port 8089 instead.
set -euo pipefail
source "$(dirname "$0")/env.sh"

size="${HYBRIDFLOW_CLOUD_SIZE:-0.5b}"
case "$size" in
  0.5b) default_port=8088 ;;
  1.5b) default_port=8089 ;;
  *) log "HYBRIDFLOW_CLOUD_SIZE must be 0.5b or 1.5b, not $size"; exit 2 ;;
esac
port="${HYBRIDFLOW_CLOUD_PORT:-$default_port}"
url="http://127.0.0.1:$port/v1"
run_dir="$HYBRIDFLOW_CACHE/run"
pid_file="$run_dir/llama-server-$port.pid"
log_file="$run_dir/llama-server-$port.log"
alias_name="qwen2.5-coder-$size-instruct"
model="$HYBRIDFLOW_MODELS/$alias_name-q4_k_m/$alias_name-q4_k_m.gguf"

healthy() {
  python3 - "$port" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2)
except Exception:
    sys.exit(1)
PY
}

running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running && healthy; then echo "$url"; exit 0; fi
    [[ -f "$model" ]] || { log "missing $model: run scripts/setup.sh"; exit 1; }
    mkdir -p "$run_dir"
    # --parallel 2: two concurrent requests (the scheduler runs cloud subtasks in parallel).
    pin=(); threads="$(nproc)"
    if [[ -n "${HYBRIDFLOW_CLOUD_CPUS:-}" ]]; then
      pin=(taskset -c "$HYBRIDFLOW_CLOUD_CPUS"); threads="$(taskset -c "$HYBRIDFLOW_CLOUD_CPUS" nproc)"
    fi
    setsid "${pin[@]}" "$LLAMA_CPP_BIN/llama-server" -m "$model" --host 127.0.0.1 --port "$port" \
      --alias "$alias_name" -c 8192 --parallel 2 -t "$threads" --metrics \
      >"$log_file" 2>&1 </dev/null &
    echo $! >"$pid_file"
    for _ in $(seq 1 240); do
      if healthy; then log "cloud server up at $url (log: $log_file)"; echo "$url"; exit 0; fi
      running || { log "llama-server exited; see $log_file"; tail -20 "$log_file" >&2; exit 1; }
      sleep 0.5
    done
    log "llama-server did not become healthy in 120 s; see $log_file"; exit 1
    ;;
  stop)
    if running; then kill "$(cat "$pid_file")"; fi
    rm -f "$pid_file"
    ;;
  status)
    if running && healthy; then echo "up: $url"; else echo "down"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
