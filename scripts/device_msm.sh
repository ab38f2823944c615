#!/usr/bin/env bash
# GPU MSM vs arkworks on a GPU machine (see docs/DEVICE.md).
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
# shellcheck source=scripts/device_common.sh
source scripts/device_common.sh

case "${1:-run}" in
prepare)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    # Worktrees sharing one target dir share the crate's artifact names; a
    # fresh mtime makes cargo rebuild the library from this checkout.
    touch src/msm/gpu/mod.rs
    cargo build --release --example msm_device
    mkdir -p .devrun
    cp "$CARGO_TARGET_DIR/release/examples/msm_device" .devrun/msm_device
    stage_vulkan_loader
    ;;
run)
    OUT="${OUT:-/tmp/msm-device-out}"
    mkdir -p "$OUT"
    if ! [ -x .devrun/msm_device ]; then
        echo "missing .devrun/msm_device: run 'scripts/device_msm.sh prepare' first" >&2
        exit 1
    fi
    load_vulkan_and_name_machine "$OUT"
    # The binary prints the adapter wgpu chose first: numbers from llvmpipe or a
    # CPU fallback say nothing about the GPU.
    RUST_LOG="${RUST_LOG:-warn}" timeout "${MSM_TIMEOUT:-480}" .devrun/msm_device "${@:2}" 2>&1 | tee "$OUT/msm_device.log"
    ;;
*)
    echo "usage: $0 prepare|run [log2 sizes...]" >&2
    exit 2
    ;;
esac
