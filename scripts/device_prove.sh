#!/usr/bin/env bash
# Proves a batch of 1,000 transfers on a GPU machine's GPU engine and on its CPUs, in one run
# (benches/prove.rs in its one-shot batch mode; see docs/DEVICE.md).
#
#   scripts/device_prove.sh prepare   # here: release-build the prove bench, stage it in .devrun/
#                                     # and the Vulkan loader in .gl/
#   scripts/device_prove.sh run       # on the device (carry .gl and .devrun): prints the GPU, the
#                                     # CPU and the adapter first, then ops/s and stage timings per engine
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/device_common.sh
source scripts/device_common.sh

case "${1:-run}" in
prepare)
    target="${CARGO_TARGET_DIR:-target}"
    exe=$(cargo bench --bench prove --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "prove" and m.get("executable"):
        print(m["executable"])')
    [ -x "$exe" ] || { echo "prove bench did not build (target dir $target)" >&2; exit 1; }
    mkdir -p .devrun
    cp "$exe" .devrun/prove_bench
    stage_vulkan_loader
    ;;
run)
    OUT="${OUT:-/tmp/prove-device-out}"
    mkdir -p "$OUT"
    [ -x .devrun/prove_bench ] || { echo "missing .devrun/prove_bench: run '$0 prepare' first" >&2; exit 1; }
    load_vulkan_and_name_machine "$OUT"
    CVM_PROVE_BENCH_BATCH="${BATCH:-1000}" CVM_PROVE_BENCH_OPS= \
        timeout "${PROVE_TIMEOUT:-540}" .devrun/prove_bench --bench 2>&1 | tee "$OUT/prove_device.log"
    echo
    echo "== summary"
    grep -E '^(batch|gpu engine adapter)' "$OUT/prove_device.log" || true
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
