import { Match, Template } from "aws-cdk-lib/assertions";
import { GITHUB_SECRET_SCANNING_KEYS_URL, SECRET_SCANNING_PATH, TOKEN_ROUTES } from "../lib";
import { buildOnFixture } from "./fixture";

/** Template JSON, as untyped as the assertions library hands it out. */
type Json = ReturnType<Template["toJSON"]>;

// Issue #16 item 4 in the construct: the secret-scanning partner endpoint is a
// public built-in route on the token service, with its own throttle and the
// scanner's key URL.
const dev = buildOnFixture("scan", "dev");

const tokenServiceEnv = (t: Template): Record<string, unknown> => {
  const found = Object.entries(t.findResources("AWS::Lambda::Function")).filter(([id]) =>
    id.startsWith("Agpattokenservicefn"),
  );
  expect(found).toHaveLength(1);
  return (found[0][1] as { Properties: { Environment: { Variables: Record<string, unknown> } } })
    .Properties.Environment.Variables;
};

describe("the secret-scanning partner endpoint", () => {
  test("POST /tokens/secret-scanning is a public method of the token service with its own throttle (5 per second, burst 10)", () => {
    const route = TOKEN_ROUTES.find((r) => r.path === SECRET_SCANNING_PATH);
    expect(route).toMatchObject({ method: "POST", access: { kind: "public" } });
    const t = dev.template;
    const resources = t.findResources("AWS::ApiGateway::Resource", {
      Properties: { PathPart: "secret-scanning" },
    });
    const [resourceId] = Object.keys(resources);
    expect(resourceId).toBeDefined();
    t.hasResourceProperties("AWS::ApiGateway::Method", {
      HttpMethod: "POST",
      ResourceId: { Ref: resourceId },
      AuthorizationType: "NONE",
    });
    t.hasResourceProperties("AWS::ApiGateway::Stage", {
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          HttpMethod: "POST",
          ResourcePath: "/~1tokens~1secret-scanning",
          ThrottlingRateLimit: 5,
          ThrottlingBurstLimit: 10,
        }),
      ]),
    });
  });

  test("the token service fetches the scanner's keys from GitHub by default; an empty secretScanningKeysUrl turns the endpoint off, and only https is accepted", () => {
    expect(tokenServiceEnv(dev.template).SECRET_SCANNING_KEYS_URL).toBe(
      GITHUB_SECRET_SCANNING_KEYS_URL,
    );
    const own = buildOnFixture(
      "scan",
      "dev",
      {
        secretScanningKeysUrl: "https://scanner.example.com/keys",
        secretScanningRateLimit: 2,
        secretScanningBurstLimit: 3,
      },
      "own",
    );
    expect(tokenServiceEnv(own.template).SECRET_SCANNING_KEYS_URL).toBe(
      "https://scanner.example.com/keys",
    );
    own.template.hasResourceProperties("AWS::ApiGateway::Stage", {
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          ResourcePath: "/~1tokens~1secret-scanning",
          ThrottlingRateLimit: 2,
          ThrottlingBurstLimit: 3,
        }),
      ]),
    });
    const off = buildOnFixture("scan", "dev", { secretScanningKeysUrl: "" }, "off");
    expect(tokenServiceEnv(off.template).SECRET_SCANNING_KEYS_URL).toBeUndefined();
    for (const bad of ["http://scanner.example.com/keys", "ftp://x/y", "not a url"]) {
      expect(() =>
        buildOnFixture("scan", "dev", { secretScanningKeysUrl: bad }, `bad${bad.length}`),
      ).toThrow(/secretScanningKeysUrl must be an https:\/\/ URL/);
    }
  });
});

describe("the partner route at the edge", () => {
  test("in prod the web ACL limits partner reports per IP and keeps the common rule set (8 KB bodies, XSS) off the partner route", () => {
    const prod = buildOnFixture("scan", "prod");
    const acls = Object.values(prod.template.findResources("AWS::WAFv2::WebACL"));
    expect(acls).toHaveLength(1);
    const rules = (acls[0] as Json).Properties.Rules as Json[];
    const rule = (name: string): Json => {
      const found = rules.find((r) => r.Name === name);
      if (!found) throw new Error(`no rule ${name}`);
      return found;
    };
    const rate = rule("secret-scanning-rate-per-ip").Statement.RateBasedStatement;
    expect(rate).toMatchObject({ Limit: 300, AggregateKeyType: "IP", EvaluationWindowSec: 300 });
    expect(JSON.stringify(rate.ScopeDownStatement)).toContain(
      '"SearchString":"/tokens/secret-scanning"',
    );
    const common = rule("aws-common").Statement.ManagedRuleGroupStatement;
    const excluded = common.ScopeDownStatement.NotStatement.Statement.ByteMatchStatement;
    expect(excluded).toMatchObject({
      SearchString: "/tokens/secret-scanning",
      PositionalConstraint: "CONTAINS",
      FieldToMatch: { UriPath: {} },
    });
    expect(excluded.TextTransformations).toEqual([
      { Priority: 0, Type: "URL_DECODE" },
      { Priority: 1, Type: "LOWERCASE" },
    ]);
    // The known-bad-inputs set still sees the route.
    expect(
      rule("aws-known-bad-inputs").Statement.ManagedRuleGroupStatement.ScopeDownStatement,
    ).toBeUndefined();
  });
});
