// Usage: node verify.js DIR
// Verifies DIR/{verification_key,public,proof}.json with snarkjs's groth16
// verifier; prints OK or INVALID and exits 0 / 1 (2 on errors).
const path = require("path");
const fs = require("fs");
const snarkjs = require("snarkjs");

async function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: node verify.js DIR");
  const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  const ok = await snarkjs.groth16.verify(read("verification_key.json"), read("public.json"), read("proof.json"));
  console.log(ok ? "OK" : "INVALID");
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  }
);
