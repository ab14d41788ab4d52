#!/usr/bin/env bash
# The Kotlin API on the JVM: the generated bindings, the idiomatic layer and the JVM chat app,
# tested with JUnit 4 against the real library, edge model and cloud (JvmChatTest drives the chat
# through its stdin). Expects the workspace built and HYBRIDFLOW_CLOUD_URL set (scripts/test.sh
# does both). Prints JUnit's summary ("OK (N tests)" or "Tests run: N,  Failures: M").
set -euo pipefail
source "$(dirname "$0")/env.sh"
classpath="$("$HYBRIDFLOW_ROOT/scripts/kotlin-build.sh")"
java -Djna.library.path="$CARGO_TARGET_DIR/release" -cp "$classpath" \
  org.junit.runner.JUnitCore dev.hybridflow.HybridFlowClientTest dev.hybridflow.JvmChatTest "$@"
