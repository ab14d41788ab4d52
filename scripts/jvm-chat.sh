#!/usr/bin/env bash
# The Kotlin JVM chat (sample-apps/jvm-chat) on the default edge model and the test cloud (or
# $HYBRIDFLOW_CLOUD_URL). Needs the workspace built (scripts/setup.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HYBRIDFLOW_ROOT"
classpath="$(scripts/kotlin-build.sh)"
if [[ -z "${HYBRIDFLOW_CLOUD_URL:-}" ]]; then
  HYBRIDFLOW_CLOUD_URL="$(scripts/cloud-server.sh start)"
  export HYBRIDFLOW_CLOUD_URL
fi
exec java -Djna.library.path="$CARGO_TARGET_DIR/release" -cp "$classpath" dev.hybridflow.chat.MainKt
