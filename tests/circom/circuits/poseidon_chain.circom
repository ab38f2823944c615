pragma circom 2.0.0;

// Small Poseidon chain for the CI interop test: 4 chained circomlib Poseidon(2).
// Public signals: [out, seed]; in[] is private.
// Build: tests/circom/build.sh poseidon_chain OUT_DIR
include "lib/poseidon_chain.circom";

component main {public [seed]} = PoseidonChain(4);
