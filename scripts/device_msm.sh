#!/usr/bin/env bash
# GPU MSM vs arkworks on a GPU machine (see /work/shared/device/README.md).
#
#   scripts/device_msm.sh prepare   # here: release-build examples/msm_device,
#                                   # stage it in .devrun/ and the Vulkan loader in .gl/
#   scripts/device_msm.sh run       # on the device (carry .gl and .devrun): prints the
#                                   # adapter first, then the table; full log in $OUT
#
# The device call, in one go:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
#   export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
#   bash scripts/device_msm.sh run
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-run}" in
prepare)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    # Worktrees sharing one target dir share the crate's artifact names; a
    # fresh mtime makes cargo rebuild the library from this checkout.
    touch src/msm/gpu/mod.rs
    cargo build --release --example msm_device
    mkdir -p .devrun
    cp "$CARGO_TARGET_DIR/release/examples/msm_device" .devrun/msm_device
    grep -qx '/.devrun/' .git/info/exclude 2>/dev/null || echo /.devrun/ >>"$(git rev-parse --git-path info/exclude)"
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>"$(git rev-parse --git-path info/exclude)"
    if ! ls .gl/*.deb >/dev/null 2>&1; then
        mkdir -p .gl /tmp/amd64/partial
        o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
        # shellcheck disable=SC2086
        apt-get $o update >/dev/null && (cd .gl && apt-get $o download libvulkan1)
    fi
    du -sh .devrun .gl
    ;;
run)
    OUT="${OUT:-/tmp/msm-device-out}"
    mkdir -p "$OUT"
    if ! [ -x .devrun/msm_device ]; then
        echo "missing .devrun/msm_device: run 'scripts/device_msm.sh prepare' first" >&2
        exit 1
    fi
    if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    (nvidia-smi -L || true) | tee "$OUT/gpu.txt"
    lscpu | grep -E 'Model name|^CPU\(s\)' | tee "$OUT/cpu.txt"
    # The binary prints the adapter wgpu chose first: numbers from llvmpipe or a
    # CPU fallback say nothing about the GPU.
    RUST_LOG="${RUST_LOG:-warn}" timeout "${MSM_TIMEOUT:-480}" .devrun/msm_device "${@:2}" 2>&1 | tee "$OUT/msm_device.log"
    ;;
*)
    echo "usage: $0 prepare|run [log2 sizes...]" >&2
    exit 2
    ;;
esac
