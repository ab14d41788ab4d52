#!/usr/bin/env bash
# Swift 6 on this Debian bookworm host: a Debian trixie chroot with Debian's swiftlang (Swift
# binaries need glibc >= 2.38), cached outside the clone. Idempotent.
#   scripts/swift-chroot.sh setup          create it (debootstrap + swiftlang; ~3 minutes, ~2.7 GB)
#   scripts/swift-chroot.sh run <cmd...>   run a command inside it, with /proc, /sys, /dev, the
#                                          repository, the cache and /tmp mounted at the same paths
set -euo pipefail
source "$(dirname "$0")/env.sh"
root="$HYBRIDFLOW_CACHE/swift-trixie"
ready="$root/.hybridflow-swift-ready"

setup() {
  [[ -f "$ready" ]] && return 0
  ensure_apt_packages debootstrap
  if [[ ! -x "$root/usr/bin/apt-get" ]]; then
    log "creating the Debian trixie chroot for Swift in $root"
    # Never delete through a bind mount of the repository or the caches.
    if mount | grep -q " $root/"; then log "mounts remain under $root; unmount them first"; exit 1; fi
    rm -rf "$root"
    debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >&2
  fi
  log "installing swiftlang in the chroot"
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c 'apt-get update -qq && apt-get install -y -qq swiftlang ca-certificates >/dev/null'
  # Swift finds its libraries through /proc/self/exe: check it with the mounts in place.
  in_chroot swift --version >&2 || { log "swiftlang did not install"; exit 1; }
  touch "$ready"
}

run() {
  setup
  in_chroot "$@"
}

mounted=()
cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done; mounted=(); }
trap cleanup EXIT

in_chroot() {
  mount_at() { # <host path>
    mkdir -p "$root$1"
    mountpoint -q "$root$1" || { mount --bind "$1" "$root$1"; mounted+=("$root$1"); }
  }
  mkdir -p "$root/proc" "$root/sys" "$root/dev"
  mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc"; mounted+=("$root/proc"); }
  mount_at /sys
  mount_at /dev
  mount_at /tmp
  mount_at "$HYBRIDFLOW_ROOT"
  mount_at "$CARGO_TARGET_DIR"
  mount_at "$HYBRIDFLOW_MODELS"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  local status=0
  chroot "$root" /usr/bin/env HOME=/root PATH=/usr/bin:/bin "$@" || status=$?
  cleanup
  return "$status"
}

case "${1:-}" in
  setup) setup ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 setup | run <command...>" >&2; exit 2 ;;
esac
