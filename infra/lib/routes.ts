/**
 * The route table, as generated from `shared/src/routes.rs` into
 * `generated/routes.json` (a Rust test fails when that file drifts). The API's
 * resources and methods are built from it: there is no hand-copied route list.
 */
import manifest from "../generated/routes.json";

export type Service = "token-service" | "api";

export type Access =
  { kind: "public" } | { kind: "authenticated" } | { kind: "scope"; scope: string };

export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  access: Access;
  service: Service;
}

export interface TableManifest {
  partitionKey: string;
  sortKey: string;
  gsi1: { name: string; partitionKey: string; sortKey: string; projectedAttributes: string[] };
  ttlAttribute: string;
}

export const ROUTES: readonly Route[] = manifest.routes as Route[];
export const TABLE: TableManifest = manifest.table;

/** Public routes skip the authorizer (and get tight method throttling). */
export function isPublic(route: Route): boolean {
  return route.access.kind === "public";
}
