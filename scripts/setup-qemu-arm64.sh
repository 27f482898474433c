#!/usr/bin/env bash
# Prepares the `qemu-arm64` device: an aarch64 userland that qemu-user runs on this x86 host.
#
#   .cache/qemu-arm64/sysroot/     Debian bookworm arm64: python3.11 and the C/C++ runtime
#                                  libraries, unpacked from the .debs (no dpkg database, no chroot)
#   .cache/qemu-arm64/site/        aarch64 wheels: numpy, ai-edge-litert, apache-tvm (+ffi);
#                                  TVM's compiler library is removed: a board needs the runtime only
#   .cache/qemu-arm64/bin/python3  runs that aarch64 python under qemu with the site folder
#   .cache/qemu-arm64/READY        written last; edgec reads it to say the device is reachable
#
# Why not debootstrap: its second stage runs arm64 programs inside a chroot, which needs
# binfmt_misc (not available in containers like CI's). Why not `dpkg --add-architecture`:
# arm64 python3 would replace the host's. A private apt state under .cache/ fetches arm64
# packages without touching the host's package database; `dpkg-deb -x` unpacks them.
#
# Needs: qemu-user (qemu-aarch64), apt-get, dpkg-deb, network access to Debian and PyPI.
# Usage: scripts/setup-qemu-arm64.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.cache/qemu-arm64"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
# Must match the python3.11 that bookworm ships, and the wheels' cp311 tag.
PYVER=3.11
WHEELS=(numpy ml_dtypes "ai-edge-litert" "apache-tvm" "apache-tvm-ffi" psutil cloudpickle tornado)
# python3.11 itself, and the shared libraries the wheels link against (libstdc++, libgomp).
DEBS=(python3.11-minimal libpython3.11-stdlib libstdc++6 libgomp1)

if [ "${1:-}" = "--force" ]; then rm -rf "$DEST"; fi
if [ -f "$DEST/READY" ]; then echo "qemu-arm64: ready at $DEST"; exit 0; fi
command -v qemu-aarch64 >/dev/null || { echo "qemu-arm64: qemu-aarch64 missing; run scripts/install-system-deps.sh (Debian package qemu-user)" >&2; exit 1; }

APT="$DEST/apt"
SYSROOT="$DEST/sysroot"
mkdir -p "$APT/state/lists/partial" "$APT/cache/archives/partial" "$APT/etc/sources.list.d" "$APT/etc/preferences.d" "$APT/debs" "$SYSROOT"
touch "$APT/state/status"   # an empty dpkg database: apt resolves every dependency from scratch
cat > "$APT/etc/sources.list" <<'EOF'
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
apt_opts=(
  -o "Dir::Etc::SourceList=$APT/etc/sources.list"
  -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d"
  -o "Dir::Etc::Preferences=$APT/etc/preferences"
  -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
  -o "Dir::State=$APT/state"
  -o "Dir::State::status=$APT/state/status"
  -o "Dir::Cache=$APT/cache"
  -o "APT::Architecture=arm64"
  -o "APT::Architectures::=arm64"
  -o "Debug::NoLocking=1"
)

echo "qemu-arm64: fetching Debian arm64 package lists"
apt-get "${apt_opts[@]}" -qq update

# Every package the wanted ones depend on (Depends/PreDepends only), minus virtual names.
mapfile -t pkgs < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances "${DEBS[@]}" \
  | grep -v '^ ' | grep -v '^<' | sed 's/:arm64$//' | sort -u)
echo "qemu-arm64: downloading ${#pkgs[@]} arm64 packages"
(cd "$APT/debs" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}")

echo "qemu-arm64: unpacking into $SYSROOT"
for deb in "$APT/debs"/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
# Debian's python looks for /usr/bin/python3.11 and its stdlib under the sysroot's /usr/lib,
# which qemu's -L prefix maps; a plain `python3` name is convenient for people.
ln -sf "python$PYVER" "$SYSROOT/usr/bin/python3"

echo "qemu-arm64: installing aarch64 wheels (${WHEELS[*]})"
platforms=()
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
"$PY" -m pip install -q --no-compile --disable-pip-version-check --target "$DEST/site" \
  --only-binary=:all: --implementation cp --python-version "$PYVER" "${platforms[@]}" \
  --platform linux_aarch64 --upgrade "${WHEELS[@]}"

# 240 MB that a runtime never loads; TVM_USE_RUNTIME_LIB=1 (in the wrapper) skips looking for it.
rm -f "$DEST/site/tvm/lib/libtvm_compiler.so"

# qemu-user 7.2 passes the host's x86 /proc/cpuinfo through, and the cpuinfo library in
# LiteRT's optimized kernels and XNNPACK crashes parsing it (BUILTIN_REF alone runs). qemu
# resolves absolute paths in the -L prefix first, so an ARM cpuinfo there is what they read:
# a Cortex-A76-like core per host CPU (the features qemu's default `max` CPU implements).
mkdir -p "$SYSROOT/proc"
: > "$SYSROOT/proc/cpuinfo"
for ((i = 0; i < $(getconf _NPROCESSORS_CONF); i++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i" >> "$SYSROOT/proc/cpuinfo"
done

mkdir -p "$DEST/bin"
cat > "$DEST/bin/python3" <<EOF
#!/bin/sh
# aarch64 python $PYVER under qemu-user (written by scripts/setup-qemu-arm64.sh).
# EDGEC_AGENT_PYTHON: what the agent re-executes for child interpreters (no binfmt here).
D="\$(cd "\$(dirname "\$0")/.." && pwd)"
export PYTHONPATH="\$D/site" TVM_USE_RUNTIME_LIB=1 EDGEC_AGENT_PYTHON="\$D/bin/python3"
exec qemu-aarch64 -L "\$D/sysroot" "\$D/sysroot/usr/bin/python$PYVER" "\$@"
EOF
chmod +x "$DEST/bin/python3"

echo "qemu-arm64: checking the interpreter under qemu"
"$DEST/bin/python3" -c "import platform, numpy; print('qemu-arm64:', platform.machine(), 'python', platform.python_version(), 'numpy', numpy.__version__)"
date -u +%FT%TZ > "$DEST/READY"
echo "qemu-arm64: ready at $DEST"
