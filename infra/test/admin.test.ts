import { Template } from "aws-cdk-lib/assertions";
import { TOKEN_ROUTES } from "../lib";
import { buildOnFixture, renderedMethods } from "./fixture";

// Issue #16 item 1 in the construct: the administrators' routes are built-in
// routes of the token service, and agpat's authorizer guards every one (its
// policy lets only sessions in an admin group through).
const dev = buildOnFixture("admin", "dev");

/** `METHOD /path` of every method, with its authorizer and integration target. */
function methods(template: Template) {
  return new Map(
    renderedMethods(template).map(({ key, properties }) => [
      key,
      {
        auth: properties.AuthorizationType as string,
        authorizer: properties.AuthorizerId?.Ref as string | undefined,
        target: JSON.stringify(properties.Integration?.Uri ?? null),
      },
    ]),
  );
}

describe("the administrators' routes", () => {
  test("all six /admin/tokens methods exist, each behind agpat's authorizer and served by the token service", () => {
    const admin = TOKEN_ROUTES.filter((r) => r.path.startsWith("/admin/"));
    expect(admin.map((r) => `${r.method} ${r.path}`).sort()).toEqual([
      "DELETE /admin/tokens",
      "DELETE /admin/tokens/{id}",
      "GET /admin/tokens",
      "GET /admin/tokens/{id}",
      "GET /admin/tokens/{id}/events",
      "POST /admin/tokens",
    ]);
    for (const route of admin) {
      expect(route.access).toEqual({ kind: "scope", scope: "admin:tokens" });
    }
    const [authorizerId] = Object.keys(dev.template.findResources("AWS::ApiGateway::Authorizer"));
    const byKey = methods(dev.template);
    const tokenService = byKey.get("POST /tokens")?.target;
    expect(tokenService).toMatch(/tokenservice/i);
    for (const route of admin) {
      expect(byKey.get(`${route.method} ${route.path}`)).toEqual({
        auth: "CUSTOM",
        authorizer: authorizerId,
        target: tokenService,
      });
    }
  });
});
