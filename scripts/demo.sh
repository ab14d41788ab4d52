#!/usr/bin/env bash
# The main job: set up (idempotent), then answer a question with HybridFlow.
# Usage: scripts/demo.sh ["question"]
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$HYBRIDFLOW_ROOT/scripts/setup.sh"

question="${1:-A train leaves at 3 pm and travels 120 km at 60 km/h. When does it arrive?}"
exec "$CARGO_TARGET_DIR/release/hybridflow-chat" "$question"
