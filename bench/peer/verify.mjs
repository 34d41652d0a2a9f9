// aws-jwt-verify on the same tokens, JWKS pre-cached (no network): decisions
// per second on one core. Usage: node verify.mjs DIR
import { readFileSync } from "node:fs";
import { CognitoJwtVerifier } from "aws-jwt-verify";

const dir = process.argv[2];
const tokens = JSON.parse(readFileSync(`${dir}/tokens.json`, "utf8"));
const jwks = JSON.parse(readFileSync(`${dir}/jwks.json`, "utf8"));
const { userPoolId, clientId } = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
const verifier = CognitoJwtVerifier.create({ userPoolId, clientId, tokenUse: "access" });
verifier.cacheJwks(jwks);

for (const t of tokens) await verifier.verify(t); // warm-up, and proof they verify
const rounds = 3;
const started = process.hrtime.bigint();
for (let r = 0; r < rounds; r++) for (const t of tokens) await verifier.verify(t);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ implementation: "aws-jwt-verify (Node)", first_seen_per_s: Math.round((rounds * tokens.length) / seconds) }));
