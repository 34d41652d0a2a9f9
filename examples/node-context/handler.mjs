// A worked business Lambda (REST proxy integration) behind the agpat
// authorizer: GET /reports needs reports:read. It trusts only the context.
import { ContextError, principalFrom, problem } from "./context.mjs";

/** The scope each route needs; public routes never reach this Lambda. */
const ROUTES = { "GET /reports": "reports:read" };

export async function handler(event) {
  const required = ROUTES[`${event.httpMethod} ${event.resource}`];
  if (required === undefined) {
    return problem(new ContextError(404, "not-found", "No such route"));
  }
  let caller;
  try {
    caller = principalFrom(event, { requiredScope: required });
  } catch (error) {
    if (error instanceof ContextError) return problem(error);
    throw error;
  }
  return {
    statusCode: 200,
    headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
    // Everything is keyed by the owner's sub: another user's data is not addressable.
    body: JSON.stringify({ owner: caller.sub, via: caller.authMethod, reports: [] }),
  };
}
