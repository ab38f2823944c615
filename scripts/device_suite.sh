#!/usr/bin/env bash
# Every GPU figure the prover needs, in one device call (see docs/DEVICE.md): the MSMs (G1 and
# G2, the curve formulas and field paths compared), the quotient's NTTs, Poseidon through the
# hash pool, and a batch of proofs on the GPU engine beside the machine's CPUs. Each part has its
# own time limit, so one that hangs or fails costs only its share and the rest still report.
# The first H200 run (2026-12-04) took 426 s with the limits below it had then; the parts are in
# the order of what matters most, so a shorter call still returns the most useful ones.
#
#   scripts/device_suite.sh prepare   # here: release-build the examples and benches, stage them in
#                                     # .devrun/ and the Vulkan loader in .gl/
#   scripts/device_suite.sh run [PART...]  # on the device (carry .gl and .devrun): the machine
#                                     # and adapter first, each part's log under $OUT (at most 8
#                                     # files), a summary last; all default parts unless named
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/device_common.sh
source scripts/device_common.sh

# The executable cargo built for bench $1 (the one without an extension).
bench_exe() {
    cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null | python3 -c 'import json,sys
name = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])' "$1"
}

prepare() {
    local target="${CARGO_TARGET_DIR:-target}"
    cargo build --release --example msm_device --example ntt_device
    mkdir -p .devrun
    cp "$target/release/examples/msm_device" "$target/release/examples/ntt_device" .devrun/
    for bench in prove poseidon hash_pool; do
        local exe
        exe=$(bench_exe "$bench")
        [ -x "$exe" ] || { echo "bench $bench did not build" >&2; exit 1; }
        cp "$exe" ".devrun/${bench}_bench"
    done
    strip .devrun/* 2>/dev/null || true
    stage_vulkan_loader
}

# part NAME FILE SECONDS COMMAND...: run one part under its limit, its output appended to
# $OUT/FILE.log (at most 8 files come back from the device, so the variants share one).
part() {
    local name="$1" file="$OUT/$2.log" limit="$3"
    shift 3
    echo "== $name (limit ${limit} s)" | tee -a "$file"
    local start=$SECONDS rc=0 from
    from=$(($(wc -l <"$file") + 1))
    timeout "$limit" "$@" >>"$file" 2>&1 || rc=$?
    tail -n "+$from" "$file" | grep -vE '^(Benchmarking|\s*$|Found|  [0-9]+ \(|Warning: Unable)' | tail -40
    echo "== $name: exit $rc after $((SECONDS - start)) s"
}

# The parts, in the order of what the issue needs most; `run PART...` runs only those named.
DEFAULT_PARTS="msm ntt prove prove_k64 msm_trace ntt_trace poseidon msm_g1_stepped msm_u32 msm_g2_straight blake3"

run_part() {
    case "$1" in
    msm) part msm msm 150 .devrun/msm_device 16 18 20 22 g2 16 18 20 ;;
    ntt) part ntt ntt 80 .devrun/ntt_device 16 20 24 ;;
    prove) part prove prove 120 env CVM_PROVE_BENCH_BATCH=1000 CVM_PROVE_BENCH_OPS= .devrun/prove_bench --bench ;;
    # Larger proofs (2^19 constraints), where the GPU's MSMs should win.
    prove_k64)
        part prove_k64 prove 120 env CVM_PROVE_BENCH_BATCH=1024 CVM_PROVE_BENCH_BATCH_K=64 CVM_PROVE_BENCH_OPS= \
            .devrun/prove_bench --bench
        ;;
    # About 2^20 constraints: the issue's whole-proof figure.
    prove_k128)
        part prove_k128 prove 150 env CVM_PROVE_BENCH_BATCH=256 CVM_PROVE_BENCH_BATCH_K=128 CVM_PROVE_BENCH_OPS= \
            .devrun/prove_bench --bench
        ;;
    # Where the time goes: every MSM and NTT dispatch timed on its own, with the host's phases.
    msm_trace) part msm_trace trace 40 env CVM_MSM_TRACE=1 .devrun/msm_device 16 20 ;;
    ntt_trace) part ntt_trace trace 40 env CVM_NTT_TRACE=1 .devrun/ntt_device 16 20 ;;
    poseidon) part poseidon hash 80 env CVM_POSEIDON_BENCH_COUNT=131072 .devrun/poseidon_bench --bench ;;
    msm_g1_stepped) part msm_g1_stepped variants 40 env CVM_MSM_FORMULAS=stepped .devrun/msm_device 20 22 ;;
    msm_u32) part msm_u32 variants 60 env CVM_MSM_FIELD=u32 .devrun/msm_device 20 22 g2 20 ;;
    msm_g2_straight) part msm_g2_straight variants 45 env CVM_MSM_FORMULAS=straight .devrun/msm_device g2 20 ;;
    blake3) part blake3 hash 45 .devrun/hash_pool_bench --bench 'hash_pool/(64|1024)B/.*/(16384|1048576)$' ;;
    *) echo "unknown part $1 (parts: $DEFAULT_PARTS prove_k128)" >&2 ;;
    esac
}

run() {
    OUT="${OUT:-/tmp/device-suite-out}"
    mkdir -p "$OUT"
    for exe in msm_device ntt_device prove_bench poseidon_bench hash_pool_bench; do
        [ -x ".devrun/$exe" ] || { echo "missing .devrun/$exe: run '$0 prepare' first" >&2; exit 1; }
    done
    load_vulkan_and_name_machine "$OUT"
    export RUST_LOG="${RUST_LOG:-warn}"
    local parts=("$@")
    [ ${#parts[@]} -gt 0 ] || read -ra parts <<<"$DEFAULT_PARTS"
    for name in "${parts[@]}"; do
        run_part "$name"
    done
    echo "== summary"
    [ -f "$OUT/msm.log" ] && grep -hE '^(adapter|driver|\| G[12] \|)' "$OUT/msm.log" || true
    [ -f "$OUT/variants.log" ] && grep -hE '^(== msm_|msm tuning|\| G[12] \|)' "$OUT/variants.log" || true
    [ -f "$OUT/ntt.log" ] && grep -hE '^2\^' "$OUT/ntt.log" || true
    [ -f "$OUT/prove.log" ] && grep -hE '^(== |batch|gpu engine adapter)' "$OUT/prove.log" || true
    [ -f "$OUT/hash.log" ] && grep -hE -A1 "^poseidon/|GPU pool" "$OUT/hash.log" || true
    return 0
}

case "${1:-run}" in
prepare) prepare ;;
run) run "${@:2}" ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
