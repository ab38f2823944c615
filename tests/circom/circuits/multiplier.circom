pragma circom 2.0.0;

// Tiny test circuit for the cvm <-> snarkjs Groth16 interop tests.
// n+1 multiplication constraints:
//   t[0] = a*b, t[i] = t[i-1]*b, c = t[n-1]*a   (so c = a^2 * b^n)
// Public signals (snarkjs order: outputs first, then public inputs): [c, a].
template Multiplier(n) {
    signal input a;   // public
    signal input b;   // private
    signal output c;  // public

    signal t[n];
    t[0] <== a * b;
    for (var i = 1; i < n; i++) {
        t[i] <== t[i - 1] * b;
    }
    c <== t[n - 1] * a;
}

component main {public [a]} = Multiplier(3);
