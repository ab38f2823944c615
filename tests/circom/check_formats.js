// Independent check of tests/circom/FORMATS.md.
//
//   node tests/circom/check_formats.js DIR NAME [--qap OUT.json]
//
// Reads DIR/NAME.r1cs, DIR/NAME.wtns, DIR/NAME.zkey and DIR/NAME.vk.json,
// parses them byte by byte exactly as FORMATS.md describes (plain BigInt code,
// no snarkjs/r1csfile readers), checks every claim that can be checked, then
// re-implements the snarkjs Groth16 prover from FORMATS.md (QAP, iFFT, coset,
// FFT, MSMs, r/s blinding; ffjavascript's bn128 is used only for G1/G2 point
// additions and scalar multiplications) and verifies the resulting proof with
// snarkjs.groth16.verify. With --qap it also writes the intermediate QAP
// vectors (standard-form decimal strings) for the Rust prover's unit tests.
//
// Exit 0 and "check_formats: OK" on success; throws on the first mismatch.
"use strict";
const fs = require("fs");
const path = require("path");

const NM = path.join(__dirname, "..", "snarkjs", "node_modules");
const snarkjs = require(path.join(NM, "snarkjs"));
const { buildBn128 } = require(path.join(NM, "ffjavascript"));

const Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583n;
const R = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;

function assert(cond, msg) {
    if (!cond) throw new Error("check failed: " + msg);
}
const mod = (a, m) => ((a % m) + m) % m;
function pow(b, e, m) {
    let r = 1n;
    b = mod(b, m);
    while (e > 0n) {
        if (e & 1n) r = (r * b) % m;
        b = (b * b) % m;
        e >>= 1n;
    }
    return r;
}
const inv = (a, m) => pow(a, m - 2n, m);
function leToBig(buf, off, n) {
    let x = 0n;
    for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(buf[off + i]);
    return x;
}
function bigToLe(x, n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
        b[i] = Number(x & 0xffn);
        x >>= 8n;
    }
    return b;
}

// ---- iden3 binary container -------------------------------------------------
function readBin(file, magic) {
    const b = fs.readFileSync(file);
    assert(b.toString("latin1", 0, 4) === magic, `${file}: magic ${magic}`);
    const version = b.readUInt32LE(4);
    const nSections = b.readUInt32LE(8);
    const sections = {};
    const order = [];
    let p = 12;
    for (let i = 0; i < nSections; i++) {
        const type = b.readUInt32LE(p);
        const size = Number(b.readBigUInt64LE(p + 4));
        assert(!(type in sections), `${file}: duplicate section ${type}`);
        sections[type] = b.subarray(p + 12, p + 12 + size);
        order.push(type);
        p += 12 + size;
    }
    assert(p === b.length, `${file}: trailing bytes`);
    return { version, sections, order };
}

// ---- .r1cs ------------------------------------------------------------------
function readR1cs(file) {
    const { version, sections, order } = readBin(file, "r1cs");
    assert(version === 1, "r1cs version 1");
    const h = sections[1];
    const n8 = h.readUInt32LE(0);
    const prime = leToBig(h, 4, n8);
    let o = 4 + n8;
    const hdr = {
        n8, prime,
        nVars: h.readUInt32LE(o),
        nOutputs: h.readUInt32LE(o + 4),
        nPubInputs: h.readUInt32LE(o + 8),
        nPrvInputs: h.readUInt32LE(o + 12),
        nLabels: Number(h.readBigUInt64LE(o + 16)),
        nConstraints: h.readUInt32LE(o + 24),
    };
    assert(h.length === o + 28, "r1cs header size");
    assert(prime === R, "r1cs prime is bn128 r");
    const s = sections[2];
    let p = 0;
    const constraints = [];
    for (let c = 0; c < hdr.nConstraints; c++) {
        const lcs = [];
        for (let m = 0; m < 3; m++) {
            const n = s.readUInt32LE(p);
            p += 4;
            const lc = [];
            for (let i = 0; i < n; i++) {
                const sig = s.readUInt32LE(p);
                const val = leToBig(s, p + 4, n8);
                assert(val < R, "r1cs coefficient < r (standard form)");
                lc.push([sig, val]);
                p += 4 + n8;
            }
            lcs.push(lc);
        }
        constraints.push(lcs);
    }
    assert(p === s.length, "r1cs constraints section fully consumed");
    if (sections[3]) assert(sections[3].length === 8 * hdr.nVars, "r1cs wire->label map: u64 per wire");
    return { ...hdr, constraints, order };
}

// ---- .wtns ------------------------------------------------------------------
function readWtns(file) {
    const { version, sections, order } = readBin(file, "wtns");
    assert(version === 2, "wtns version 2");
    const h = sections[1];
    const n8 = h.readUInt32LE(0);
    const q = leToBig(h, 4, n8);
    const nWitness = h.readUInt32LE(4 + n8);
    assert(q === R, "wtns prime is bn128 r");
    const s = sections[2];
    assert(s.length === n8 * nWitness, "wtns section 2 size");
    const w = [];
    for (let i = 0; i < nWitness; i++) {
        const v = leToBig(s, i * n8, n8);
        assert(v < R, "witness value < r (standard form)");
        w.push(v);
    }
    assert(w[0] === 1n, "witness[0] == 1");
    return { w, order };
}

// ---- .zkey (groth16) ----------------------------------------------------------
const RQinv = inv((1n << 256n) % Q, Q); // Montgomery R^-1 for Fq
const R2r = ((1n << 256n) % R) ** 2n % R; // R^2 mod r (Fr Montgomery)
const R2rInv = inv(R2r, R);

function g1At(buf, off) {
    const raw = buf.subarray(off, off + 64);
    if (raw.every((x) => x === 0)) return null; // point at infinity
    const x = (leToBig(buf, off, 32) * RQinv) % Q;
    const y = (leToBig(buf, off + 32, 32) * RQinv) % Q;
    assert((y * y - x * x * x - 3n) % Q === 0n, "G1 point on curve");
    return [x, y];
}
function g2At(buf, off) {
    const raw = buf.subarray(off, off + 128);
    if (raw.every((x) => x === 0)) return null;
    const c = [0, 1, 2, 3].map((i) => (leToBig(buf, off + 32 * i, 32) * RQinv) % Q);
    return [[c[0], c[1]], [c[2], c[3]]]; // x = c0 + c1*u, y = ...
}
function readZkey(file) {
    const { version, sections, order } = readBin(file, "zkey");
    assert(version === 1, "zkey version 1");
    assert(sections[1].length === 4 && sections[1].readUInt32LE(0) === 1, "zkey protocol 1 = groth16");
    const h = sections[2];
    let o = 0;
    const n8q = h.readUInt32LE(o); o += 4;
    const q = leToBig(h, o, n8q); o += n8q;
    const n8r = h.readUInt32LE(o); o += 4;
    const r = leToBig(h, o, n8r); o += n8r;
    assert(n8q === 32 && q === Q && n8r === 32 && r === R, "zkey primes");
    const z = { order };
    z.nVars = h.readUInt32LE(o); o += 4;
    z.nPublic = h.readUInt32LE(o); o += 4;
    z.domainSize = h.readUInt32LE(o); o += 4;
    z.alpha1 = g1At(h, o); o += 64;
    z.beta1 = g1At(h, o); o += 64;
    z.beta2 = g2At(h, o); o += 128;
    z.gamma2 = g2At(h, o); o += 128;
    z.delta1 = g1At(h, o); o += 64;
    z.delta2 = g2At(h, o); o += 128;
    assert(o === h.length, "zkey header section size 660");
    const g1s = (id, n) => {
        assert(sections[id].length === 64 * n, `zkey section ${id} holds ${n} G1 points`);
        return Array.from({ length: n }, (_, i) => g1At(sections[id], 64 * i));
    };
    z.IC = g1s(3, z.nPublic + 1);
    z.A = g1s(5, z.nVars);
    z.B1 = g1s(6, z.nVars);
    assert(sections[7].length === 128 * z.nVars, "zkey section 7 holds nVars G2 points");
    z.B2 = Array.from({ length: z.nVars }, (_, i) => g2At(sections[7], 128 * i));
    z.C = g1s(8, z.nVars - z.nPublic - 1);
    z.H = g1s(9, z.domainSize);
    const s4 = sections[4];
    const nCoefs = s4.readUInt32LE(0);
    assert(s4.length === 4 + nCoefs * 44, "zkey section 4 size = 4 + 44*n");
    z.coefsRaw = s4;
    z.coefs = [];
    for (let i = 0; i < nCoefs; i++) {
        const p = 4 + 44 * i;
        const stored = leToBig(s4, p + 12, 32);
        assert(stored < R, "section 4 stored value < r");
        z.coefs.push({
            m: s4.readUInt32LE(p), c: s4.readUInt32LE(p + 4), s: s4.readUInt32LE(p + 8),
            value: (stored * R2rInv) % R, // standard form = stored * R^-2 mod r
        });
    }
    return z;
}

// ---- FFT over Fr (radix-2, natural order in and out) ------------------------
// Roots as ffjavascript builds them (wasm_field1.js): nqr = smallest quadratic
// non-residue (5 for bn128 Fr), w[k] = nqr^((r-1)/2^k).
const NQR = 5n;
const rootOfUnity = (k) => pow(NQR, (R - 1n) >> BigInt(k), R);
function fft(a, w) {
    const n = a.length;
    if (n === 1) return a.slice();
    const even = fft(a.filter((_, i) => i % 2 === 0), (w * w) % R);
    const odd = fft(a.filter((_, i) => i % 2 === 1), (w * w) % R);
    const out = new Array(n);
    let t = 1n;
    for (let i = 0; i < n / 2; i++) {
        const x = (t * odd[i]) % R;
        out[i] = (even[i] + x) % R;
        out[i + n / 2] = mod(even[i] - x, R);
        t = (t * w) % R;
    }
    return out;
}
function ifft(a, w) {
    const nInv = inv(BigInt(a.length), R);
    return fft(a, inv(w, R)).map((x) => (x * nInv) % R);
}

async function main() {
    const [dir, name, ...rest] = process.argv.slice(2);
    if (!dir || !name) throw new Error("usage: node check_formats.js DIR NAME [--qap OUT.json]");
    const qapOut = rest[0] === "--qap" ? rest[1] : null;
    const f = (ext) => path.join(dir, name + ext);

    const r1cs = readR1cs(f(".r1cs"));
    const { w, order: wtnsOrder } = readWtns(f(".wtns"));
    const z = readZkey(f(".zkey"));
    const vk = JSON.parse(fs.readFileSync(f(".vk.json"), "utf8"));
    console.log(`r1cs sections ${r1cs.order}, wtns sections ${wtnsOrder}, zkey sections ${z.order}`);
    console.log(`nVars=${z.nVars} nPublic=${z.nPublic} nConstraints=${r1cs.nConstraints} domainSize=${z.domainSize}`);

    // r1cs <-> wtns: every constraint holds in standard form.
    assert(w.length === r1cs.nVars, "nWitness == r1cs nVars");
    const lcVal = (lc) => lc.reduce((acc, [s, v]) => (acc + v * w[s]) % R, 0n);
    for (const [a, b, c] of r1cs.constraints) {
        assert((lcVal(a) * lcVal(b)) % R === lcVal(c), "witness satisfies r1cs (A*B == C)");
    }

    // zkey header vs r1cs.
    const nPublic = r1cs.nOutputs + r1cs.nPubInputs;
    assert(z.nVars === r1cs.nVars && z.nPublic === nPublic, "zkey nVars / nPublic");
    let k = 0;
    while (1 << k < r1cs.nConstraints + nPublic + 1) k++;
    assert(z.domainSize === 1 << k, "domainSize = 2^ceil(log2(nConstraints + nPublic + 1))");

    // Section 4 = A and B entries of every r1cs constraint (in r1cs order, A
    // before B), then A[nConstraints+i][i] = 1 for i in 0..=nPublic; C absent.
    const expect = [];
    r1cs.constraints.forEach(([a, b], c) => {
        for (const [s, v] of a) expect.push([0, c, s, v]);
        for (const [s, v] of b) expect.push([1, c, s, v]);
    });
    for (let i = 0; i <= nPublic; i++) expect.push([0, r1cs.nConstraints + i, i, 1n]);
    assert(expect.length === z.coefs.length, "section 4 coefficient count");
    expect.forEach(([m, c, s, v], i) => {
        const e = z.coefs[i];
        assert(e.m === m && e.c === c && e.s === s && e.value === v, `section 4 entry ${i}`);
        const rawExpected = bigToLe((v * R2r) % R, 32);
        assert(z.coefsRaw.subarray(4 + 44 * i + 12, 4 + 44 * i + 44).equals(rawExpected), "stored = v*R^2 mod r");
    });

    // vk.json vs zkey.
    const g1json = (p) => (p ? [p[0].toString(), p[1].toString(), "1"] : ["0", "1", "0"]);
    const g2json = (p) =>
        p ? [p[0].map(String), p[1].map(String), ["1", "0"]] : [["0", "0"], ["1", "0"], ["0", "0"]];
    const same = (a, b, what) => assert(JSON.stringify(a) === JSON.stringify(b), what);
    same(vk.vk_alpha_1, g1json(z.alpha1), "vk_alpha_1");
    same(vk.vk_beta_2, g2json(z.beta2), "vk_beta_2");
    same(vk.vk_gamma_2, g2json(z.gamma2), "vk_gamma_2");
    same(vk.vk_delta_2, g2json(z.delta2), "vk_delta_2");
    same(vk.IC, z.IC.map(g1json), "IC");
    assert(vk.nPublic === z.nPublic && vk.protocol === "groth16" && vk.curve === "bn128", "vk header");

    // ---- the prover, from FORMATS.md ----
    const n = z.domainSize;
    const curve = await buildBn128(true);
    const { Fr } = curve;
    assert(k === 0 || Fr.toObject(Fr.w[k]) === rootOfUnity(k), "omega_n = 5^((r-1)/n)");
    assert(Fr.toObject(Fr.w[k + 1]) === rootOfUnity(k + 1), "omega_2n = 5^((r-1)/2n)");
    const a = new Array(n).fill(0n);
    const b = new Array(n).fill(0n);
    for (const { m, c, s, value } of z.coefs) {
        const t = m === 0 ? a : b;
        t[c] = (t[c] + value * w[s]) % R;
    }
    const c = a.map((x, i) => (x * b[i]) % R);
    const wn = rootOfUnity(k);
    const w2n = rootOfUnity(k + 1);
    const coset = (evals) => {
        const coeffs = ifft(evals, wn);
        let t = 1n;
        const shifted = coeffs.map((x) => {
            const y = (x * t) % R;
            t = (t * w2n) % R;
            return y;
        });
        return fft(shifted, wn);
    };
    const aOdd = coset(a), bOdd = coset(b), cOdd = coset(c);
    const h = aOdd.map((x, i) => mod(x * bOdd[i] - cOdd[i], R));

    const G1 = curve.G1, G2 = curve.G2;
    const p1 = (p) => (p ? G1.fromObject([p[0], p[1], 1n]) : G1.zero);
    const p2 = (p) => (p ? G2.fromObject([p[0], p[1], [1n, 0n]]) : G2.zero);
    const msm = (G, pts, sc) => pts.reduce((acc, P, i) => G.add(acc, G.timesScalar(P, sc[i])), G.zero);
    const rnd = () => BigInt("0x" + require("crypto").randomBytes(32).toString("hex")) % R;
    const r = rnd(), s = rnd();
    let piA = G1.add(p1(z.alpha1), msm(G1, z.A.map(p1), w));
    piA = G1.add(piA, G1.timesScalar(p1(z.delta1), r));
    let piB = G2.add(p2(z.beta2), msm(G2, z.B2.map(p2), w));
    piB = G2.add(piB, G2.timesScalar(p2(z.delta2), s));
    let pib1 = G1.add(p1(z.beta1), msm(G1, z.B1.map(p1), w));
    pib1 = G1.add(pib1, G1.timesScalar(p1(z.delta1), s));
    let piC = msm(G1, z.C.map(p1), w.slice(nPublic + 1));
    piC = G1.add(piC, msm(G1, z.H.map(p1), h));
    piC = G1.add(piC, G1.timesScalar(piA, s));
    piC = G1.add(piC, G1.timesScalar(pib1, r));
    piC = G1.add(piC, G1.timesScalar(p1(z.delta1), mod(-r * s, R)));
    const str = (x) => (Array.isArray(x) ? x.map(str) : x.toString());
    const proof = {
        pi_a: str(G1.toObject(G1.toAffine(piA))),
        pi_b: str(G2.toObject(G2.toAffine(piB))),
        pi_c: str(G1.toObject(G1.toAffine(piC))),
        protocol: "groth16",
        curve: "bn128",
    };
    const pub = w.slice(1, nPublic + 1).map(String);
    assert(await snarkjs.groth16.verify(vk, pub, proof), "re-implemented prover's proof verifies with snarkjs");
    const sjPub = f(".snarkjs_public.json");
    if (fs.existsSync(sjPub)) same(JSON.parse(fs.readFileSync(sjPub, "utf8")), pub, "public.json = w[1..=nPublic]");

    if (qapOut) {
        const dec = (v) => v.map(String);
        const out = {
            comment:
                "Intermediate values of the snarkjs 0.7.6 Groth16 prover for this witness (standard-form decimals). " +
                "a,b: section-4 evaluations on the n-domain; c = a*b pointwise; a_odd,b_odd,c_odd: the same polynomials " +
                "evaluated at omega_2n * omega_n^i; h = a_odd*b_odd - c_odd = the scalars of the section-9 MSM.",
            domainSize: n,
            omega_n: wn.toString(),
            omega_2n: w2n.toString(),
            a: dec(a), b: dec(b), c: dec(c),
            a_odd: dec(aOdd), b_odd: dec(bOdd), c_odd: dec(cOdd),
            h: dec(h),
        };
        fs.writeFileSync(qapOut, JSON.stringify(out, null, 1) + "\n");
    }
    await curve.terminate();
    console.log("check_formats: OK");
}

main().then(() => process.exit(0), (e) => {
    console.error(e);
    process.exit(1);
});
