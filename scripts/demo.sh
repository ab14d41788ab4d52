#!/usr/bin/env bash
# The main job: set up (idempotent), start the test cloud, and answer a question with HybridFlow,
# showing the plan and where each subtask ran. Usage: scripts/demo.sh ["question"]
# Set HYBRIDFLOW_CLOUD_URL (and HYBRIDFLOW_API_KEY) to use your own endpoint instead.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$HYBRIDFLOW_ROOT/scripts/setup.sh"

if [[ -z "${HYBRIDFLOW_CLOUD_URL:-}" ]]; then
  HYBRIDFLOW_CLOUD_URL="$("$HYBRIDFLOW_ROOT/scripts/cloud-server.sh" start)"
  export HYBRIDFLOW_CLOUD_URL
  trap '"$HYBRIDFLOW_ROOT/scripts/cloud-server.sh" stop' EXIT
fi
question="${1:-A shop sells pens at \$2 each and notebooks at \$5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?}"
"$CARGO_TARGET_DIR/release/hybridflow-chat" "$question"
