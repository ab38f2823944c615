#!/usr/bin/env bash
# GPU NTT (the quotient's transforms) vs our CPU plan and ark-poly on a GPU machine (see docs/DEVICE.md).
#
#   scripts/device_msm.sh prepare   # here: release-build examples/ntt_device,
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
# shellcheck source=scripts/device_common.sh
source scripts/device_common.sh

case "${1:-run}" in
prepare)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    # Worktrees sharing one target dir share the crate's artifact names; a
    # fresh mtime makes cargo rebuild the library from this checkout.
    touch src/ntt/gpu.rs
    cargo build --release --example ntt_device
    mkdir -p .devrun
    cp "$CARGO_TARGET_DIR/release/examples/ntt_device" .devrun/ntt_device
    stage_vulkan_loader
    ;;
run)
    OUT="${OUT:-/tmp/msm-device-out}"
    mkdir -p "$OUT"
    if ! [ -x .devrun/ntt_device ]; then
        echo "missing .devrun/ntt_device: run 'scripts/device_msm.sh prepare' first" >&2
        exit 1
    fi
    load_vulkan_and_name_machine "$OUT"
    # The binary prints the adapter wgpu chose first: numbers from llvmpipe or a
    # CPU fallback say nothing about the GPU.
    RUST_LOG="${RUST_LOG:-warn}" timeout "${NTT_TIMEOUT:-480}" .devrun/ntt_device "${@:2}" 2>&1 | tee "$OUT/ntt_device.log"
    ;;
*)
    echo "usage: $0 prepare|run [log2 sizes...]" >&2
    exit 2
    ;;
esac
