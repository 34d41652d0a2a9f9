// The caller of a business Lambda behind the agpat authorizer, read from
// requestContext.authorizer and nowhere else (never the Authorization header).
// The contract is docs/authorizer-context.schema.json (version 1); this module
// checks what it says, and refuses anything else, as the Rust services do.

/** Fields of contract version 1, as API Gateway forwards them (all strings). */
export const CONTEXT_FIELDS = [
  "principalId",
  "sub",
  "username",
  "authMethod",
  "scopes",
  "tokenId",
  "expiresAt",
  "issuedAt",
];

/** principalKind, optional in contract version 1, and the authMethod it implies. */
const KINDS = { user: "jwt", user_token: "pat", service: "jwt", service_token: "pat" };

const SUB = /^[A-Za-z0-9._:@-]{1,128}$/;
const TOKEN_ID = /^[0-9A-Za-z]{17}$/;
const UNIX_SECONDS = /^(0|[1-9][0-9]{0,11})$/;

/** A refusal, mapped to an RFC 9457 problem by `problem()`. */
export class ContextError extends Error {
  constructor(status, slug, title) {
    super(title);
    this.status = status;
    this.slug = slug;
  }
}

const unauthenticated = () =>
  new ContextError(401, "unauthenticated", "Authentication required");

function text(ctx, key) {
  const value = ctx[key];
  if (typeof value !== "string") throw unauthenticated();
  return value;
}

function seconds(ctx, key) {
  // API Gateway forwards numbers as strings; accept a plain integer too.
  const value = ctx[key];
  const raw = typeof value === "number" && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof raw !== "string" || !UNIX_SECONDS.test(raw)) throw unauthenticated();
  return Number(raw);
}

/**
 * The principal of a REST proxy `event`, or a ContextError.
 *
 * @param {object} event API Gateway REST proxy event
 * @param {{ now?: number, requiredScope?: string }} options `now` in Unix
 *   seconds (default: the clock); `requiredScope`, the route's scope, re-checked
 *   here as defence in depth (the authorizer's policy already checked it)
 */
export function principalFrom(event, { now = Math.floor(Date.now() / 1000), requiredScope } = {}) {
  const ctx = event?.requestContext?.authorizer;
  if (!ctx || typeof ctx !== "object") throw unauthenticated();
  const sub = text(ctx, "sub");
  if (!SUB.test(sub) || text(ctx, "principalId") !== sub) throw unauthenticated();
  const authMethod = text(ctx, "authMethod");
  if (authMethod !== "jwt" && authMethod !== "pat") throw unauthenticated();
  // A person or a machine, by session or by token. Absent (an authorizer
  // from before it): a person.
  const principalKind =
    ctx.principalKind === undefined
      ? authMethod === "jwt"
        ? "user"
        : "user_token"
      : text(ctx, "principalKind");
  if (!Object.hasOwn(KINDS, principalKind) || KINDS[principalKind] !== authMethod) {
    throw unauthenticated();
  }
  const tokenId = text(ctx, "tokenId");
  if (authMethod === "pat" ? !TOKEN_ID.test(tokenId) : tokenId !== "") throw unauthenticated();
  const username = text(ctx, "username");
  if (username.length > 128) throw unauthenticated();
  const scopesText = text(ctx, "scopes");
  if (scopesText !== scopesText.trim() || scopesText.includes("  ")) throw unauthenticated();
  const scopes = new Set(scopesText === "" ? [] : scopesText.split(" "));
  const expiresAt = seconds(ctx, "expiresAt");
  const issuedAt = seconds(ctx, "issuedAt");
  // API Gateway may replay a cached Allow after the credential expired.
  if (now >= expiresAt) {
    throw new ContextError(401, "credential-expired", "The credential used for this request has expired");
  }
  if (requiredScope !== undefined && !scopes.has(requiredScope)) {
    throw new ContextError(
      403,
      "insufficient-scope",
      "The credential lacks the scope this route requires",
    );
  }
  return {
    sub,
    username: username === "" ? null : username,
    authMethod,
    principalKind,
    scopes,
    tokenId: tokenId === "" ? null : tokenId,
    expiresAt,
    issuedAt,
  };
}

/** An RFC 9457 problem response for a ContextError, in the agpat style. */
export function problem(error) {
  return {
    statusCode: error.status,
    headers: { "Content-Type": "application/problem+json" },
    body: JSON.stringify({
      type: `urn:agpat:problem:${error.slug}`,
      title: error.message,
      status: error.status,
    }),
  };
}
