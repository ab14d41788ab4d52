#!/usr/bin/env bash
# Compiles the Kotlin for the JVM: freshly generated bindings, the idiomatic layer, the JVM chat
# app and the tests, with kotlinc from npm, into $HYBRIDFLOW_CACHE/build/kotlin-jvm/classes.
# Prints the runtime classpath (classes, JNA, Kotlin stdlib, coroutines, JUnit).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HYBRIDFLOW_ROOT"

ensure_apt_packages libjna-java junit4
kotlin_home="$(ensure_kotlin)"
build="$HYBRIDFLOW_CACHE/build/kotlin-jvm"
rm -rf "$build" && mkdir -p "$build/generated"
scripts/bindings.sh jvm "$build/generated"

classpath="/usr/share/java/jna.jar:$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar:/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar"
log "compiling the Kotlin bindings, the JVM chat and the tests"
"$kotlin_home/bin/kotlinc" -nowarn -jvm-target 17 -cp "$classpath" -d "$build/classes" \
  "$build/generated" bindings/kotlin/src sample-apps/jvm-chat/src bindings/kotlin/test 2>&1 | grep -v '^warning: ' >&2 || true
[[ -d "$build/classes/dev/hybridflow" ]] || { log "kotlinc failed"; exit 1; }
echo "$build/classes:$classpath:$kotlin_home/lib/kotlin-stdlib.jar"
