pragma circom 2.0.0;

// Benchmark circuit: 272 chained circomlib Poseidon(2) hashes.
// With --O2 (as build.sh compiles): 65,280 constraints (240 per Poseidon(2)),
// 2 public signals [out, seed], 65,554 wires; 65,280 + 2 + 1 <= 2^16, so the
// Groth16 domain is exactly 2^16 and build.sh picks a 2^16 ptau.
// Input: poseidon_chain_big.input.json (seed = 1, in[i] = i + 2).
// Build: tests/circom/build.sh poseidon_chain_big OUT_DIR   (slow: see ../README.md)
include "lib/poseidon_chain.circom";

component main {public [seed]} = PoseidonChain(272);
