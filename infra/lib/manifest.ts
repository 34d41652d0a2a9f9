/**
 * The agpat manifest: the TOML file in which an adopter declares its scopes
 * and routes (see `examples/items-api/agpat.toml`).
 *
 * Only its structure is checked here: the fields the CDK construct needs are
 * present and of the right kind. The full rule set (scope names, path syntax,
 * overlapping routes, reserved `/tokens` and `/admin/tokens` paths, …) lives in one place, the
 * Rust side: `agpat-manifest check` and every agpat Lambda at cold start.
 */
import * as fs from "fs";
import { parse } from "smol-toml";

/** The HTTP methods a manifest route may name. */
export const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;

/** One of {@link HTTP_METHODS}. */
export type HttpMethod = (typeof HTTP_METHODS)[number];

/**
 * Who may call a route: anyone (`public`, no authorizer), any valid
 * credential (`authenticated`), or a credential holding `scope`.
 */
export type Access =
  { kind: "public" } | { kind: "authenticated" } | { kind: "scope"; scope: string };

/** A route of the adopter's API, as the manifest declares it. */
export interface ManifestRoute {
  /** The HTTP method, upper case. */
  readonly method: HttpMethod;
  /**
   * The API Gateway resource path: `{param}` is one segment, `{name+}` is
   * greedy (last segment only), `/` is the root.
   */
  readonly path: string;
  /** Who may call it. */
  readonly access: Access;
  /** A one-line description, if the manifest gives one. */
  readonly summary?: string;
}

/** A scope the adopter defines. */
export interface ManifestScope {
  /** The scope's name, e.g. `docs:read`. */
  readonly name: string;
  /** What holding it allows, if the manifest says. */
  readonly description?: string;
}

/** What a Cognito session holds (`[sessions]`). */
export interface ManifestSessions {
  /** The scopes of every session, if set. */
  readonly defaultScopes?: readonly string[];
  /** The Cognito resource-server prefix of access-token scopes, if set. */
  readonly scopePrefix?: string;
  /** Extra scopes per Cognito group. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
}

/** A parsed manifest. */
export interface AgpatManifest {
  /** The file it was read from (as given). */
  readonly file: string;
  /** Its text, byte for byte: what the manifest layer ships. */
  readonly text: string;
  /** The format version; only 1 exists. */
  readonly version: 1;
  /** Session settings. */
  readonly sessions: ManifestSessions;
  /** The adopter's scopes (the built-in `tokens:*` and `admin:tokens` are not listed). */
  readonly scopes: readonly ManifestScope[];
  /** The adopter's routes (the built-in `/tokens` and `/admin/tokens` routes are not listed). */
  readonly routes: readonly ManifestRoute[];
}

/** A malformed manifest; the message names the file and the offending entry. */
export class ManifestError extends Error {
  constructor(file: string, detail: string) {
    super(`agpat manifest ${file}: ${detail}`);
    this.name = "ManifestError";
  }
}

/** Reads and structurally parses the manifest at `file`. */
export function loadManifest(file: string): AgpatManifest {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new ManifestError(file, `cannot be read (${(err as Error).message})`);
  }
  return parseManifest(file, text);
}

/** Structurally parses manifest `text`; `file` only names it in errors. */
export function parseManifest(file: string, text: string): AgpatManifest {
  const fail = (detail: string): never => {
    throw new ManifestError(file, detail);
  };
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (err) {
    return fail(`is not valid TOML: ${(err as Error).message}`);
  }
  if (doc.version !== 1) fail("`version = 1` is required (the only format version)");

  const sessionsTable = optionalTable(doc.sessions, "[sessions]", fail) ?? {};
  const groupsTable = optionalTable(sessionsTable.groups, "[sessions.groups]", fail) ?? {};
  const groups: Record<string, readonly string[]> = {};
  for (const [group, scopes] of Object.entries(groupsTable)) {
    groups[group] = stringList(scopes, `[sessions.groups] ${group}`, fail);
  }
  const sessions: ManifestSessions = {
    defaultScopes:
      sessionsTable.default_scopes === undefined
        ? undefined
        : stringList(sessionsTable.default_scopes, "[sessions] default_scopes", fail),
    scopePrefix: optionalString(sessionsTable.scope_prefix, "[sessions] scope_prefix", fail),
    groups,
  };

  const scopes = tableList(doc.scope, "[[scope]]", fail).map((entry, i): ManifestScope => {
    const where = `[[scope]] #${i + 1}`;
    const name = entry.name;
    if (typeof name !== "string" || name === "") fail(`${where}: \`name\` must be a string`);
    return {
      name: name as string,
      description: optionalString(entry.description, `${where} description`, fail),
    };
  });

  const routes = tableList(doc.route, "[[route]]", fail).map((entry, i): ManifestRoute => {
    const method = entry.method;
    const path = entry.path;
    const where = `[[route]] #${i + 1}${typeof method === "string" && typeof path === "string" ? ` (${method} ${path})` : ""}`;
    if (typeof method !== "string" || !(HTTP_METHODS as readonly string[]).includes(method)) {
      fail(`${where}: \`method\` must be one of ${HTTP_METHODS.join(", ")}`);
    }
    if (typeof path !== "string" || !path.startsWith("/")) {
      fail(`${where}: \`path\` must be a string starting with "/"`);
    }
    return {
      method: method as HttpMethod,
      path: path as string,
      access: routeAccess(entry, where, fail),
      summary: optionalString(entry.summary, `${where} summary`, fail),
    };
  });
  const seen = new Set<string>();
  for (const route of routes) {
    const key = `${route.method} ${route.path}`;
    if (seen.has(key)) fail(`route ${key} is declared twice`);
    seen.add(key);
  }

  return { file, text, version: 1, sessions, scopes, routes };
}

type Fail = (detail: string) => never;

function routeAccess(entry: Record<string, unknown>, where: string, fail: Fail): Access {
  const { scope, access } = entry;
  if (scope !== undefined && access !== undefined) {
    fail(`${where}: give either \`scope\` or \`access\`, not both`);
  }
  if (scope !== undefined) {
    if (typeof scope !== "string" || scope === "") fail(`${where}: \`scope\` must be a string`);
    return { kind: "scope", scope: scope as string };
  }
  if (access === "public" || access === "authenticated") return { kind: access };
  return fail(`${where}: needs \`scope = "<name>"\` or \`access = "public" | "authenticated"\``);
}

function optionalTable(
  value: unknown,
  where: string,
  fail: Fail,
): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (!isTable(value)) fail(`${where} must be a table`);
  return value as Record<string, unknown>;
}

function tableList(value: unknown, where: string, fail: Fail): Record<string, unknown>[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every(isTable)) fail(`${where} must be an array of tables`);
  return value as Record<string, unknown>[];
}

function stringList(value: unknown, where: string, fail: Fail): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    fail(`${where} must be a list of strings`);
  }
  return value as string[];
}

function optionalString(value: unknown, where: string, fail: Fail): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") fail(`${where} must be a string`);
  return value as string;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
