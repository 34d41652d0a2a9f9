import * as fs from "fs";
import * as path from "path";
import { App, Stack, aws_apigateway as apigw, aws_sns as sns } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { Agpat, AgpatProps, loadManifest } from "../lib";
import { Built, FIXTURE, STUB_ASSETS, buildOnFixture } from "./fixture";

// Production operations of the construct: alarms, dashboard, namespaces,
// reserved concurrency, the migrator, deployment packages, WAF, gateway
// responses, budget, alert topic and the smoke-test client.
const routes = loadManifest(FIXTURE).routes;

/** Template JSON, as untyped as the assertions library hands it out. */
type Json = ReturnType<Template["toJSON"]>;

/** A stack of the fixture with agpat on it (see fixture.ts). */
function build(
  envName: "dev" | "prod",
  props: Partial<AgpatProps> = {},
  name: string = envName,
): Built {
  return buildOnFixture("ops", envName, props, name);
}

const dev = build("dev");
const prod = build("prod", {
  budget: { monthlyUsd: 50, thresholdsPercent: [80, 100] },
});

type Resource = Json;
/** The one resource of `type` whose logical id starts with `prefix`. */
function one(t: Template, type: string, prefix: string): { id: string; r: Resource } {
  const found = Object.entries(t.findResources(type)).filter(([id]) => id.startsWith(prefix));
  if (found.length !== 1) {
    throw new Error(`${found.length} ${type} start with ${prefix}: ${found.map(([id]) => id)}`);
  }
  return { id: found[0][0], r: found[0][1] as Resource };
}
const alarm = (t: Template, prefix: string) =>
  one(t, "AWS::CloudWatch::Alarm", `Agpat${prefix}`).r.Properties;
const fnId = (t: Template, name: string) =>
  one(t, "AWS::Lambda::Function", `Agpat${name.replace(/-/g, "")}fn`).id;
const topicRef = (t: Template) => ({ Ref: one(t, "AWS::SNS::Topic", "AgpatAlerts").id });

/** The metric-math entries of an alarm by id. */
function entries(props: Json): Json {
  const metrics = props.Metrics as Json[];
  const top = metrics.filter((m) => m.ReturnData !== false);
  expect(top).toHaveLength(1);
  return { ...Object.fromEntries(metrics.map((m) => [m.Id, m])), top: top[0] };
}
function stat(entry: Json) {
  return entry.MetricStat.Metric;
}

describe("alarms", () => {
  test("every alarm notifies the topic on ALARM and OK, with M of N periods unless one event must page", () => {
    const alarms = Object.entries(dev.template.findResources("AWS::CloudWatch::Alarm"));
    expect(alarms.length).toBeGreaterThanOrEqual(12);
    for (const [id, a] of alarms) {
      const p = a.Properties;
      expect({ id, actions: p.AlarmActions }).toEqual({ id, actions: [topicRef(dev.template)] });
      expect({ id, ok: p.OKActions }).toEqual({ id, ok: [topicRef(dev.template)] });
      expect(["notBreaching", "breaching", "missing", "ignore"]).toContain(p.TreatMissingData);
      if (id.startsWith("AgpatLeakedTokenReported")) {
        expect([p.DatapointsToAlarm, p.EvaluationPeriods]).toEqual([1, 1]);
      } else {
        expect({ id, less: p.DatapointsToAlarm < p.EvaluationPeriods }).toEqual({ id, less: true });
      }
    }
  });

  test("no alarm watches the authorizer's Lambda Errors metric, which counts every 401", () => {
    const authorizer = fnId(dev.template, "authorizer");
    for (const a of Object.values(dev.template.findResources("AWS::CloudWatch::Alarm"))) {
      const metrics = [
        a.Properties,
        ...(a.Properties.Metrics ?? []).map((m: Json) => m.MetricStat?.Metric ?? {}),
      ];
      for (const m of metrics) {
        if (m.MetricName === "Errors") {
          expect(JSON.stringify(m.Dimensions)).not.toContain(authorizer);
        }
      }
    }
  });

  test("fail-closed decisions alarm as a share of all decisions, only above a minimum volume", () => {
    const p = alarm(dev.template, "FailClosedRate");
    const e = entries(p);
    // Below 20 decisions, 3 fail-closed ones still page: a quiet stage that
    // fails every request is an outage, not noise.
    expect(e.top.Expression).toBe(
      "IF(total >= 20, 100 * FILL(error, 0) / total, IF(FILL(error, 0) >= 3, 100, 0))",
    );
    expect(e.total.Expression).toBe(
      "FILL(allow, 0) + FILL(deny, 0) + FILL(unauthorized, 0) + FILL(error, 0)",
    );
    for (const outcome of ["allow", "deny", "unauthorized", "error"]) {
      expect(stat(e[outcome])).toEqual({
        Namespace: "agpat/dev",
        MetricName: "Decisions",
        Dimensions: [{ Name: "Outcome", Value: outcome }],
      });
      expect(e[outcome].MetricStat.Stat).toBe("Sum");
      expect(e[outcome].ReturnData).toBe(false);
    }
    expect(p).toMatchObject({
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      TreatMissingData: "notBreaching",
    });
  });

  test("a spike of unauthorized decisions alarms as a share, with the same volume guard", () => {
    const p = alarm(dev.template, "UnauthorizedSpike");
    const e = entries(p);
    expect(e.top.Expression).toBe("IF(total >= 20, 100 * FILL(unauthorized, 0) / total, 0)");
    expect(stat(e.unauthorized).Dimensions).toEqual([{ Name: "Outcome", Value: "unauthorized" }]);
    expect(p.Threshold).toBe(50);
    const custom = build(
      "dev",
      { alarms: { unauthorizedPercent: 80, minimumDecisions: 100 } },
      "c",
    );
    const c = alarm(custom.template, "UnauthorizedSpike");
    expect(entries(c).top.Expression).toBe(
      "IF(total >= 100, 100 * FILL(unauthorized, 0) / total, 0)",
    );
    expect(c.Threshold).toBe(80);
    expect(() => build("dev", { alarms: { minimumDecisions: 0 } }, "bad")).toThrow(
      /alarms.minimumDecisions must be a number from 1 to 1000000 \(got 0\)/,
    );
  });

  test("a leaked-token report pages on the first one", () => {
    expect(alarm(dev.template, "LeakedTokenReported")).toMatchObject({
      Namespace: "agpat/dev",
      MetricName: "TokenOperations",
      Dimensions: [
        { Name: "Operation", Value: "token.leaked_revoke" },
        { Name: "Outcome", Value: "success" },
      ],
      Statistic: "Sum",
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      TreatMissingData: "notBreaching",
    });
  });

  test("token-service errors, every function's throttles, the API's 5XX rate and p99 latency alarm", () => {
    const t = dev.template;
    const errors = entries(alarm(t, "TokenServiceErrorRate"));
    expect(errors.top.Expression).toBe(
      "IF(invocations >= 20, 100 * FILL(errors, 0) / invocations, IF(FILL(errors, 0) >= 3, 100, 0))",
    );
    expect(stat(errors.errors)).toMatchObject({
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId(t, "token-service") } }],
    });
    for (const name of [
      "authorizer",
      "token-service",
      "offboarding",
      "migrator",
      "expiry-sweeper",
    ]) {
      const id = name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase());
      expect(alarm(t, `${id}Throttles`)).toMatchObject({
        Namespace: "AWS/Lambda",
        MetricName: "Throttles",
        Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId(t, name) } }],
        Statistic: "Sum",
        EvaluationPeriods: 3,
        DatapointsToAlarm: 2,
      });
    }
    const api5xx = entries(alarm(t, "Api5xxRate"));
    expect(api5xx.top.Expression).toBe(
      "IF(requests >= 20, 100 * FILL(errors, 0) / requests, IF(FILL(errors, 0) >= 3, 100, 0))",
    );
    const stageDims = [
      { Name: "ApiName", Value: "Api" },
      { Name: "Stage", Value: Match.anyValue() },
    ];
    expect(stat(api5xx.errors)).toMatchObject({
      Namespace: "AWS/ApiGateway",
      MetricName: "5XXError",
    });
    expect(stat(api5xx.requests)).toMatchObject({
      Namespace: "AWS/ApiGateway",
      MetricName: "Count",
    });
    expect(stat(api5xx.errors).Dimensions.map((d: Json) => d.Name)).toEqual(["ApiName", "Stage"]);
    expect(stageDims).toHaveLength(2);
    const latency = alarm(t, "ApiP99Latency");
    const l = entries(latency);
    expect(l.top.Expression).toBe("IF(requests >= 20, p99, 0)");
    expect(stat(l.p99)).toMatchObject({ Namespace: "AWS/ApiGateway", MetricName: "Latency" });
    expect(l.p99.MetricStat.Stat).toBe("p99");
    expect(latency.Threshold).toBe(1000);
    expect(
      alarm(build("dev", { alarms: { apiP99LatencyMs: 2500 } }, "lat").template, "ApiP99Latency")
        .Threshold,
    ).toBe(2500);
  });

  test("DynamoDB throttles and system errors on the token table alarm", () => {
    const t = dev.template;
    const table = { Ref: one(t, "AWS::DynamoDB::Table", "AgpatTable").id };
    const throttles = entries(alarm(t, "TableThrottles"));
    expect(throttles.top.Expression).toBe("FILL(reads, 0) + FILL(writes, 0)");
    expect(stat(throttles.reads)).toEqual({
      Namespace: "AWS/DynamoDB",
      MetricName: "ReadThrottleEvents",
      Dimensions: [{ Name: "TableName", Value: table }],
    });
    expect(stat(throttles.writes).MetricName).toBe("WriteThrottleEvents");
    const system = alarm(t, "TableSystemErrors");
    const names = (system.Metrics as Json[])
      .filter((m) => m.MetricStat)
      .map((m) => [m.MetricStat.Metric.MetricName, m.MetricStat.Metric.Dimensions]);
    for (const op of ["GetItem", "PutItem", "UpdateItem", "Query", "Scan"]) {
      expect(names).toContainEqual([
        "SystemErrors",
        expect.arrayContaining([
          { Name: "Operation", Value: op },
          { Name: "TableName", Value: table },
        ]),
      ]);
    }
  });

  test("offboarding dead letters and errors keep alarming, in M of N periods", () => {
    expect(alarm(dev.template, "OffboardingDlqMessages")).toMatchObject({
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
    });
    expect(alarm(dev.template, "OffboardingErrors")).toMatchObject({
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId(dev.template, "offboarding") } }],
    });
  });
});

describe("dashboard and namespaces", () => {
  test("the dashboard shows decisions, latency, cache, JWKS, tokens, API, DynamoDB and every alarm", () => {
    expect(dev.agpat.dashboard).toBeDefined();
    const { r } = one(dev.template, "AWS::CloudWatch::Dashboard", "AgpatDashboard");
    const body = JSON.stringify(r.Properties.DashboardBody);
    for (const metric of [
      "Decisions",
      "DecisionLatency",
      "CacheHits",
      "Argon2Evaluations",
      "JwksFetches",
      "TokenOperations",
      "4XXError",
      "5XXError",
      "Latency",
      "ReadThrottleEvents",
      "WriteThrottleEvents",
    ]) {
      expect(body).toContain(`\\"${metric}\\"`);
    }
    expect(body).toContain('\\"agpat/dev\\"');
    expect(body).toContain("Expiry sweeps and owner emails: invocations and errors");
    expect(body).toContain('\\"p50\\"');
    expect(body).toContain('\\"p99\\"');
    // The alarm status widget lists every alarm.
    expect(body).toContain('\\"type\\":\\"alarm\\"');
    for (const id of Object.keys(dev.template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(body).toContain(`"${id}","Arn"`);
    }
  });

  test("dev and prod put their metrics in different namespaces: functions, alarms, dashboard", () => {
    for (const [b, ns] of [
      [dev, "agpat/dev"],
      [prod, "agpat/prod"],
    ] as const) {
      for (const name of ["authorizer", "token-service", "migrator"]) {
        const { r } = one(b.template, "AWS::Lambda::Function", `Agpat${name.replace(/-/g, "")}fn`);
        expect(r.Properties.Environment.Variables.AGPAT_METRICS_NAMESPACE).toBe(ns);
      }
      expect(alarm(b.template, "LeakedTokenReported").Namespace).toBe(ns);
      const body = JSON.stringify(
        one(b.template, "AWS::CloudWatch::Dashboard", "AgpatDashboard").r.Properties.DashboardBody,
      );
      expect(body).toContain(`\\"${ns}\\"`);
      expect(body).not.toContain(ns === "agpat/dev" ? "agpat/prod" : "agpat/dev");
    }
    const named = build("dev", { metricsNamespace: "acme/auth" }, "ns");
    expect(alarm(named.template, "LeakedTokenReported").Namespace).toBe("acme/auth");
    expect(() => build("dev", { metricsNamespace: "AWS/Lambda" }, "aws")).toThrow(
      /metricsNamespace must be 1–255 of .* not start with AWS\/ \(got AWS\/Lambda\)/,
    );
  });
});

describe("functions", () => {
  const reserved = (b: Built, name: string) =>
    one(b.template, "AWS::Lambda::Function", `Agpat${name.replace(/-/g, "")}fn`).r.Properties
      .ReservedConcurrentExecutions;

  test("reserved concurrency: prod defaults, dev unreserved, the migrator always 1, ranges checked", () => {
    expect(
      ["authorizer", "token-service", "offboarding", "migrator"].map((n) => reserved(prod, n)),
    ).toEqual([400, 20, 5, 1]);
    expect(
      ["authorizer", "token-service", "offboarding", "migrator"].map((n) => reserved(dev, n)),
    ).toEqual([undefined, undefined, undefined, 1]);
    const custom = build("dev", { reservedConcurrency: { authorizer: 50 } }, "rc");
    expect(reserved(custom, "authorizer")).toBe(50);
    expect(reserved(custom, "token-service")).toBeUndefined();
    expect(() => build("dev", { reservedConcurrency: { offboarding: 0 } }, "rc0")).toThrow(
      /reservedConcurrency.offboarding must be a number from 1 to 1000 \(got 0\)/,
    );
    expect(() => build("dev", { reservedConcurrency: { migrator: 2 } as never }, "rcm")).toThrow(
      /reservedConcurrency.migrator cannot be set: the migrator always runs alone/,
    );
  });

  test("gives the authorizer one vCPU so the emergency lever's argon2 wave fits its reserved concurrency", () => {
    // BENCHMARKS.md "A deploy": after the lever every PAT key misses at once
    // on new instances; argon2id is single-threaded, so one vCPU (1769 MB)
    // runs it ~7x faster than 256 MB and the wave needs fewer concurrent
    // invocations than the prod reservation of 400 (about 210 at 1M req/s;
    // 880-1080 at 256 MB).
    const memory = (b: Built, name: string) =>
      one(b.template, "AWS::Lambda::Function", `Agpat${name.replace(/-/g, "")}fn`).r.Properties
        .MemorySize;
    for (const b of [dev, prod]) {
      expect(memory(b, "authorizer")).toBe(1769);
      expect(memory(b, "token-service")).toBe(512);
    }
    expect(reserved(prod, "authorizer")).toBe(400);
  });

  test("the migrator: 15 minutes, its own log group, no trigger, and only the table actions it uses", () => {
    const t = dev.template;
    const { id, r } = one(t, "AWS::Lambda::Function", "Agpatmigratorfn");
    expect(r.Properties).toMatchObject({ Timeout: 900, Runtime: "provided.al2023" });
    expect(r.Properties.LoggingConfig.LogGroup).toEqual({
      Ref: one(t, "AWS::Logs::LogGroup", "Agpatmigratorlogs").id,
    });
    expect(dev.agpat.functions.migrator).toBeDefined();
    // Nothing invokes it: no permission, rule target or event source mapping.
    const json = JSON.stringify([
      t.findResources("AWS::Lambda::Permission"),
      t.findResources("AWS::Events::Rule"),
      t.findResources("AWS::Lambda::EventSourceMapping"),
    ]);
    expect(json).not.toContain(id);
    // Its role's statements.
    const roleId = r.Properties.Role["Fn::GetAtt"][0];
    const statements = Object.values(t.findResources("AWS::IAM::Policy"))
      .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    const dynamo = statements.filter((s: Json) => JSON.stringify(s.Action).includes("dynamodb:"));
    const simplified = dynamo.map((s: Json) => ({ Action: s.Action, Condition: s.Condition }));
    expect(simplified).toEqual([
      {
        // It reads the key, the version, the v1 scopes and the expiry, never a hash.
        Action: "dynamodb:Scan",
        Condition: {
          "ForAllValues:StringEquals": {
            "dynamodb:Attributes": ["PK", "SK", "v", "scopes", "expires_at"],
          },
          StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
        },
      },
      {
        Action: "dynamodb:UpdateItem",
        Condition: {
          "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TOKEN#*"] },
          // Schema v3: the version, the scope set and the expiry index's keys.
          "ForAllValues:StringEquals": {
            "dynamodb:Attributes": ["PK", "SK", "v", "scope_set", "GSI2PK", "GSI2SK"],
          },
          StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
        },
      },
      {
        Action: "dynamodb:GetItem",
        Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["MIGRATION#*"] } },
      },
      {
        Action: "dynamodb:PutItem",
        Condition: {
          "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["MIGRATION#*"] },
          "ForAllValues:StringEquals": { "dynamodb:Attributes": ["PK", "SK", "state"] },
          StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
        },
      },
    ]);
    for (const s of dynamo) {
      expect(s.Resource).toEqual({
        "Fn::GetAtt": [one(t, "AWS::DynamoDB::Table", "AgpatTable").id, "Arn"],
      });
    }
  });

  test("every function's asset is its prebuilt bootstrap.zip, uploaded as is, with nothing nested", () => {
    const manifest = JSON.parse(
      fs.readFileSync(path.join(dev.assemblyDir, "ops-dev.assets.json"), "utf8"),
    );
    for (const name of ["authorizer", "token-service", "offboarding", "migrator"]) {
      const { r } = one(dev.template, "AWS::Lambda::Function", `Agpat${name.replace(/-/g, "")}fn`);
      const key: string = r.Properties.Code.S3Key;
      const asset = manifest.files[key.replace(/\.zip$/, "")];
      expect({ name, packaging: asset.source.packaging }).toEqual({ name, packaging: "file" });
      const staged = path.join(dev.assemblyDir, asset.source.path);
      const original = path.join(STUB_ASSETS, name, "bootstrap.zip");
      expect(fs.readFileSync(staged)).toEqual(fs.readFileSync(original));
      expect(zipEntries(fs.readFileSync(staged))).toEqual(["bootstrap"]);
    }
    expect(() => build("dev", { lambdaAssets: path.join(STUB_ASSETS, "absent") }, "na")).toThrow(
      /authorizer\/bootstrap\.zip does not exist; build it with scripts\/build-lambdas\.sh/,
    );
  });
});

/** The names in a zip's central directory. */
function zipEntries(zip: Buffer): string[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const nameLength = zip.readUInt16LE(at + 28);
    const extra = zip.readUInt16LE(at + 30);
    const comment = zip.readUInt16LE(at + 32);
    names.push(zip.subarray(at + 46, at + 46 + nameLength).toString("utf8"));
    at += 46 + nameLength + extra + comment;
  }
  return names;
}

describe("WAF", () => {
  test("prod gets a regional web ACL on the stage: revoke limit, general limit, then managed rules", () => {
    dev.template.resourceCountIs("AWS::WAFv2::WebACL", 0);
    const t = prod.template;
    const { id, r } = one(t, "AWS::WAFv2::WebACL", "AgpatWebAcl");
    const acl = r.Properties;
    expect(acl.Scope).toBe("REGIONAL");
    expect(acl.DefaultAction).toEqual({ Allow: {} });
    expect(acl.VisibilityConfig.MetricName).toBe("agpat-prod-web-acl");
    const rules = acl.Rules as Json[];
    expect(rules.map((x) => [x.Priority, x.Name])).toEqual([
      [0, "revoke-rate-per-ip"],
      [1, "rate-per-ip"],
      [2, "aws-common"],
      [3, "aws-known-bad-inputs"],
      [4, "secret-scanning-rate-per-ip"],
    ]);
    expect(rules[0].Statement.RateBasedStatement).toMatchObject({
      Limit: 100,
      AggregateKeyType: "IP",
      EvaluationWindowSec: 300,
    });
    const scopeDown = JSON.stringify(rules[0].Statement.RateBasedStatement.ScopeDownStatement);
    expect(scopeDown).toContain('"Method":{}');
    expect(scopeDown).toContain('"SearchString":"POST"');
    expect(scopeDown).toContain('"UriPath":{}');
    expect(scopeDown).toContain('"SearchString":"/tokens/revoke"');
    // Encodings, case and a trailing slash do not escape the tight limit.
    const pathMatch =
      rules[0].Statement.RateBasedStatement.ScopeDownStatement.AndStatement.Statements.find(
        (st: Json) => st.ByteMatchStatement?.FieldToMatch?.UriPath,
      ).ByteMatchStatement;
    expect(pathMatch.PositionalConstraint).toBe("CONTAINS");
    expect(pathMatch.TextTransformations).toEqual([
      { Priority: 0, Type: "URL_DECODE" },
      { Priority: 1, Type: "LOWERCASE" },
    ]);
    // No sampled requests: they would keep Authorization headers.
    expect(acl.VisibilityConfig.SampledRequestsEnabled).toBe(false);
    for (const rule of rules) expect(rule.VisibilityConfig.SampledRequestsEnabled).toBe(false);
    expect(rules[1].Statement.RateBasedStatement).toMatchObject({
      Limit: 2000,
      AggregateKeyType: "IP",
    });
    expect(rules[1].Statement.RateBasedStatement.ScopeDownStatement).toBeUndefined();
    expect(rules[2].Statement.ManagedRuleGroupStatement).toMatchObject({
      VendorName: "AWS",
      Name: "AWSManagedRulesCommonRuleSet",
    });
    expect(rules[3].Statement.ManagedRuleGroupStatement).toMatchObject({
      VendorName: "AWS",
      Name: "AWSManagedRulesKnownBadInputsRuleSet",
    });
    for (const rule of rules) {
      expect(rule.VisibilityConfig.MetricName).toBe(`agpat-prod-${rule.Name}`);
    }
    t.hasResourceProperties("AWS::WAFv2::WebACLAssociation", {
      WebACLArn: { "Fn::GetAtt": [id, "Arn"] },
      ResourceArn: Match.objectLike({ "Fn::Join": Match.anyValue() }),
    });
    const association = JSON.stringify(
      Object.values(t.findResources("AWS::WAFv2::WebACLAssociation"))[0].Properties.ResourceArn,
    );
    expect(association).toContain("/stages/");
    // Logs go to an aws-waf-logs- group, never with the Authorization header.
    const logging = Object.values(t.findResources("AWS::WAFv2::LoggingConfiguration"))[0]
      .Properties;
    expect(logging.ResourceArn).toEqual({ "Fn::GetAtt": [id, "Arn"] });
    expect(logging.RedactedFields).toContainEqual({ SingleHeader: { Name: "authorization" } });
    expect(JSON.stringify(logging.LogDestinationConfigs)).toContain("aws-waf-logs-");
    const custom = build(
      "dev",
      { waf: { rateLimit: 500, revokeRateLimit: 20, logging: false } },
      "w",
    );
    const customRules = one(custom.template, "AWS::WAFv2::WebACL", "AgpatWebAcl").r.Properties
      .Rules;
    expect(customRules[0].Statement.RateBasedStatement.Limit).toBe(20);
    expect(customRules[1].Statement.RateBasedStatement.Limit).toBe(500);
    custom.template.resourceCountIs("AWS::WAFv2::LoggingConfiguration", 0);
    build("prod", { waf: false }, "nowaf").template.resourceCountIs("AWS::WAFv2::WebACL", 0);
    expect(() => build("dev", { waf: { revokeRateLimit: 5 } }, "w5")).toThrow(
      /waf.revokeRateLimit must be a number from 10 to 2000000000 \(got 5\)/,
    );
  });
});

describe("gateway responses", () => {
  test("DEFAULT_4XX and DEFAULT_5XX are problem+json with the request id, and 5XX never shows the error message", () => {
    const responses = dev.template.findResources("AWS::ApiGateway::GatewayResponse");
    const byType = Object.fromEntries(
      Object.values(responses).map((r) => [r.Properties.ResponseType, r.Properties]),
    );
    for (const type of [
      "DEFAULT_4XX",
      "DEFAULT_5XX",
      "UNAUTHORIZED",
      "ACCESS_DENIED",
      "THROTTLED",
    ]) {
      const p = byType[type];
      expect(p.ResponseParameters["gatewayresponse.header.Content-Type"]).toBe(
        "'application/problem+json'",
      );
      const body = p.ResponseTemplates["application/json"] as string;
      expect(body).toContain('"requestId":"$context.requestId"');
      expect(body).not.toContain("$context.error.message");
      expect(body).toMatch(/"type":"urn:agpat:problem:[a-z-]+"/);
    }
    // Each keeps the status it has: no StatusCode is forced on the defaults.
    expect(byType.DEFAULT_4XX.StatusCode).toBeUndefined();
    expect(byType.DEFAULT_5XX.StatusCode).toBeUndefined();
    expect(byType.DEFAULT_4XX.ResponseTemplates["application/json"]).toContain(
      '"code":"$context.error.responseType"',
    );
    expect(byType.DEFAULT_5XX.ResponseTemplates["application/json"]).not.toContain(
      "$context.error",
    );
    // The existing types did not change.
    expect(byType.UNAUTHORIZED.ResponseTemplates["application/json"]).toContain(
      '"type":"urn:agpat:problem:unauthenticated"',
    );
  });
});

describe("budget, topic and subscribers", () => {
  test("everything is tagged, and the budget counts only this app in this environment, with a forecast", () => {
    const table = one(prod.template, "AWS::DynamoDB::Table", "AgpatTable").r.Properties;
    expect(table.Tags).toEqual(
      expect.arrayContaining([
        { Key: "app", Value: "agpat" },
        { Key: "env", Value: "prod" },
      ]),
    );
    const budget = Object.values(prod.template.findResources("AWS::Budgets::Budget"))[0].Properties;
    expect(budget.Budget.FilterExpression).toEqual({
      And: [
        { Tags: { Key: "app", Values: ["agpat"], MatchOptions: ["EQUALS"] } },
        { Tags: { Key: "env", Values: ["prod"], MatchOptions: ["EQUALS"] } },
      ],
    });
    const notifications = budget.NotificationsWithSubscribers.map((n: Json) => [
      n.Notification.NotificationType,
      n.Notification.Threshold,
    ]);
    expect(notifications).toEqual([
      ["ACTUAL", 80],
      ["ACTUAL", 100],
      ["FORECASTED", 100],
    ]);
  });

  test("budgets may publish to the alert topic only for this account", () => {
    const policy = Object.values(prod.template.findResources("AWS::SNS::TopicPolicy"))[0];
    const budgets = policy.Properties.PolicyDocument.Statement.filter(
      (s: Json) => s.Principal?.Service === "budgets.amazonaws.com",
    );
    expect(budgets).toHaveLength(1);
    expect(budgets[0].Condition).toEqual({
      StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } },
      ArnLike: {
        "aws:SourceArn": {
          "Fn::Join": [
            "",
            ["arn:", { Ref: "AWS::Partition" }, ":budgets::", { Ref: "AWS::AccountId" }, ":*"],
          ],
        },
      },
    });
  });

  test("this account's CloudWatch alarms may publish to the alert topic, which enforces TLS", () => {
    // A topic policy replaces SNS's default one: without this statement every
    // alarm action would fail to publish. Dev has no budget, so its policy is
    // the one to read: the statement must not depend on the budget.
    for (const t of [dev.template, prod.template]) {
      const policy = Object.values(t.findResources("AWS::SNS::TopicPolicy"))[0];
      const statements = policy.Properties.PolicyDocument.Statement;
      const alarms = statements.filter(
        (s: Json) => s.Principal?.Service === "cloudwatch.amazonaws.com",
      );
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject({ Effect: "Allow", Action: "sns:Publish" });
      expect(alarms[0].Condition).toEqual({
        StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } },
        ArnLike: {
          "aws:SourceArn": {
            "Fn::Join": [
              "",
              [
                "arn:",
                { Ref: "AWS::Partition" },
                ":cloudwatch:",
                { Ref: "AWS::Region" },
                ":",
                { Ref: "AWS::AccountId" },
                ":alarm:*",
              ],
            ],
          },
        },
      });
      expect(
        statements.some(
          (s: Json) =>
            s.Effect === "Deny" && JSON.stringify(s.Condition).includes("aws:SecureTransport"),
        ),
      ).toBe(true);
    }
  });

  test("the prod user pool has deletion protection; dev's can be deleted", () => {
    const pool = (t: Template) => one(t, "AWS::Cognito::UserPool", "AgpatUserPool").r;
    expect(pool(prod.template).Properties.DeletionProtection).toBe("ACTIVE");
    expect(pool(prod.template).DeletionPolicy).toBe("Retain");
    expect(pool(dev.template).Properties.DeletionProtection ?? "INACTIVE").toBe("INACTIVE");
  });

  test("prod without an alert subscriber is refused", () => {
    expect(() => build("prod", { alertEmail: undefined }, "nosub")).toThrow(
      /envName "prod" needs someone to receive alarms: pass alertEmail, or alertTopic with your own subscription/,
    );
    // The adopter's own topic is enough: its subscriptions are the adopter's.
    const app = new App();
    const stack = new Stack(app, "own-topic");
    const api = new apigw.RestApi(stack, "Api", { cloudWatchRole: false });
    for (const route of routes) api.root.resourceForPath(route.path).addMethod(route.method);
    const agpat = new Agpat(stack, "Agpat", {
      api,
      manifestPath: FIXTURE,
      lambdaAssets: STUB_ASSETS,
      envName: "prod",
      alertTopic: new sns.Topic(stack, "Mine"),
    });
    expect(agpat.alertTopic.node.id).toBe("Mine");
  });

  test("the smoke-test client allows only admin password auth; the public client no USER_PASSWORD_AUTH", () => {
    const clients = (b: Built) =>
      Object.entries(b.template.findResources("AWS::Cognito::UserPoolClient"));
    const [[, publicClient]] = clients(dev);
    expect(clients(dev)).toHaveLength(1);
    expect(publicClient.Properties.ExplicitAuthFlows).not.toContain("ALLOW_USER_PASSWORD_AUTH");
    expect(dev.agpat.smokeTestClientId).toBeUndefined();
    const smoke = build("dev", { smokeTestClient: true }, "smoke");
    const { r } = one(
      smoke.template,
      "AWS::Cognito::UserPoolClient",
      "AgpatUserPoolSmokeTestClient",
    );
    expect(r.Properties.ExplicitAuthFlows.sort()).toEqual([
      "ALLOW_ADMIN_USER_PASSWORD_AUTH",
      "ALLOW_REFRESH_TOKEN_AUTH",
    ]);
    expect(r.Properties.GenerateSecret).toBe(false);
    expect(smoke.agpat.smokeTestClientId).toBeDefined();
    // Its tokens are accepted like the public client's.
    const authorizer = one(smoke.template, "AWS::Lambda::Function", "Agpatauthorizerfn").r;
    expect(
      JSON.stringify(authorizer.Properties.Environment.Variables.COGNITO_CLIENT_IDS),
    ).toContain("AgpatUserPoolSmokeTestClient");
  });
});

describe("gradual releases", () => {
  /** The alias of function `name` and the deployment group that moves it. */
  function release(t: Template, name: string) {
    const fn = fnId(t, name);
    const aliases = Object.entries(t.findResources("AWS::Lambda::Alias")).filter(
      ([, a]) => JSON.stringify(a.Properties.FunctionName) === JSON.stringify({ Ref: fn }),
    );
    expect(aliases).toHaveLength(1);
    const [aliasId, alias] = aliases[0];
    // CloudFormation hands the alias's updates to this deployment group.
    const groupId = alias.UpdatePolicy.CodeDeployLambdaAliasUpdate.DeploymentGroupName.Ref;
    const group = t.findResources("AWS::CodeDeploy::DeploymentGroup")[groupId];
    expect(group).toBeDefined();
    return { aliasId, alias, group };
  }

  test("API Gateway invokes the live aliases, which CodeDeploy releases as a canary in prod and at once in dev", () => {
    for (const [built, config] of [
      [prod, "CodeDeployDefault.LambdaCanary10Percent5Minutes"],
      [dev, "CodeDeployDefault.LambdaAllAtOnce"],
    ] as const) {
      const t = built.template;
      const authorizer = release(t, "authorizer");
      const tokens = release(t, "token-service");
      for (const r of [authorizer, tokens]) {
        expect(r.alias.Properties.Name).toBe("live");
        expect(r.group.Properties.DeploymentConfigName).toBe(config);
        expect([...r.group.Properties.AutoRollbackConfiguration.Events].sort()).toEqual([
          "DEPLOYMENT_FAILURE",
          "DEPLOYMENT_STOP_ON_ALARM",
          "DEPLOYMENT_STOP_ON_REQUEST",
        ]);
      }
      const [authz] = Object.values(t.findResources("AWS::ApiGateway::Authorizer"));
      expect(JSON.stringify(authz.Properties.AuthorizerUri)).toContain(
        JSON.stringify({ Ref: authorizer.aliasId }),
      );
      expect(JSON.stringify(authz.Properties.AuthorizerUri)).not.toContain(fnId(t, "authorizer"));
      // Every /tokens method integrates with the token service's alias.
      const methods = Object.values(t.findResources("AWS::ApiGateway::Method"));
      const integrations = methods.map((m) => JSON.stringify(m.Properties.Integration ?? {}));
      expect(integrations.filter((i) => i.includes(`"${tokens.aliasId}"`))).toHaveLength(
        methods.filter((m) => String(m.Properties.ResourceId?.Ref ?? "").includes("tokens")).length,
      );
      expect(
        integrations.filter((i) => i.includes(`"${tokens.aliasId}"`)).length,
      ).toBeGreaterThanOrEqual(9);
      expect(integrations.filter((i) => i.includes(fnId(t, "token-service")))).toEqual([]);
    }
  });

  test("a release rolls back on one-minute guarded alarms: fail-closed and 5XX for the authorizer, crashes and 5XX for the token service", () => {
    const t = prod.template;
    const names = (group: Json) =>
      group.Properties.AlarmConfiguration.Alarms.map((a: Json) => a.Name.Ref).sort();
    const id = (prefix: string) => one(t, "AWS::CloudWatch::Alarm", `Agpat${prefix}`).id;
    expect(names(release(t, "authorizer").group)).toEqual(
      [id("ReleaseFailClosed"), id("ReleaseApi5xx")].sort(),
    );
    expect(names(release(t, "token-service").group)).toEqual(
      [id("ReleaseTokenServiceErrors"), id("ReleaseApi5xx")].sort(),
    );
    for (const prefix of ["ReleaseFailClosed", "ReleaseApi5xx", "ReleaseTokenServiceErrors"]) {
      const a = alarm(t, prefix);
      expect(a).toMatchObject({ EvaluationPeriods: 3, DatapointsToAlarm: 2 });
      expect(a.AlarmActions).toEqual([topicRef(t)]);
      expect(a.OKActions).toEqual([topicRef(t)]);
      const e = entries(a);
      expect(e.top.Expression).toMatch(
        /^IF\((total|requests|invocations) >= \d+, 100 \* FILL\(\w+, 0\) \/ \w+, IF\(FILL\(\w+, 0\) >= 3, 100, 0\)\)$/,
      );
      for (const m of Object.values(e) as Json[]) {
        if (m.MetricStat) expect(m.MetricStat.Period).toBe(60);
      }
    }
    // The token service's guard watches its alias (the new code), not the function.
    const crashes = entries(alarm(t, "ReleaseTokenServiceErrors"));
    expect(stat(crashes.errors).Dimensions).toEqual(
      expect.arrayContaining([expect.objectContaining({ Name: "Resource" })]),
    );
  });

  test("before traffic moves, each new version must refuse a request without a credential", () => {
    const t = prod.template;
    const events = path.join(__dirname, "..", "lib", "hooks", "pre-traffic", "events");
    const expected: Record<string, Json> = {
      authorizer: { errorMessage: "Unauthorized" },
      "token-service": { statusFrom: 400, statusTo: 499 },
    };
    for (const name of ["authorizer", "token-service"]) {
      const { alias } = release(t, name);
      const hookRef = alias.UpdatePolicy.CodeDeployLambdaAliasUpdate.BeforeAllowTrafficHook;
      expect(hookRef).toBeDefined();
      const hook = t.findResources("AWS::Lambda::Function")[hookRef.Ref].Properties;
      const check = JSON.parse(hook.Environment.Variables.CHECK);
      // The very events the authorizer's and the token service's tests send.
      const file = JSON.parse(fs.readFileSync(path.join(events, `${name}.json`), "utf8"));
      expect(check.payload).toEqual(file);
      expect(check.expect).toEqual(expected[name]);
      expect(JSON.stringify(check.payload).toLowerCase()).not.toContain("authorization");
      // It invokes the version the alias is about to receive.
      expect(hook.Environment.Variables.TARGET).toEqual({
        Ref: alias.Properties.FunctionVersion["Fn::GetAtt"][0],
      });
    }
  });
});
