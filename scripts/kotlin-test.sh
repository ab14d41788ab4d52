#!/usr/bin/env bash
# The Kotlin API on the JVM: compiles the generated bindings, the idiomatic layer and the tests
# with kotlinc, and runs them with JUnit 4 against the real library, edge model and cloud.
# The JVM sample chat is compiled with them and driven by JvmChatTest.
# Expects the workspace built and HYBRIDFLOW_CLOUD_URL set (scripts/test.sh does both).
# Prints JUnit's summary ("OK (N tests)" or "Tests run: N,  Failures: M").
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HYBRIDFLOW_ROOT"

ensure_apt_packages libjna-java junit4
kotlin_home="$(ensure_kotlin)"
build="$HYBRIDFLOW_CACHE/build/kotlin-jvm"
rm -rf "$build" && mkdir -p "$build/generated"
scripts/bindings.sh jvm "$build/generated"

classpath="/usr/share/java/jna.jar:$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar:/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar"
log "compiling the Kotlin bindings and tests"
"$kotlin_home/bin/kotlinc" -nowarn -jvm-target 17 -cp "$classpath" -d "$build/classes" \
  "$build/generated" bindings/kotlin/src sample-apps/jvm-chat/src bindings/kotlin/test 2>&1 | grep -v '^warning: ' >&2 || true
[[ -d "$build/classes/dev/hybridflow" ]] || { log "kotlinc failed"; exit 1; }

export HYBRIDFLOW_EDGE_MODEL="${HYBRIDFLOW_EDGE_MODEL:-$HYBRIDFLOW_MODELS/smollm2-135m-instruct-q8_0/SmolLM2-135M-Instruct.Q8_0.gguf}"
java -Djna.library.path="$CARGO_TARGET_DIR/release" \
  -cp "$build/classes:$classpath:$kotlin_home/lib/kotlin-stdlib.jar" \
  org.junit.runner.JUnitCore dev.hybridflow.HybridFlowClientTest dev.hybridflow.JvmChatTest "$@"
