import { buildOnFixture } from "./fixture";
import { Agpat } from "../lib";

// Issue #16 item 2 in the construct: client-credentials app clients are
// named apart from people's clients, and reach the authorizer as such.
const authorizerEnv = (built: ReturnType<typeof buildOnFixture>): Record<string, unknown> => {
  const found = Object.entries(built.template.findResources("AWS::Lambda::Function")).filter(
    ([id]) => id.startsWith("Agpatauthorizerfn"),
  );
  expect(found).toHaveLength(1);
  return (found[0][1] as { Properties: { Environment: { Variables: Record<string, unknown> } } })
    .Properties.Environment.Variables;
};

describe("machine credentials", () => {
  test("serviceClientIds reach the authorizer as COGNITO_SERVICE_CLIENT_IDS; unset, none is accepted; a people's client is refused", () => {
    const none = buildOnFixture("svc", "dev");
    expect(authorizerEnv(none).COGNITO_SERVICE_CLIENT_IDS).toBeUndefined();
    const some = buildOnFixture("svc", "dev", { serviceClientIds: ["ci123", "batch456"] }, "some");
    expect(authorizerEnv(some).COGNITO_SERVICE_CLIENT_IDS).toBe("ci123,batch456");
    expect(() =>
      buildOnFixture(
        "svc",
        "dev",
        {
          userPool: {
            userPool: (none.agpat as Agpat).userPool,
            clientIds: ["people1"],
          },
          serviceClientIds: ["people1"],
        },
        "clash",
      ),
    ).toThrow(/serviceClientIds must not repeat userPool.clientIds \(people1\)/);
  });
});
