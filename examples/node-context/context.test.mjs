// The example against the committed contract: run with `node --test`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { CONTEXT_FIELDS, principalFrom } from "./context.mjs";
import { handler } from "./handler.mjs";

const docs = (name) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url));
const schema = JSON.parse(readFileSync(docs("authorizer-context.schema.json"), "utf8"));
const sample = JSON.parse(readFileSync(docs("examples/authorizer-context.json"), "utf8"));
const NOW = 1_899_999_000;

const event = (authorizer, overrides = {}) => ({
  resource: "/reports",
  path: "/reports",
  httpMethod: "GET",
  requestContext: { authorizer },
  ...overrides,
});

test("the module reads exactly the fields the contract requires", () => {
  assert.deepEqual([...CONTEXT_FIELDS].sort(), [...schema.required].sort());
  assert.equal(schema.$id, "urn:agpat:schema:authorizer-context:1");
});

test("the committed sample context is accepted, with its scopes", () => {
  const p = principalFrom(event(sample), { now: NOW, requiredScope: "items:read" });
  assert.equal(p.sub, sample.sub);
  assert.equal(p.authMethod, "pat");
  assert.equal(p.principalKind, "user_token");
  assert.equal(p.tokenId, "0123456789ABCDEFG");
  assert.equal(p.expiresAt, 1_900_000_000);
  assert.ok(p.scopes.has("tokens:read"));
});

test("a context past its credential's expiry is refused, even from a cached Allow", () => {
  assert.throws(
    () => principalFrom(event(sample), { now: 1_900_000_000 }),
    (e) => e.status === 401 && e.slug === "credential-expired",
  );
});

test("a missing scope is a 403, and tampered or incomplete contexts are 401", () => {
  assert.throws(
    () => principalFrom(event(sample), { now: NOW, requiredScope: "reports:read" }),
    (e) => e.status === 403 && e.slug === "insufficient-scope",
  );
  const tampered = [
    { authMethod: "admin" },
    { principalKind: "admin" },
    { principalKind: "service" },
    { principalKind: "user" },
    { sub: "a#b" },
    { principalId: "someone-else" },
    { tokenId: "" },
    { expiresAt: "soon" },
    { expiresAt: [1] },
    { scopes: "items:read  items:write" },
  ];
  for (const change of tampered) {
    assert.throws(
      () => principalFrom(event({ ...sample, ...change }), { now: NOW }),
      (e) => e.status === 401 && e.slug === "unauthenticated",
      JSON.stringify(change),
    );
  }
  for (const field of CONTEXT_FIELDS) {
    const incomplete = { ...sample };
    delete incomplete[field];
    assert.throws(() => principalFrom(event(incomplete), { now: NOW }), field);
  }
  assert.throws(() => principalFrom({ requestContext: {} }, { now: NOW }));
});

test("the handler answers problem+json on refusal and serves the owner's data", async () => {
  const refused = await handler(event(sample));
  assert.equal(refused.statusCode, 403);
  assert.equal(refused.headers["Content-Type"], "application/problem+json");
  assert.equal(JSON.parse(refused.body).type, "urn:agpat:problem:insufficient-scope");
  const reader = { ...sample, scopes: "reports:read", expiresAt: "4102444800" };
  const ok = await handler(event(reader));
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(JSON.parse(ok.body), { owner: sample.sub, via: "pat", reports: [] });
  const unknown = await handler(event(reader, { resource: "/nope" }));
  assert.equal(unknown.statusCode, 404);
});

test("principalKind tells people from machines, and an older context reads as a person", () => {
  const service = { ...sample, sub: "service:ci-deploy", principalId: "service:ci-deploy", principalKind: "service_token" };
  assert.equal(principalFrom(event(service), { now: NOW }).principalKind, "service_token");
  const older = { ...sample };
  delete older.principalKind;
  assert.equal(principalFrom(event(older), { now: NOW }).principalKind, "user_token");
  assert.ok(schema.properties.principalKind.enum.includes("service"));
});
