import { App, Stack, aws_apigateway as apigw } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Agpat, AgpatProps, loadManifest } from "../lib";
import { FIXTURE, STUB_ASSETS, buildOnFixture } from "./fixture";

// Issue #18 item 4 in the construct: bound tokens (DPoP) need every request
// to reach the authorizer, so `dpop` turns API Gateway's authorizer cache
// off, switches both Lambdas on, lets the authorizer spend proofs (and
// nothing else) in the table, and challenges with the DPoP scheme.
type Built = ReturnType<typeof buildOnFixture>;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const envOf = (built: Built, prefix: string): Record<string, unknown> => {
  const found = Object.entries(built.template.findResources("AWS::Lambda::Function")).filter(
    ([id]) => id.startsWith(prefix),
  );
  expect(found).toHaveLength(1);
  return (found[0][1] as Json).Properties.Environment.Variables;
};

const authorizerTtl = (t: Template): number =>
  (Object.values(t.findResources("AWS::ApiGateway::Authorizer"))[0] as Json).Properties
    .AuthorizerResultTtlInSeconds;

const authorizerStatements = (built: Built): Json[] => {
  const fn = Object.entries(built.template.findResources("AWS::Lambda::Function")).find(([id]) =>
    id.startsWith("Agpatauthorizerfn"),
  );
  const roleId = (fn?.[1] as Json).Properties.Role["Fn::GetAtt"][0];
  return Object.values(built.template.findResources("AWS::IAM::Policy"))
    .filter((p: Json) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap((p: Json) => p.Properties.PolicyDocument.Statement);
};

const unauthorizedChallenge = (t: Template): string =>
  (
    Object.values(t.findResources("AWS::ApiGateway::GatewayResponse")).find(
      (r: Json) => r.Properties.ResponseType === "UNAUTHORIZED",
    ) as Json
  ).Properties.ResponseParameters["gatewayresponse.header.WWW-Authenticate"];

describe("DPoP-bound tokens", () => {
  test("dpop turns the gateway's authorizer cache off, switches both Lambdas on and challenges with DPoP; off by default", () => {
    const off = buildOnFixture("dpop", "dev");
    expect(authorizerTtl(off.template)).toBe(60);
    expect(envOf(off, "Agpatauthorizerfn").AGPAT_DPOP).toBeUndefined();
    expect(envOf(off, "Agpattokenservicefn").AGPAT_DPOP).toBeUndefined();
    expect(unauthorizedChallenge(off.template)).toBe("'Bearer'");

    const on = buildOnFixture(
      "dpop",
      "dev",
      { dpop: { origins: ["https://api.example.com/v1"], proofMaxAgeSeconds: 30 } },
      "on",
    );
    expect(authorizerTtl(on.template)).toBe(0);
    const env = envOf(on, "Agpatauthorizerfn");
    expect(env.AGPAT_DPOP).toBe("on");
    expect(env.DPOP_ORIGINS).toBe("https://api.example.com/v1");
    expect(env.DPOP_PROOF_MAX_AGE_SECONDS).toBe("30");
    expect(env.DPOP_CLOCK_SKEW_SECONDS).toBe("5");
    expect(envOf(on, "Agpattokenservicefn").AGPAT_DPOP).toBe("on");
    expect(unauthorizedChallenge(on.template)).toBe(`'Bearer, DPoP algs="ES256 EdDSA"'`);
  });

  test("the authorizer may put only proof items (key, sort key, TTL) under DPOP#, and only with dpop on", () => {
    const proofPuts = (built: Built) =>
      authorizerStatements(built).filter((s) =>
        JSON.stringify(s.Condition ?? {}).includes("DPOP#"),
      );
    expect(proofPuts(buildOnFixture("dpop", "dev"))).toEqual([]);
    const on = proofPuts(buildOnFixture("dpop", "dev", { dpop: {} }, "iam"));
    expect(on).toHaveLength(1);
    expect(on[0].Action).toBe("dynamodb:PutItem");
    expect(on[0].Condition).toEqual({
      "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["DPOP#*"] },
      "ForAllValues:StringEquals": { "dynamodb:Attributes": ["PK", "SK", "ttl"] },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });
  });

  test("a cached authorizer answer cannot be combined with dpop, and origins and windows are checked", () => {
    expect(() =>
      buildOnFixture("dpop", "dev", { dpop: {}, authorizerCacheTtlSeconds: 60 }, "ttl"),
    ).toThrow(/dpop needs authorizerCacheTtlSeconds 0/);
    expect(
      buildOnFixture("dpop", "dev", { dpop: {}, authorizerCacheTtlSeconds: 0 }, "zero"),
    ).toBeDefined();
    expect(() =>
      buildOnFixture("dpop", "dev", { dpop: { origins: ["api.example.com"] } }, "o1"),
    ).toThrow(/dpop.origins must be https:\/\/ URLs without query/);
    expect(() =>
      buildOnFixture("dpop", "dev", { dpop: { proofMaxAgeSeconds: 3600 } }, "age"),
    ).toThrow(/dpop.proofMaxAgeSeconds must be a number from 5 to 300/);
    expect(() => buildOnFixture("dpop", "dev", { dpop: { clockSkewSeconds: 61 } }, "skew")).toThrow(
      /dpop.clockSkewSeconds must be a number from 0 to 60/,
    );
  });
});

describe("DPoP over an existing stage", () => {
  // Review finding: with `deploy: false` the construct cannot reach the
  // stage's deployment by itself, and API Gateway applies authorizer
  // changes only through a new one: a stage left on the old cache TTL
  // would serve a bound token's cached Allow without a proof.
  const ownDeployment = (props: Partial<AgpatProps>, withDeployment: boolean, name: string) => {
    const app = new App();
    const stack = new Stack(app, `dpop-own-${name}`);
    const api = new apigw.RestApi(stack, "Api", { cloudWatchRole: false, deploy: false });
    for (const route of loadManifest(FIXTURE).routes) {
      api.root.resourceForPath(route.path).addMethod(route.method);
    }
    const deployment = new apigw.Deployment(stack, "Deployment", { api });
    const stage = new apigw.Stage(stack, "Stage", { deployment, stageName: "live" });
    new Agpat(stack, "Agpat", {
      api,
      stage,
      ...(withDeployment ? { deployment } : {}),
      manifestPath: FIXTURE,
      lambdaAssets: STUB_ASSETS,
      envName: "dev",
      ...props,
    });
    return Template.fromStack(stack);
  };

  test("with deploy: false, dpop or ipAllowLists needs the stage's deployment, whose logical id then follows the authorizer's cache settings", () => {
    expect(() => ownDeployment({ dpop: {} }, false, "a")).toThrow(
      /with deploy: false, pass the stage's deployment as `deployment`/,
    );
    expect(() => ownDeployment({ ipAllowLists: true }, false, "b")).toThrow(
      /with deploy: false, pass the stage's deployment as `deployment`/,
    );
    expect(ownDeployment({}, false, "c")).toBeDefined();
    const ids = (t: Template) => Object.keys(t.findResources("AWS::ApiGateway::Deployment"));
    const off = ids(ownDeployment({}, true, "d"));
    const on = ids(ownDeployment({ dpop: {} }, true, "d"));
    expect(on).toHaveLength(1);
    expect(on).not.toEqual(off);
  });

  test("issueBoundTokens false turns the authorizer and the cache over first, and lets the token service bind only in a second deployment", () => {
    const first = buildOnFixture("dpop", "dev", { dpop: { issueBoundTokens: false } }, "step1");
    expect(authorizerTtl(first.template)).toBe(0);
    expect(envOf(first, "Agpatauthorizerfn").AGPAT_DPOP).toBe("on");
    expect(envOf(first, "Agpattokenservicefn").AGPAT_DPOP).toBeUndefined();
    const second = buildOnFixture("dpop", "dev", { dpop: {} }, "step2");
    expect(envOf(second, "Agpattokenservicefn").AGPAT_DPOP).toBe("on");
  });
});
