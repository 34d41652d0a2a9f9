import { Template } from "aws-cdk-lib/assertions";
import { buildOnFixture } from "./fixture";

// Issue #16 item 3 in the construct: rate tiers become usage plans whose
// keys the authorizer names (API key source AUTHORIZER).
const tiers = {
  standard: { rateLimit: 100, burstLimit: 200, keys: 2 },
  bulk: { rateLimit: 10, burstLimit: 20, quota: { limit: 100000, period: "DAY" as const } },
};
const built = buildOnFixture("tiers", "dev", { rateTiers: tiers, defaultRateTier: "standard" });

const envOf = (template: Template, prefix: string): Record<string, string> => {
  const found = Object.entries(template.findResources("AWS::Lambda::Function")).filter(([id]) =>
    id.startsWith(prefix),
  );
  expect(found).toHaveLength(1);
  return (found[0][1] as { Properties: { Environment: { Variables: Record<string, string> } } })
    .Properties.Environment.Variables;
};

describe("rate tiers", () => {
  test("each tier is a usage plan on the stage with its throttle, quota and keys, and the API takes keys from the authorizer", () => {
    const t = built.template;
    t.hasResourceProperties("AWS::ApiGateway::RestApi", { ApiKeySourceType: "AUTHORIZER" });
    t.resourceCountIs("AWS::ApiGateway::UsagePlan", 2);
    t.hasResourceProperties("AWS::ApiGateway::UsagePlan", {
      Throttle: { RateLimit: 100, BurstLimit: 200 },
    });
    t.hasResourceProperties("AWS::ApiGateway::UsagePlan", {
      Throttle: { RateLimit: 10, BurstLimit: 20 },
      Quota: { Limit: 100000, Period: "DAY" },
    });
    t.resourceCountIs("AWS::ApiGateway::ApiKey", 3);
    t.resourceCountIs("AWS::ApiGateway::UsagePlanKey", 3);
    const keys = Object.values(t.findResources("AWS::ApiGateway::ApiKey")).map(
      (k) => (k as { Properties: { Value: string } }).Properties.Value,
    );
    const authorizer = envOf(t, "Agpatauthorizerfn");
    for (const key of keys) expect(authorizer.RATE_TIER_KEYS).toContain(key);
    expect(authorizer.RATE_TIER_KEYS).toMatch(
      /^standard=agpat-standard-[0-9a-f]{32}\|agpat-standard-[0-9a-f]{32},bulk=agpat-bulk-[0-9a-f]{32}$/,
    );
    expect(authorizer.RATE_TIER_DEFAULT).toBe("standard");
    expect(envOf(t, "Agpattokenservicefn").RATE_TIERS).toBe("standard,bulk");
  });

  test("with tiers every protected method requires the authorizer's key and no public one does; without tiers, or before they are enforced, none does", () => {
    const methods = (template: Template) =>
      Object.values(template.findResources("AWS::ApiGateway::Method")).map(
        (m) =>
          (m as { Properties: { AuthorizationType: string; ApiKeyRequired?: boolean } }).Properties,
      );
    for (const m of methods(built.template)) {
      expect(m.ApiKeyRequired === true).toBe(m.AuthorizationType === "CUSTOM");
    }
    const plain = buildOnFixture("tiers", "dev", {}, "plain");
    expect(methods(plain.template).some((m) => m.ApiKeyRequired !== undefined)).toBe(false);
    // The first of two deployments over a live stage: plans and keys, not required yet.
    const staged = buildOnFixture(
      "tiers",
      "dev",
      { rateTiers: tiers, rateTiersEnforced: false },
      "staged",
    );
    expect(methods(staged.template).some((m) => m.ApiKeyRequired === true)).toBe(false);
    staged.template.resourceCountIs("AWS::ApiGateway::UsagePlan", 2);
    expect(envOf(staged.template, "Agpatauthorizerfn").RATE_TIER_KEYS).toContain("standard=");
    plain.template.resourceCountIs("AWS::ApiGateway::UsagePlan", 0);
    expect(envOf(plain.template, "Agpatauthorizerfn").RATE_TIER_KEYS).toBeUndefined();
  });

  test("malformed tiers or an unknown default fail synthesis", () => {
    const bad: [object, RegExp][] = [
      [{ rateTiers: { Gold: { rateLimit: 1, burstLimit: 1 } } }, /a tier name is 1 to 32/],
      [{ rateTiers: { gold: { rateLimit: 0.5, burstLimit: 1 } } }, /rateLimit must be an integer/],
      [
        { rateTiers: { gold: { rateLimit: 1, burstLimit: 1, keys: 17 } } },
        /keys must be an integer/,
      ],
      [
        { rateTiers: { gold: { rateLimit: 1, burstLimit: 1 } }, defaultRateTier: "silver" },
        /defaultRateTier silver is not one of rateTiers/,
      ],
    ];
    bad.forEach(([props, message], i) => {
      expect(() => buildOnFixture("tiers", "dev", props, `bad${i}`)).toThrow(message);
    });
  });
});
