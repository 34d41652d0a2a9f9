/**
 * agpat's built-in routes and the token table's layout, as generated from
 * `shared/src/routes.rs` into `generated/routes.json` (a Rust test fails when
 * that file drifts). The construct builds the `/tokens` resources and the
 * token table from them: there is no hand-copied route list.
 */
import generated from "../generated/routes.json";
import { Access, HttpMethod } from "./manifest";

/** A route served by the token service, which agpat adds to every adopter's API. */
export interface TokenRoute {
  /** The HTTP method. */
  readonly method: HttpMethod;
  /** The resource path, under `/tokens` or `/admin/tokens`. */
  readonly path: string;
  /** Who may call it; only the leaked-token and secret-scanning routes are public. */
  readonly access: Access;
}

/** A global secondary index of the token table: string keys, an INCLUDE projection. */
export interface IndexLayout {
  /** The index's name. */
  readonly name: string;
  /** Partition key attribute (string). */
  readonly partitionKey: string;
  /** Sort key attribute (string). */
  readonly sortKey: string;
  /** The non-key attributes it projects. */
  readonly projectedAttributes: readonly string[];
}

/** The token table's keys, indexes and TTL attribute. */
export interface TableLayout {
  /** Partition key attribute (string). */
  readonly partitionKey: string;
  /** Sort key attribute (string). */
  readonly sortKey: string;
  /** The per-owner listing index; it never projects the hash. */
  readonly gsi1: IndexLayout;
  /**
   * The expiry index (`GSI2PK` = `EXP#<day>#<shard>`, `GSI2SK` =
   * `<expires_at>#<id>`), which the expiry sweeper queries; it never projects
   * the hash either.
   */
  readonly gsi2: IndexLayout;
  /** DynamoDB TTL attribute. */
  readonly ttlAttribute: string;
  /**
   * What the token service's listing reads of each token record
   * (`TokenStore::details`): the key, the version and what GSI1 does not
   * project. Never the hash.
   */
  readonly detailsProjected: readonly string[];
}

/**
 * The token service's routes. Only entries with `"service": "token-service"`
 * are read: the file may also list a business API's routes, which now belong
 * in that API's own manifest.
 */
export const TOKEN_ROUTES: readonly TokenRoute[] = generated.routes
  .filter((route) => route.service === "token-service")
  .map((route) => ({
    method: route.method as HttpMethod,
    path: route.path,
    access: route.access as Access,
  }));

/** The token table's layout. */
export const TABLE: TableLayout = generated.table;

/** A problem+json gateway response, as `shared/src/gateway.rs` defines it. */
export interface GatewayResponseSpec {
  /** API Gateway's response type, e.g. `ACCESS_DENIED`. */
  readonly responseType: string;
  /** The status; `null` keeps API Gateway's (the two defaults). */
  readonly status: number | null;
  /** The problem type's slug. */
  readonly slug: string;
  /** The problem's title. */
  readonly title: string;
  /** A `WWW-Authenticate` challenge, for 401. */
  readonly wwwAuthenticate: string | null;
  /** The challenge where bound tokens (DPoP) are accepted. */
  readonly wwwAuthenticateDpop: string | null;
  /** Whether the body names the response type (4xx defaults only). */
  readonly code: boolean;
}

/** The gateway responses agpat installs, the local gateway's too. */
export const GATEWAY_RESPONSES: readonly GatewayResponseSpec[] = generated.gatewayResponses;

/** Public routes skip the authorizer (and, for `/tokens`, get tight method throttling). */
export function isPublic(route: { readonly access: Access }): boolean {
  return route.access.kind === "public";
}
