#!/usr/bin/env bash
# Proves a batch of 1,000 transfers on a GPU machine's GPU engine and on its CPUs, in one run
# (benches/prove.rs in its one-shot batch mode; the device notes are in the team's shared device README).
#
#   scripts/device_prove.sh prepare   # here: release-build the prove bench, stage it in .devrun/
#                                     # and the Vulkan loader in .gl/
#   scripts/device_prove.sh run       # on the device (carry .gl and .devrun): prints the GPU, the
#                                     # CPU and the adapter first, then ops/s and stage timings per engine
set -euo pipefail
cd "$(dirname "$0")/.."

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
    OUT="${OUT:-/tmp/prove-device-out}"
    mkdir -p "$OUT"
    [ -x .devrun/prove_bench ] || { echo "missing .devrun/prove_bench: run '$0 prepare' first" >&2; exit 1; }
    if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    (nvidia-smi -L || true) | tee "$OUT/gpu.txt"
    lscpu | grep -E 'Model name|^CPU\(s\)' | tee "$OUT/cpu.txt"
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
