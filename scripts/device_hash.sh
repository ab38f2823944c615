#!/usr/bin/env bash
# The hash pool comparison on a GPU machine (see docs/DEVICE.md).
#
#   scripts/device_hash.sh prepare      here: build the bench in release and put it, with
#                                       this script as run.sh, into .devrun/
#   bash .devrun/run.sh [FILTER]        on the device: adapter first, then the criterion bench
#                                       (blake3 loop, rayon, CPU lanes, CPU pool, GPU pool side
#                                       by side), then a table; full output under $OUT
#   scripts/device_hash.sh table FILE   format a `--output-format bencher` log as the table
set -euo pipefail

# Criterion's bencher lines -> size, count, case, time, Melem/s and the ratio to
# the single-threaded blake3 loop of the same size and count.
table() {
    awk '
    /^test hash_pool\// && /bench:/ {
        split($2, id, "/"); size = id[2]; kase = id[3]; count = id[4]
        ns = $0; sub(/.*bench: */, "", ns); sub(/ ns\/iter.*/, "", ns); gsub(/,/, "", ns)
        key = size SUBSEP count
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
        t[key, kase] = ns; if (!((key, kase) in listed)) { listed[key, kase] = 1; cases[key] = cases[key] " " kase }
    }
    END {
        printf "%-7s %9s %-15s %12s %10s %8s\n", "size", "messages", "case", "time (ms)", "Melem/s", "x loop"
        for (i = 1; i <= n; i++) {
            key = order[i]; split(key, parts, SUBSEP); m = split(cases[key], names, " ")
            for (j = 1; j <= m; j++) {
                ns = t[key, names[j]]; base = t[key, "blake3_loop"]
                printf "%-7s %9d %-15s %12.3f %10.1f %8s\n", parts[1], parts[2], names[j], ns / 1e6,
                       parts[2] / (ns / 1e9) / 1e6, (base > 0 ? sprintf("%.2f", base / ns) : "-")
            }
        }
    }' "$1"
}

prepare() {
    cd "$(git rev-parse --show-toplevel)"
    local exe
    exe=$(cargo bench --bench hash_pool --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*hash_pool-[0-9a-f]*\)).*/\1/p' | tail -1)
    [ -x "$exe" ] || { echo "could not find the hash_pool bench executable" >&2; exit 1; }
    mkdir -p .devrun
    cp "$exe" .devrun/hash_pool
    cp scripts/device_hash.sh .devrun/run.sh
    echo "ready: .devrun/hash_pool ($(du -h .devrun/hash_pool | cut -f1)) and .devrun/run.sh"
}

run() {
    local here out filter
    here=$(cd "$(dirname "$0")" && pwd)
    out=${OUT:-/tmp/device_hash}
    filter=${1:-hash_pool}
    mkdir -p "$out"
    echo "== adapter"
    # A filter that matches nothing still makes the bench report its adapter and CPU kernel.
    "$here/hash_pool" --bench no-such-case 2>&1 | grep -E "GPU adapter|no GPU|CPU kernel" || true
    command -v nvidia-smi >/dev/null && nvidia-smi -L || true
    lscpu | grep -E "Model name|^CPU\(s\)" || true
    echo "== bench ($filter)"
    (cd "$out" && "$here/hash_pool" --bench "$filter" --output-format bencher 2>&1) | tee "$out/hash_bench.txt" \
        | grep -E "^test |GPU adapter|CPU kernel" || true
    echo "== table (same run, same machine)"
    table "$out/hash_bench.txt" | tee "$out/hash_table.txt"
}

case "${1:-run}" in
    prepare) prepare ;;
    table) table "$2" ;;
    run) shift || true; run "$@" ;;
    *) run "$@" ;;
esac
