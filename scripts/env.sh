# Shared settings for the scripts: caches live outside the clone so CI and sessions reuse them.
export HYBRIDFLOW_CACHE="${HYBRIDFLOW_CACHE:-$HOME/.cache/hybridflow}"
export HYBRIDFLOW_MODELS="${HYBRIDFLOW_MODELS:-$HYBRIDFLOW_CACHE/models}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HYBRIDFLOW_CACHE/target}"
# The default edge model (`catalog::DEFAULT_EDGE_MODEL`) for the Kotlin, Swift and JVM-chat runs.
export HYBRIDFLOW_EDGE_MODEL="${HYBRIDFLOW_EDGE_MODEL:-$HYBRIDFLOW_MODELS/smollm2-135m-instruct-q8_0/SmolLM2-135M-Instruct.Q8_0.gguf}"
HYBRIDFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HYBRIDFLOW_ROOT
# Vulkan-Hpp/SPIR-V headers newer than bookworm's, for the ggml engine (scripts/vulkan-sdk.sh).
export VULKAN_SDK="${VULKAN_SDK:-$HYBRIDFLOW_CACHE/vulkan-sdk-1.4.309/usr}"
LLAMA_CPP_BIN="$HYBRIDFLOW_CACHE/llama.cpp-0.3.36/bin"
export LLAMA_CPP_BIN

log() { printf '[hybridflow] %s\n' "$*" >&2; }

# Installs Debian packages that are missing (root on these machines; sudo elsewhere).
ensure_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Adds a Rust target to the toolchain if it is missing (offline once added).
ensure_rust_target() {
  rustup target list --installed | grep -qx "$1" || rustup target add "$1" >&2
}

# One release build of every target (library, apps, xtask, tests) with one feature set, so
# mistral.rs compiles once per machine and `cargo test --release` reuses it.
build_workspace() {
  log "building the workspace (release; a first build takes ~30 minutes on 2 cores)"
  # llama-cpp-sys-2's build script links ggml's libraries beside the binaries and panics on a
  # dangling link an earlier build left there (its existence check follows the link), which
  # happens when it is rebuilt, e.g. after a dependency changes: remove such links first.
  find "$CARGO_TARGET_DIR/release" -maxdepth 2 -xtype l -name 'lib*.so*' -delete 2>/dev/null || true
  (cd "$HYBRIDFLOW_ROOT" && cargo build --release --locked --workspace --all-targets)
}

# The Kotlin compiler (npm `kotlin-compiler`) in the cache; prints its home directory.
ensure_kotlin() {
  local home="$HYBRIDFLOW_CACHE/kotlin/node_modules/kotlin-compiler"
  if [[ ! -x "$home/bin/kotlinc" ]]; then
    log "installing kotlinc 2.4.20 from npm"
    mkdir -p "$HYBRIDFLOW_CACHE/kotlin"
    (cd "$HYBRIDFLOW_CACHE/kotlin" && npm install --no-audit --no-fund --silent kotlin-compiler@2.4.20 >&2)
  fi
  printf '%s\n' "$home"
}
