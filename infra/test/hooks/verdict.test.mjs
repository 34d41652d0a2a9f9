// The pre-traffic hook's decision, as a pure function (node --test, make test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { verdict } from "../../lib/hooks/pre-traffic/verdict.mjs";

const unauthorized = JSON.stringify({ errorType: "Unauthorized", errorMessage: "Unauthorized" });

test("an authorizer that refuses the junk credential with Unauthorized passes", () => {
  const v = verdict(
    { FunctionError: "Unhandled", Payload: unauthorized },
    { errorMessage: "Unauthorized" },
  );
  assert.deepEqual(v, { ok: true, reason: "answered as expected (Unauthorized)" });
});

test("an authorizer that crashed at start, or answered anything else, fails", () => {
  const crashed = JSON.stringify({
    errorType: "Runtime.ExitError",
    errorMessage: "RequestId: x Error: Runtime exited",
  });
  assert.equal(
    verdict({ FunctionError: "Unhandled", Payload: crashed }, { errorMessage: "Unauthorized" }).ok,
    false,
  );
  // An Allow for a request without a credential would be worse than a crash.
  const allowed = JSON.stringify({ principalId: "x", policyDocument: {} });
  assert.equal(verdict({ Payload: allowed }, { errorMessage: "Unauthorized" }).ok, false);
  const internal = JSON.stringify({
    errorType: "InternalError",
    errorMessage: "Internal server error",
  });
  assert.equal(
    verdict({ FunctionError: "Unhandled", Payload: internal }, { errorMessage: "Unauthorized" }).ok,
    false,
  );
});

test("an HTTP function passes with a status in the expected range, and fails on a crash or a 5xx", () => {
  const expect = { statusFrom: 400, statusTo: 499 };
  assert.equal(
    verdict({ Payload: JSON.stringify({ statusCode: 401, body: "{}" }) }, expect).ok,
    true,
  );
  assert.equal(
    verdict({ Payload: JSON.stringify({ statusCode: 500, body: "{}" }) }, expect).ok,
    false,
  );
  assert.equal(
    verdict({ Payload: JSON.stringify({ statusCode: 200, body: "{}" }) }, expect).ok,
    false,
  );
  assert.equal(verdict({ FunctionError: "Unhandled", Payload: "{}" }, expect).ok, false);
});

test("an unreadable answer or an unknown expectation fails, never passes", () => {
  assert.equal(verdict({ Payload: "not json" }, { statusFrom: 400, statusTo: 499 }).ok, false);
  assert.equal(verdict({ Payload: "{}" }, {}).ok, false);
  assert.equal(verdict({}, { errorMessage: "Unauthorized" }).ok, false);
});
