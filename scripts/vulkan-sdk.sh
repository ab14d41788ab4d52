#!/usr/bin/env bash
# What the ggml engine's Vulkan backend needs to build and run here, idempotent:
# - Debian bookworm's Vulkan loader, glslc (shader compiler), libclang (bindgen) and Mesa's lavapipe
#   (a conformant software Vulkan device, so the Vulkan path runs on a machine without a GPU);
# - Vulkan-Hpp and SPIR-V headers from Debian trixie (1.4.309), unpacked into the cache: ggml-vulkan
#   needs VK_EXT_layer_settings, newer than bookworm's 1.3.239 headers. Pinned by sha256.
# Prints nothing; env.sh points VULKAN_SDK at the unpacked headers.
set -euo pipefail
source "$(dirname "$0")/env.sh"

ensure_apt_packages glslc libclang-dev libvulkan1 libvulkan-dev mesa-vulkan-drivers

ready="$VULKAN_SDK/.hybridflow-ready"
[[ -f "$ready" ]] && exit 0
mirror=http://deb.debian.org/debian/pool/main
packages=(
  "v/vulkan-loader/libvulkan-dev_1.4.309.0-1_amd64.deb 8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a"
  "s/spirv-headers/spirv-headers_1.6.1+1.4.309.0-1_all.deb dc18db866d63680351c40ac6b6bece34cb52da64a7799ce1cc4f16f6bff4d064"
)
root="$(dirname "$VULKAN_SDK")"
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
for entry in "${packages[@]}"; do
  read -r path sha <<<"$entry"
  deb="$download/$(basename "$path")"
  log "fetching $(basename "$path") (Debian trixie)"
  curl -fsSL -o "$deb" "$mirror/$path"
  echo "$sha  $deb" | sha256sum -c --quiet - || { log "sha256 mismatch for $path"; exit 1; }
  dpkg-deb -x "$deb" "$root"
done
touch "$ready"
