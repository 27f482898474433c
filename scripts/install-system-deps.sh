#!/usr/bin/env bash
# Installs the Debian packages edgec's builds and tests need, when they are missing:
#   gcc/g++-aarch64-linux-gnu  cross-compile TVM's arm64 modules
#   file                       tests check what an artifact was built for
#   qemu-user                  run arm64 programs on an x86_64 host (correctness only)
set -euo pipefail

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v file >/dev/null || need+=(file)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "edgec: missing Debian packages (${need[*]}) and not root; install them with apt-get" >&2
    exit 1
  fi
fi
echo "edgec: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
