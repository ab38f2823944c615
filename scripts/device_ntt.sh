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
    prepare_example ntt_device src/ntt/gpu.rs
    ;;
run)
    run_example ntt_device "${NTT_TIMEOUT:-480}" "scripts/device_ntt.sh" "${@:2}"
    ;;
*)
    echo "usage: $0 prepare|run [log2 sizes...]" >&2
    exit 2
    ;;
esac
