pragma circom 2.0.0;

// Poseidon Merkle path of depth D (circomlib Poseidon(2) per level).
// Private: leaf, siblings[D], pathIndices[D] (bit i = 1: the current node is
// the RIGHT child at level i). Public: the output root (computed by the
// circuit, so any leaf/siblings/bits give a satisfying witness).
include "circomlib/circuits/poseidon.circom";

template MerklePath(D) {
    signal input leaf;
    signal input siblings[D];
    signal input pathIndices[D];
    signal output root;

    component h[D];
    signal cur[D + 1];
    signal d[D];
    cur[0] <== leaf;
    for (var i = 0; i < D; i++) {
        // pathIndices[i] is a bit.
        pathIndices[i] * (1 - pathIndices[i]) === 0;
        // Selector: d = bit * (sibling - cur);
        //   left  = cur + d   (= cur if bit = 0, sibling if bit = 1)
        //   right = sibling - d (= sibling if bit = 0, cur if bit = 1)
        d[i] <== pathIndices[i] * (siblings[i] - cur[i]);
        h[i] = Poseidon(2);
        h[i].inputs[0] <== cur[i] + d[i];
        h[i].inputs[1] <== siblings[i] - d[i];
        cur[i + 1] <== h[i].out;
    }
    root <== cur[D];
}

component main = MerklePath(4);
