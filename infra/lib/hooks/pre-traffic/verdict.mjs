/**
 * Whether a new version's answer to the pre-traffic check is what a healthy
 * version answers. `result` is Lambda's Invoke output (`FunctionError`, and
 * `Payload` as text); `expect` is either `{ errorMessage }` (a REQUEST
 * authorizer refusing a request without a credential fails with exactly
 * "Unauthorized") or `{ statusFrom, statusTo }` (an HTTP function's status).
 * Anything unreadable or unexpected fails: a release must prove itself.
 */
export function verdict(result, expect) {
  let payload;
  try {
    payload = JSON.parse(result.Payload ?? "");
  } catch {
    return { ok: false, reason: "the answer is not JSON" };
  }
  if (typeof expect.errorMessage === "string") {
    if (result.FunctionError && payload?.errorMessage === expect.errorMessage) {
      return { ok: true, reason: `answered as expected (${expect.errorMessage})` };
    }
    const got = result.FunctionError
      ? `${payload?.errorType}: ${payload?.errorMessage}`
      : "a success";
    return { ok: false, reason: `expected the error ${expect.errorMessage}, got ${got}` };
  }
  if (Number.isInteger(expect.statusFrom) && Number.isInteger(expect.statusTo)) {
    if (result.FunctionError) {
      return {
        ok: false,
        reason: `the function failed: ${payload?.errorType}: ${payload?.errorMessage}`,
      };
    }
    const status = payload?.statusCode;
    if (Number.isInteger(status) && status >= expect.statusFrom && status <= expect.statusTo) {
      return { ok: true, reason: `answered as expected (${status})` };
    }
    return {
      ok: false,
      reason: `expected a status from ${expect.statusFrom} to ${expect.statusTo}, got ${status}`,
    };
  }
  return { ok: false, reason: "no expectation to check against" };
}
