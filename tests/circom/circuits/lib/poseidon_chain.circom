pragma circom 2.0.0;

// Library file (no main component): shared by poseidon_chain.circom and
// poseidon_chain_big.circom. Compile those with -l tests/snarkjs/node_modules
// so that the circomlib include resolves.
include "circomlib/circuits/poseidon.circom";

// state[0] = seed; state[i+1] = Poseidon([state[i], in[i]]); out = state[n].
template PoseidonChain(n) {
    signal input seed;
    signal input in[n];
    signal output out;

    component h[n];
    signal state[n + 1];
    state[0] <== seed;
    for (var i = 0; i < n; i++) {
        h[i] = Poseidon(2);
        h[i].inputs[0] <== state[i];
        h[i].inputs[1] <== in[i];
        state[i + 1] <== h[i].out;
    }
    out <== state[n];
}
