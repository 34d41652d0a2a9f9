import * as path from "path";
import { App, Aspects, Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { AgpatStack, settingsFromContext } from "../lib/agpat-stack";
import { ROUTES, isPublic } from "../lib/routes";
import defaults from "../cdk.json";

function synth(
  env: "dev" | "prod",
  extra: Record<string, unknown> = {},
): { stack: Stack; template: Template } {
  const app = new App({
    context: {
      ...defaults.context,
      env,
      lambdaAssets: path.join(__dirname, "stub-assets"),
      ...extra,
    },
  });
  const stack = new AgpatStack(app, `agpat-${env}`, { settings: settingsFromContext(app.node) });
  Aspects.of(app).add(new AwsSolutionsChecks());
  app.synth();
  return { stack, template: Template.fromStack(stack) };
}

const dev = synth("dev");
const prod = synth("prod", { provisionedAuthorizerConcurrency: 2 });

describe("authorizer wiring", () => {
  test("is a REQUEST authorizer on the Authorization header with the configured TTL", () => {
    dev.template.hasResourceProperties("AWS::ApiGateway::Authorizer", {
      Type: "REQUEST",
      IdentitySource: "method.request.header.Authorization",
      AuthorizerResultTtlInSeconds: defaults.context.authorizerCacheTtlSeconds,
    });
    const custom = synth("dev", { authorizerCacheTtlSeconds: 15 });
    custom.template.hasResourceProperties("AWS::ApiGateway::Authorizer", {
      AuthorizerResultTtlInSeconds: 15,
    });
  });

  test("every route of the table is a method; protected ones use the authorizer, public ones do not", () => {
    const methods = dev.template.findResources("AWS::ApiGateway::Method");
    const resources = dev.template.findResources("AWS::ApiGateway::Resource");
    const authorizerId = Object.keys(dev.template.findResources("AWS::ApiGateway::Authorizer"))[0];
    const pathOf = (ref: unknown): string => {
      // Walk parents up to the root to rebuild the path.
      const parts: string[] = [];
      let current = ref as { Ref?: string };
      while (current && current.Ref && resources[current.Ref]) {
        const r = resources[current.Ref].Properties;
        parts.unshift(r.PathPart);
        current = r.ParentId;
      }
      return "/" + parts.join("/");
    };
    const declared = Object.values(methods)
      .filter((m) => m.Properties.HttpMethod !== "OPTIONS")
      .map((m) => ({
        key: `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId)}`,
        auth: m.Properties.AuthorizationType,
        authorizer: m.Properties.AuthorizerId?.Ref,
      }))
      .sort((a, b) => a.key.localeCompare(b.key));
    const expected = ROUTES.map((r) => ({
      key: `${r.method} ${r.path}`,
      auth: isPublic(r) ? "NONE" : "CUSTOM",
      authorizer: isPublic(r) ? undefined : authorizerId,
    })).sort((a, b) => a.key.localeCompare(b.key));
    expect(declared).toEqual(expected);
  });

  test("the stage throttles, logs access as JSON, traces, and never caches responses", () => {
    dev.template.hasResourceProperties("AWS::ApiGateway::Stage", {
      TracingEnabled: true,
      AccessLogSetting: Match.objectLike({ Format: Match.stringLikeRegexp("requestId") }),
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          HttpMethod: "*",
          ResourcePath: "/*",
          ThrottlingRateLimit: defaults.context.stageRateLimit,
          ThrottlingBurstLimit: defaults.context.stageBurstLimit,
          CachingEnabled: false,
        }),
        Match.objectLike({
          HttpMethod: "POST",
          ResourcePath: "/~1tokens",
          ThrottlingRateLimit: defaults.context.tokenWriteRateLimit,
        }),
        Match.objectLike({
          HttpMethod: "POST",
          ResourcePath: "/~1tokens~1revoke",
          ThrottlingRateLimit: defaults.context.publicRevokeRateLimit,
        }),
      ]),
    });
  });

  test("401, 403 and 429 gateway responses are problem+json", () => {
    for (const [type, status] of [
      ["UNAUTHORIZED", "401"],
      ["ACCESS_DENIED", "403"],
      ["THROTTLED", "429"],
    ]) {
      dev.template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
        ResponseType: type,
        StatusCode: status,
        ResponseParameters: Match.objectLike({
          "gatewayresponse.header.Content-Type": "'application/problem+json'",
        }),
        ResponseTemplates: { "application/json": Match.stringLikeRegexp("urn:agpat:problem:") },
      });
    }
  });
});

describe("least privilege", () => {
  function statementsOf(template: Template, functionName: string): unknown[] {
    const fnId = Object.keys(template.findResources("AWS::Lambda::Function")).find((id) =>
      id.startsWith(functionName.replace("-", "")),
    );
    expect(fnId).toBeDefined();
    const fn = template.toJSON().Resources[fnId as string];
    const roleId = fn.Properties.Role["Fn::GetAtt"][0];
    const policies = template.findResources("AWS::IAM::Policy");
    return Object.values(policies)
      .filter((p) => p.Properties.Roles.some((r: { Ref: string }) => r.Ref === roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
  }

  const tableArn = (template: Template) => {
    const tableId = Object.keys(template.findResources("AWS::DynamoDB::Table"))[0];
    return { "Fn::GetAtt": [tableId, "Arn"] };
  };
  const xray = {
    Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    Effect: "Allow",
    Resource: "*",
  };

  test("the authorizer may only GetItem and UpdateItem on the table", () => {
    expect(statementsOf(dev.template, "authorizer")).toEqual([
      xray,
      {
        Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
        Effect: "Allow",
        Resource: tableArn(dev.template),
      },
    ]);
  });

  test("the token service may read and write tokens and query only GSI1", () => {
    const gsi = { "Fn::Join": ["", [tableArn(dev.template), "/index/GSI1"]] };
    expect(statementsOf(dev.template, "token-service")).toEqual([
      xray,
      {
        Action: [
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:ConditionCheckItem",
        ],
        Effect: "Allow",
        Resource: tableArn(dev.template),
      },
      { Action: "dynamodb:Query", Effect: "Allow", Resource: gsi },
    ]);
  });

  test("the business API may only touch the base table", () => {
    expect(statementsOf(dev.template, "api")).toEqual([
      xray,
      {
        Action: [
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:Query",
        ],
        Effect: "Allow",
        Resource: tableArn(dev.template),
      },
    ]);
  });

  test("no statement grants '*' actions, and only X-Ray gets '*' resources", () => {
    const policies = Object.values(dev.template.findResources("AWS::IAM::Policy"));
    for (const p of policies) {
      for (const st of p.Properties.PolicyDocument.Statement) {
        const actions = ([] as string[]).concat(st.Action);
        expect(actions.some((a) => a === "*" || a.endsWith(":*"))).toBe(false);
        if (st.Resource === "*") expect(actions.every((a) => a.startsWith("xray:"))).toBe(true);
      }
    }
  });
});

describe("data and identity", () => {
  test("the table is on-demand with PITR, TTL and a hash-free GSI; prod adds deletion protection", () => {
    dev.template.hasResourceProperties("AWS::DynamoDB::Table", {
      BillingMode: "PAY_PER_REQUEST",
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: "GSI1",
          Projection: {
            ProjectionType: "INCLUDE",
            NonKeyAttributes: Match.not(Match.arrayWith(["hash"])),
          },
        }),
      ],
    });
    prod.template.hasResourceProperties("AWS::DynamoDB::Table", {
      DeletionProtectionEnabled: true,
    });
    prod.template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Retain" });
    dev.template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Delete" });
  });

  test("the user pool has a strong password policy and a secretless client with explicit validity", () => {
    dev.template.hasResourceProperties("AWS::Cognito::UserPool", {
      Policies: { PasswordPolicy: Match.objectLike({ MinimumLength: 12, RequireSymbols: true }) },
      MfaConfiguration: "OPTIONAL",
    });
    dev.template.hasResourceProperties("AWS::Cognito::UserPoolClient", {
      GenerateSecret: false,
      AccessTokenValidity: 60,
      TokenValidityUnits: Match.objectLike({ AccessToken: "minutes" }),
    });
  });

  test("functions are arm64 provided.al2023 with tracing, sized per function; prod reserves concurrency", () => {
    dev.template.resourceCountIs("AWS::Lambda::Function", 3);
    dev.template.hasResourceProperties("AWS::Lambda::Function", {
      Runtime: "provided.al2023",
      Architectures: ["arm64"],
      TracingConfig: { Mode: "Active" },
      MemorySize: 512,
      Timeout: 10,
    });
    prod.template.hasResourceProperties("AWS::Lambda::Function", {
      ReservedConcurrentExecutions: 200,
      Environment: { Variables: Match.objectLike({ PAT_CACHE_TTL_SECONDS: "30" }) },
    });
    prod.template.hasResourceProperties("AWS::Lambda::Alias", {
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 },
    });
    dev.template.resourceCountIs("AWS::Lambda::Alias", 0);
  });
});

describe("operations", () => {
  test("alarms on authorizer errors, throttles and p99, and API 5xx/4xx rates, to SNS", () => {
    for (const metric of ["Errors", "Throttles", "Duration", "5XXError", "4XXError"]) {
      dev.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: metric,
        AlarmActions: [Match.objectLike({ Ref: Match.stringLikeRegexp("Alerts") })],
      });
    }
    dev.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "Duration",
      ExtendedStatistic: "p99",
    });
  });

  test("a monthly budget alerts at the configured thresholds", () => {
    dev.template.hasResourceProperties("AWS::Budgets::Budget", {
      Budget: Match.objectLike({ BudgetLimit: { Amount: 20, Unit: "USD" }, TimeUnit: "MONTHLY" }),
      NotificationsWithSubscribers: defaults.context.budgetThresholdsPercent.map((t) =>
        Match.objectLike({ Notification: Match.objectLike({ Threshold: t }) }),
      ),
    });
  });

  test("cdk-nag AwsSolutions reports no unsuppressed error or warning", () => {
    for (const { stack } of [dev, prod]) {
      const errors = Annotations.fromStack(stack).findError(
        "*",
        Match.stringLikeRegexp("AwsSolutions-.*"),
      );
      const warnings = Annotations.fromStack(stack).findWarning(
        "*",
        Match.stringLikeRegexp("AwsSolutions-.*"),
      );
      expect(errors.map((e) => e.entry.data)).toEqual([]);
      expect(warnings.map((w) => w.entry.data)).toEqual([]);
    }
  });

  test("bad context names the key", () => {
    expect(() => synth("dev", { authorizerCacheTtlSeconds: 7200 })).toThrow(
      /authorizerCacheTtlSeconds/,
    );
  });
});
