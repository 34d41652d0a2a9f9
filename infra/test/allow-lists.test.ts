import { TOKEN_SERVICE_BATCH_ATTRIBUTES } from "../lib";
import { buildOnFixture } from "./fixture";

// Issue #16 item 5 in the construct: allow-lists need the client address in
// the authorizer's cache key, and both Lambdas switched on.
const envOf = (built: ReturnType<typeof buildOnFixture>, prefix: string) => {
  const found = Object.entries(built.template.findResources("AWS::Lambda::Function")).filter(
    ([id]) => id.startsWith(prefix),
  );
  expect(found).toHaveLength(1);
  return (found[0][1] as { Properties: { Environment: { Variables: Record<string, unknown> } } })
    .Properties.Environment.Variables;
};

describe("IP allow-lists", () => {
  test("ipAllowLists keys the authorizer cache by Authorization and context.identity.sourceIp and switches both Lambdas on; off by default", () => {
    const off = buildOnFixture("ip", "dev");
    off.template.hasResourceProperties("AWS::ApiGateway::Authorizer", {
      IdentitySource: "method.request.header.Authorization",
    });
    expect(envOf(off, "Agpatauthorizerfn").AGPAT_IP_ALLOW_LISTS).toBeUndefined();
    expect(envOf(off, "Agpattokenservicefn").AGPAT_IP_ALLOW_LISTS).toBeUndefined();
    const on = buildOnFixture("ip", "dev", { ipAllowLists: true }, "on");
    on.template.hasResourceProperties("AWS::ApiGateway::Authorizer", {
      IdentitySource: "method.request.header.Authorization,context.identity.sourceIp",
    });
    expect(envOf(on, "Agpatauthorizerfn").AGPAT_IP_ALLOW_LISTS).toBe("on");
    expect(envOf(on, "Agpattokenservicefn").AGPAT_IP_ALLOW_LISTS).toBe("on");
  });

  test("turning ipAllowLists on redeploys the stage even without the authorizerChangeDeploymentLogicalId flag, and the listing may read the allow-list", () => {
    const deploymentIds = (built: ReturnType<typeof buildOnFixture>) =>
      Object.keys(built.template.findResources("AWS::ApiGateway::Deployment")).sort();
    expect(
      buildOnFixture("ip", "dev").app.node.tryGetContext(
        "@aws-cdk/aws-apigateway:authorizerChangeDeploymentLogicalId",
      ),
    ).toBeUndefined();
    const off = deploymentIds(buildOnFixture("ip", "dev", {}, "same"));
    const on = deploymentIds(buildOnFixture("ip", "dev", { ipAllowLists: true }, "same"));
    expect(on).toHaveLength(1);
    expect(on).not.toEqual(off);
    expect(TOKEN_SERVICE_BATCH_ATTRIBUTES).toContain("cidrs");
  });
});
