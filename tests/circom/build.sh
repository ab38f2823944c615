#!/usr/bin/env bash
# Compile a circom test circuit and run the whole snarkjs Groth16 pipeline on it.
#
#   tests/circom/build.sh CIRCUIT_NAME OUT_DIR [PTAU_POWER]
#
# Uses only the packages pinned in tests/snarkjs/package.json (install them with
# `npm ci --prefix tests/snarkjs`): circom2 (circom 2.2.3 compiled to
# WebAssembly), circomlib and snarkjs. Works from any cwd.
#
# Inputs : tests/circom/circuits/NAME.circom, tests/circom/circuits/NAME.input.json
# Outputs (in OUT_DIR):
#   NAME.r1cs NAME.sym NAME_js/NAME.wasm   circom --O2 --r1cs --wasm --sym
#   potP_final.ptau                        bn128 powers of tau, 2^P, prepared for
#                                          phase 2 (cached: reused if present)
#   NAME_0000.zkey                         snarkjs groth16 setup (delta = 1)
#   NAME.zkey  NAME.vk.json                after one deterministic zkey beacon
#   NAME.wtns                              witness of NAME.input.json
#   NAME.snarkjs_proof.json NAME.snarkjs_public.json   snarkjs groth16 prove
#   build.log                              everything the tools printed
#
# PTAU_POWER defaults to max(8, the smallest power the circuit needs), i.e.
# the smallest ptau that fits: `powersoftau prepare phase2` dominates the run
# time and grows ~4.5x per +2 powers on a 2-core machine (2^8: 3 s, 2^10: 14 s,
# 2^12: 68 s). An explicit PTAU_POWER that is too small is an error. The "contributions" are
# snarkjs *beacons* with fixed hashes: unlike `contribute -e=...` (which mixes
# 64 bytes of OS randomness into the entropy, snarkjs src/misc.js
# getRandomRng), a beacon is deterministic, so the ptau and zkey are
# byte-for-byte reproducible. Only the proof (random r, s) differs per run.
set -euo pipefail

usage() { echo "usage: $0 CIRCUIT_NAME OUT_DIR [PTAU_POWER]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
NAME=$1
OUT_ARG=$2
POWER_ARG=${3:-}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
NM="$REPO/tests/snarkjs/node_modules"
CIRCUITS="$SCRIPT_DIR/circuits"
CIRCOM=(node "$NM/circom2/cli.js")
SNARKJS=(node "$NM/snarkjs/build/cli.cjs")

SRC="$CIRCUITS/$NAME.circom"
INPUT="$CIRCUITS/$NAME.input.json"
[[ -f $SRC ]] || { echo "build.sh: no circuit $SRC" >&2; exit 2; }
[[ -f $INPUT ]] || { echo "build.sh: no input $INPUT" >&2; exit 2; }
for f in "$NM/circom2/cli.js" "$NM/snarkjs/build/cli.cjs" "$NM/circomlib/circuits/poseidon.circom"; do
    [[ -f $f ]] || { echo "build.sh: missing $f; run: npm ci --prefix tests/snarkjs" >&2; exit 2; }
done

mkdir -p "$OUT_ARG"
OUT=$(cd "$OUT_ARG" && pwd)
LOG="$OUT/build.log"
: > "$LOG"

# Fixed beacon hashes (any hex string works; these are arbitrary constants).
PTAU_BEACON=0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
ZKEY_BEACON=cafebabecafebabecafebabecafebabecafebabecafebabecafebabecafebabe
BEACON_ITER_EXP=10 # 2^10 hash iterations, the smallest snarkjs allows

T_ALL=$(date +%s.%N)
# step LABEL CMD...: run quietly (output to build.log), time it, and on failure
# print the step's output and stop.
step() {
    local label=$1; shift
    local t0 t1 rc part
    part=$(mktemp)
    t0=$(date +%s.%N)
    { echo "=== $label"; echo "\$ $*"; } >> "$LOG"
    set +e
    "$@" > "$part" 2>&1
    rc=$?
    set -e
    cat "$part" >> "$LOG"
    t1=$(date +%s.%N)
    if [[ $rc -ne 0 ]]; then
        echo "build.sh: step '$label' FAILED (exit $rc):" >&2
        echo "\$ $*" >&2
        tail -n 40 "$part" >&2
        rm -f "$part"
        exit 1
    fi
    rm -f "$part"
    awk -v l="$label" -v a="$t0" -v b="$t1" 'BEGIN { printf "  %-22s %7.2fs\n", l, b - a }'
}

echo "build.sh: $NAME -> $OUT"

# 1. Compile. circom2's cli.js only sees paths relative to the cwd (it preopens
#    the cwd and its parents), so run it from the repo root with relative paths.
(
    cd "$REPO"
    step "circom compile" "${CIRCOM[@]}" "$(realpath --relative-to="$REPO" "$SRC")" \
        --O2 --r1cs --wasm --sym \
        -l "$(realpath --relative-to="$REPO" "$NM")" \
        -o "$(realpath --relative-to="$REPO" "$OUT")"
)
R1CS="$OUT/$NAME.r1cs"
WASM="$OUT/${NAME}_js/$NAME.wasm"
[[ -f $R1CS && -f $WASM ]] || { echo "build.sh: circom produced no $R1CS / $WASM" >&2; tail -n 40 "$LOG" >&2; exit 1; }

# Smallest power with 2^power >= nConstraints + nPublic + 1 (zkey_new.js).
NEED=$(node -e '
const b = require("fs").readFileSync(process.argv[1]);
if (b.toString("latin1", 0, 4) !== "r1cs") throw new Error("not an r1cs file");
const nSec = b.readUInt32LE(8);
let p = 12;
for (let i = 0; i < nSec; i++) {
  const type = b.readUInt32LE(p), size = Number(b.readBigUInt64LE(p + 4));
  if (type === 1) {
    const h = p + 12, n8 = b.readUInt32LE(h), q = h + 4 + n8;
    const nOut = b.readUInt32LE(q + 4), nPub = b.readUInt32LE(q + 8);
    const nCons = b.readUInt32LE(q + 24);
    const n = nCons + nOut + nPub + 1;
    let k = 0; while ((1 << k) < n) k++;
    console.log(k, nCons, nOut + nPub);
    process.exit(0);
  }
  p += 12 + size;
}
throw new Error("no header section");
' "$R1CS")
read -r NEED_POWER N_CONS N_PUB <<< "$NEED"
if [[ -n $POWER_ARG ]]; then
    POWER=$POWER_ARG
    if (( POWER < NEED_POWER )); then
        echo "build.sh: PTAU_POWER $POWER too small: $N_CONS constraints + $N_PUB public + 1 need 2^$NEED_POWER" >&2
        exit 2
    fi
else
    POWER=$(( NEED_POWER > 8 ? NEED_POWER : 8 ))
fi
echo "  constraints=$N_CONS public=$N_PUB domain=2^$NEED_POWER ptau=2^$POWER"

# 2. Powers of tau (cached per power).
PTAU="$OUT/pot${POWER}_final.ptau"
if [[ -f $PTAU ]]; then
    echo "  (reusing $(basename "$PTAU"))"
else
    step "ptau new" "${SNARKJS[@]}" powersoftau new bn128 "$POWER" "$OUT/pot${POWER}_0000.ptau"
    step "ptau beacon" "${SNARKJS[@]}" powersoftau beacon "$OUT/pot${POWER}_0000.ptau" "$OUT/pot${POWER}_0001.ptau" \
        "$PTAU_BEACON" "$BEACON_ITER_EXP" -n="cvm test ptau beacon"
    step "ptau prepare phase2" "${SNARKJS[@]}" powersoftau prepare phase2 "$OUT/pot${POWER}_0001.ptau" "$PTAU.tmp"
    mv "$PTAU.tmp" "$PTAU"
    rm -f "$OUT/pot${POWER}_0000.ptau" "$OUT/pot${POWER}_0001.ptau"
fi

# 3. Groth16 setup + one deterministic phase-2 contribution (beacon).
step "groth16 setup" "${SNARKJS[@]}" groth16 setup "$R1CS" "$PTAU" "$OUT/${NAME}_0000.zkey"
step "zkey beacon" "${SNARKJS[@]}" zkey beacon "$OUT/${NAME}_0000.zkey" "$OUT/$NAME.zkey" \
    "$ZKEY_BEACON" "$BEACON_ITER_EXP" -n="cvm test zkey beacon"
rm -f "$OUT/${NAME}_0000.zkey"
step "export vk" "${SNARKJS[@]}" zkey export verificationkey "$OUT/$NAME.zkey" "$OUT/$NAME.vk.json"

# 4. Witness.
step "wtns calculate" "${SNARKJS[@]}" wtns calculate "$WASM" "$INPUT" "$OUT/$NAME.wtns"
step "wtns check" "${SNARKJS[@]}" wtns check "$R1CS" "$OUT/$NAME.wtns"

# 5. Prove and verify with snarkjs.
step "groth16 prove" "${SNARKJS[@]}" groth16 prove "$OUT/$NAME.zkey" "$OUT/$NAME.wtns" \
    "$OUT/$NAME.snarkjs_proof.json" "$OUT/$NAME.snarkjs_public.json"
step "groth16 verify" "${SNARKJS[@]}" groth16 verify "$OUT/$NAME.vk.json" \
    "$OUT/$NAME.snarkjs_public.json" "$OUT/$NAME.snarkjs_proof.json"
# snarkjs prints "OK!" on success; be strict about it.
tail -n 3 "$LOG" | grep -q "OK!" || { echo "build.sh: snarkjs verify did not print OK!" >&2; tail -n 20 "$LOG" >&2; exit 1; }

T_END=$(date +%s.%N)
awk -v n="$NAME" -v a="$T_ALL" -v b="$T_END" -v l="$LOG" 'BEGIN { printf "build.sh: %s OK in %.2fs (log: %s)\n", n, b - a, l }'
