import * as path from "path";
import { App, Aspects, Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import {
  ITEMS_MANIFEST,
  ItemsStack,
  PRE_CONSTRUCT_LOGICAL_IDS,
  settingsFromContext,
} from "./items-stack";
import { MANIFEST_MOUNT_PATH, TOKEN_ROUTES, loadManifest } from "../../../infra/lib";
import defaults from "../../../infra/cdk.json";

// The demo items API as deployed by app.ts: its own REST API and business
// Lambda, with agpat adopted through the public entry. Context defaults come
// from infra/cdk.json, and the Lambda code from the component's stub assets.

/** Stand-ins for the built Lambda bundles (make lambdas), shared with the component's tests. */
const STUB_ASSETS = path.join(__dirname, "..", "..", "..", "infra", "test", "stub-assets");

function synth(
  env: "dev" | "prod",
  extra: Record<string, unknown> = {},
): { stack: Stack; template: Template } {
  const app = new App({
    context: {
      ...defaults.context,
      env,
      lambdaAssets: STUB_ASSETS,
      ...extra,
    },
  });
  const stack = new ItemsStack(app, `agpat-${env}`, { settings: settingsFromContext(app.node) });
  Aspects.of(app).add(new AwsSolutionsChecks());
  app.synth();
  return { stack, template: Template.fromStack(stack) };
}

const dev = synth("dev");
const prod = synth("prod", { provisionedAuthorizerConcurrency: 2 });
const prodWithoutAlias = synth("prod", { provisionedAuthorizerConcurrency: 0 });
const devWithTrail = synth("dev", { offboardingTrail: true });
const variants = [dev, prod, prodWithoutAlias, devWithTrail];

/** A template resource, as `Template.toJSON()` gives it. */
type Resource = ReturnType<Template["toJSON"]>;
type Statement = {
  Action: string | string[];
  Effect: string;
  Resource: unknown;
  Condition?: Record<string, unknown>;
};

/** Logical id of the one resource of `type` whose id starts with `prefix`. */
function logicalId(template: Template, type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  expect(ids).toHaveLength(1);
  return ids[0];
}
const tableId = (template: Template) => logicalId(template, "AWS::DynamoDB::Table", "Table");
const itemsTableId = (template: Template) =>
  logicalId(template, "AWS::DynamoDB::Table", "ItemsTable");
/** agpat's functions live in the construct (`Agpat`); the business Lambda in the stack. */
const functionId = (template: Template, name: string) =>
  logicalId(
    template,
    "AWS::Lambda::Function",
    name === "api" ? "apifn" : `Agpat${name.replace("-", "")}fn`,
  );
const functionOf = (template: Template, name: string): Resource =>
  template.toJSON().Resources[functionId(template, name)];
const allStatements = (template: Template): Statement[] =>
  Object.values(template.findResources("AWS::IAM::Policy")).flatMap(
    (p) => p.Properties.PolicyDocument.Statement,
  );
const actionsOf = (st: Statement): string[] => ([] as string[]).concat(st.Action);

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

  test("with provisioned concurrency the authorizer invokes the live alias, which holds it", () => {
    const aliasId = logicalId(prod.template, "AWS::Lambda::Alias", "AgpatAuthorizerLive");
    const alias = prod.template.toJSON().Resources[aliasId];
    expect(alias.Properties.Name).toBe("live");
    expect(alias.Properties.FunctionName).toEqual({ Ref: functionId(prod.template, "authorizer") });
    expect(alias.Properties.ProvisionedConcurrencyConfig).toEqual({
      ProvisionedConcurrentExecutions: 2,
    });
    const [authorizer] = Object.values(prod.template.findResources("AWS::ApiGateway::Authorizer"));
    const uri = JSON.stringify(authorizer.Properties.AuthorizerUri);
    expect(uri).toContain(JSON.stringify({ Ref: aliasId }));
    expect(uri).not.toContain(functionId(prod.template, "authorizer"));
    // API Gateway's invoke permission is for the alias, not the bare function.
    prod.template.hasResourceProperties("AWS::Lambda::Permission", {
      FunctionName: { Ref: aliasId },
      Principal: "apigateway.amazonaws.com",
    });
  });

  test("without provisioned concurrency there is no alias and the authorizer invokes the function", () => {
    for (const { template } of [dev, prodWithoutAlias]) {
      template.resourceCountIs("AWS::Lambda::Alias", 0);
      const [authorizer] = Object.values(template.findResources("AWS::ApiGateway::Authorizer"));
      expect(JSON.stringify(authorizer.Properties.AuthorizerUri)).toContain(
        JSON.stringify({ "Fn::GetAtt": [functionId(template, "authorizer"), "Arn"] }),
      );
    }
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
    // agpat's built-in /tokens routes plus the routes of the demo's manifest.
    const expected = [...TOKEN_ROUTES, ...loadManifest(ITEMS_MANIFEST).routes]
      .map((r) => ({
        key: `${r.method} ${r.path}`,
        auth: r.access.kind === "public" ? "NONE" : "CUSTOM",
        authorizer: r.access.kind === "public" ? undefined : authorizerId,
      }))
      .sort((a, b) => a.key.localeCompare(b.key));
    expect(expected.map((r) => r.key)).toContain("GET /items/{id}");
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
  /** The function's execution role: its logical id, after checking what is attached. */
  function roleOf(template: Template, functionName: string): string {
    const roleId = functionOf(template, functionName).Properties.Role["Fn::GetAtt"][0];
    const role = template.toJSON().Resources[roleId];
    // Besides the default policy asserted below, only the AWS-managed basic
    // execution role (log writes) is attached; no inline or customer policy.
    expect(role.Properties.Policies).toBeUndefined();
    expect(role.Properties.ManagedPolicyArns).toEqual([
      {
        "Fn::Join": [
          "",
          [
            "arn:",
            { Ref: "AWS::Partition" },
            ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
          ],
        ],
      },
    ]);
    const managed = Object.values(template.findResources("AWS::IAM::ManagedPolicy"));
    expect(managed.filter((p) => JSON.stringify(p.Properties).includes(roleId))).toEqual([]);
    return roleId;
  }

  /** Every statement of the policies attached to the function's role, X-Ray first. */
  function statementsOf(template: Template, functionName: string): Statement[] {
    const roleId = roleOf(template, functionName);
    const policies = Object.values(template.findResources("AWS::IAM::Policy")).filter((p) =>
      p.Properties.Roles.some((r: { Ref: string }) => r.Ref === roleId),
    );
    expect(policies).toHaveLength(1);
    const [xrayStatement, ...rest] = policies[0].Properties.PolicyDocument.Statement;
    expect(xrayStatement).toEqual(xray);
    return rest;
  }

  const xray = {
    Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    Effect: "Allow",
    Resource: "*",
  };
  const arnOf = (id: string) => ({ "Fn::GetAtt": [id, "Arn"] });
  const tableArn = (template: Template) => arnOf(tableId(template));
  const gsiArn = (template: Template) => ({
    "Fn::Join": ["", [tableArn(template), "/index/GSI1"]],
  });
  const leadingKeys = (...prefixes: string[]) => ({
    "ForAllValues:StringLike": { "dynamodb:LeadingKeys": prefixes },
  });

  test("the authorizer may only read token records and update last_used_at and hash on them", () => {
    for (const { template } of variants) {
      expect(statementsOf(template, "authorizer")).toEqual([
        {
          Action: "dynamodb:GetItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: leadingKeys("TOKEN#*"),
        },
        {
          Action: "dynamodb:UpdateItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: {
            ...leadingKeys("TOKEN#*"),
            "ForAllValues:StringEquals": {
              "dynamodb:Attributes": ["PK", "SK", "last_used_at", "hash"],
            },
            StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
          },
        },
      ]);
    }
  });

  test("the token service may read and write token, user and alias items and query GSI1 by user", () => {
    for (const { template } of variants) {
      expect(statementsOf(template, "token-service")).toEqual([
        {
          Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: leadingKeys("TOKEN#*", "USER#*", "ALIAS#*"),
        },
        {
          Action: "dynamodb:Query",
          Effect: "Allow",
          Resource: gsiArn(template),
          Condition: leadingKeys("USER#*"),
        },
      ]);
    }
  });

  test("the business API may only touch the items table", () => {
    for (const { template } of variants) {
      expect(statementsOf(template, "api")).toEqual([
        {
          Action: [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
          ],
          Effect: "Allow",
          Resource: arnOf(itemsTableId(template)),
        },
      ]);
    }
  });

  test("offboarding may read token, user and alias items, update only revocation attributes, query GSI1, look up Cognito users and dead-letter", () => {
    for (const { template } of variants) {
      expect(statementsOf(template, "offboarding")).toEqual([
        {
          Action: "dynamodb:GetItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: leadingKeys("TOKEN#*", "USER#*", "ALIAS#*"),
        },
        {
          Action: "dynamodb:UpdateItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: {
            ...leadingKeys("TOKEN#*"),
            "ForAllValues:StringEquals": {
              // Revocation only: never owner, hash, scopes, expiry or epoch.
              "dynamodb:Attributes": ["PK", "SK", "revoked_at", "ttl"],
            },
            StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
          },
        },
        {
          Action: "dynamodb:UpdateItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: {
            ...leadingKeys("USER#*"),
            "ForAllValues:StringEquals": {
              "dynamodb:Attributes": [
                "PK",
                "SK",
                "slots",
                "epoch",
                "revoked_all_at",
                "legacy_swept",
              ],
            },
            StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"] },
          },
        },
        {
          Action: "dynamodb:Query",
          Effect: "Allow",
          Resource: gsiArn(template),
          Condition: leadingKeys("USER#*"),
        },
        {
          Action: ["cognito-idp:AdminGetUser", "cognito-idp:ListUsers"],
          Effect: "Allow",
          Resource: arnOf(logicalId(template, "AWS::Cognito::UserPool", "UserPool")),
        },
        {
          Action: "dynamodb:Scan",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: {
            "ForAllValues:StringEquals": { "dynamodb:Attributes": ["PK", "SK", "slots"] },
            StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
          },
        },
        {
          Action: "sqs:SendMessage",
          Effect: "Allow",
          Resource: arnOf(logicalId(template, "AWS::SQS::Queue", "OffboardingDlq")),
        },
      ]);
    }
  });

  test("the api role never names the token table, and no role may scan (but for the sweep's key-and-slots scan), delete or condition-check tokens", () => {
    for (const { template } of variants) {
      const tokenTable = JSON.stringify(tableId(template));
      expect(JSON.stringify(statementsOf(template, "api"))).not.toContain(tokenTable);
      for (const st of allStatements(template)) {
        const actions = actionsOf(st);
        expect(actions).not.toContain("dynamodb:ConditionCheckItem");
        expect(actions).not.toContain("dynamodb:*");
        if (JSON.stringify(st.Resource).includes(tokenTable)) {
          expect(actions).not.toContain("dynamodb:DeleteItem");
          if (actions.includes("dynamodb:Scan")) {
            // Only the offboarding sweep scans, and it can read no hash.
            expect(st.Condition?.["ForAllValues:StringEquals"]).toEqual({
              "dynamodb:Attributes": ["PK", "SK", "slots"],
            });
          }
        }
      }
      // Only the token service can create items in the token table.
      const putters = Object.values(template.findResources("AWS::IAM::Policy")).filter((p) =>
        p.Properties.PolicyDocument.Statement.some(
          (st: Statement) =>
            actionsOf(st).includes("dynamodb:PutItem") &&
            JSON.stringify(st.Resource).includes(tokenTable),
        ),
      );
      expect(putters.map((p) => p.Properties.Roles)).toEqual([
        [{ Ref: roleOf(template, "token-service") }],
      ]);
    }
  });

  test("no statement grants '*' actions, and only X-Ray gets '*' resources", () => {
    for (const { template } of variants) {
      for (const st of allStatements(template)) {
        const actions = actionsOf(st);
        expect(actions.some((a) => a === "*" || a.endsWith(":*"))).toBe(false);
        if (st.Resource === "*") expect(actions.every((a) => a.startsWith("xray:"))).toBe(true);
      }
    }
  });
});

describe("data and identity", () => {
  test("the token table is on-demand with PITR, TTL and a hash-free GSI; prod adds deletion protection", () => {
    const tokenTable = dev.template.toJSON().Resources[tableId(dev.template)];
    expect(tokenTable.Properties).toMatchObject({
      BillingMode: "PAY_PER_REQUEST",
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    const gsis = tokenTable.Properties.GlobalSecondaryIndexes;
    expect(gsis).toHaveLength(1);
    expect(gsis[0]).toMatchObject({
      IndexName: "GSI1",
      KeySchema: [{ AttributeName: "GSI1PK", KeyType: "HASH" }, expect.anything()],
      Projection: { ProjectionType: "INCLUDE" },
    });
    expect(gsis[0].Projection.NonKeyAttributes).not.toContain("hash");
    const prodTable = prod.template.toJSON().Resources[tableId(prod.template)];
    expect(prodTable.Properties.DeletionProtectionEnabled).toBe(true);
    expect(prodTable.DeletionPolicy).toBe("Retain");
    expect(tokenTable.DeletionPolicy).toBe("Delete");
  });

  test("the items table is on-demand with PITR and AWS-managed encryption, no GSI or TTL; prod retains it", () => {
    const items = dev.template.toJSON().Resources[itemsTableId(dev.template)];
    expect(items.Properties).toEqual({
      KeySchema: [
        { AttributeName: "PK", KeyType: "HASH" },
        { AttributeName: "SK", KeyType: "RANGE" },
      ],
      AttributeDefinitions: [
        { AttributeName: "PK", AttributeType: "S" },
        { AttributeName: "SK", AttributeType: "S" },
      ],
      BillingMode: "PAY_PER_REQUEST",
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      DeletionProtectionEnabled: false,
      SSESpecification: { SSEEnabled: true },
    });
    expect(items.DeletionPolicy).toBe("Delete");
    const prodItems = prod.template.toJSON().Resources[itemsTableId(prod.template)];
    expect(prodItems.Properties.DeletionProtectionEnabled).toBe(true);
    expect(prodItems.DeletionPolicy).toBe("Retain");
    dev.template.hasOutput("ItemsTableName", { Value: { Ref: itemsTableId(dev.template) } });
  });

  test("the api function gets ITEMS_TABLE_NAME and not TABLE_NAME; the token functions get TABLE_NAME", () => {
    const env = (name: string) =>
      functionOf(dev.template, name).Properties.Environment.Variables as Record<string, unknown>;
    expect(env("api")).toEqual({
      ITEMS_TABLE_NAME: { Ref: itemsTableId(dev.template) },
      RUST_LOG: "info",
      // The manifest, for the context crate; it grants nothing.
      AGPAT_MANIFEST: MANIFEST_MOUNT_PATH,
    });
    for (const name of ["authorizer", "token-service", "offboarding"]) {
      expect(env(name).TABLE_NAME).toEqual({ Ref: tableId(dev.template) });
      expect(env(name).ITEMS_TABLE_NAME).toBeUndefined();
    }
    expect(env("offboarding")).toEqual({
      TABLE_NAME: { Ref: tableId(dev.template) },
      COGNITO_USER_POOL_ID: { Ref: logicalId(dev.template, "AWS::Cognito::UserPool", "UserPool") },
      RUST_LOG: "info",
    });
  });

  test("an existing deployment keeps its token table, user pool, client, dead-letter queue, budget and alert topic", () => {
    // Logical ids from before agpat became a construct: a new id would
    // replace the resource (and orphan the retained prod table and pool).
    const types: Record<keyof typeof PRE_CONSTRUCT_LOGICAL_IDS, string> = {
      table: "AWS::DynamoDB::Table",
      userPool: "AWS::Cognito::UserPool",
      userPoolClient: "AWS::Cognito::UserPoolClient",
      offboardingDeadLetterQueue: "AWS::SQS::Queue",
      offboardingDeadLetterQueuePolicy: "AWS::SQS::QueuePolicy",
      costBudget: "AWS::Budgets::Budget",
    };
    for (const { template } of variants) {
      const resources = template.toJSON().Resources;
      for (const [key, id] of Object.entries(PRE_CONSTRUCT_LOGICAL_IDS)) {
        expect([key, resources[id]?.Type]).toEqual([key, types[key as keyof typeof types]]);
      }
      expect(resources.Alerts91F83244?.Type).toBe("AWS::SNS::Topic");
      expect(resources.AlertsPolicy425C338D?.Type).toBe("AWS::SNS::TopicPolicy");
    }
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
    dev.template.resourceCountIs("AWS::Lambda::Function", 4);
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
  });
});

describe("offboarding", () => {
  const dlqId = (template: Template) => logicalId(template, "AWS::SQS::Queue", "OffboardingDlq");

  test("an EventBridge rule on the default bus sends Cognito disable and delete calls to the function", () => {
    const rules = Object.values(dev.template.findResources("AWS::Events::Rule")).filter(
      (r) => r.Properties.EventPattern,
    );
    expect(rules).toHaveLength(1);
    const rule = rules[0].Properties;
    expect(rule.EventBusName).toBeUndefined();
    expect(rule.State).toBe("ENABLED");
    expect(rule.EventPattern).toEqual({
      source: ["aws.cognito-idp"],
      "detail-type": ["AWS API Call via CloudTrail"],
      detail: {
        eventSource: ["cognito-idp.amazonaws.com"],
        eventName: ["AdminDisableUser", "AdminDeleteUser", "DeleteUser"],
      },
    });
  });

  test("the target retries 8 times for up to 2 hours, then dead-letters to an encrypted, SSL-only queue", () => {
    const [rule] = Object.values(dev.template.findResources("AWS::Events::Rule"));
    expect(rule.Properties.Targets).toEqual([
      {
        Id: "Target0",
        Arn: { "Fn::GetAtt": [functionId(dev.template, "offboarding"), "Arn"] },
        RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 },
        DeadLetterConfig: { Arn: { "Fn::GetAtt": [dlqId(dev.template), "Arn"] } },
      },
    ]);
    dev.template.hasResourceProperties("AWS::SQS::Queue", {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    dev.template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [{ Ref: dlqId(dev.template) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Action: "sqs:*",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
          Match.objectLike({
            Effect: "Allow",
            Action: "sqs:SendMessage",
            Principal: { Service: "events.amazonaws.com" },
          }),
        ]),
      },
    });
  });

  test("the function is sized 256 MB / 900 s, reserves 5 in prod and dead-letters its own failures", () => {
    for (const { template } of [dev, prod]) {
      const fn = functionOf(template, "offboarding").Properties;
      expect(fn).toMatchObject({
        Runtime: "provided.al2023",
        Architectures: ["arm64"],
        TracingConfig: { Mode: "Active" },
        MemorySize: 256,
        Timeout: 900,
        DeadLetterConfig: { TargetArn: { "Fn::GetAtt": [dlqId(template), "Arn"] } },
      });
      expect(fn.ReservedConcurrentExecutions).toBe(template === prod.template ? 5 : undefined);
    }
  });

  test("a daily reconciliation sweep invokes offboarding, and 0 hours turns it off", () => {
    dev.template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 day)",
      Targets: [
        Match.objectLike({
          Arn: { "Fn::GetAtt": [Match.stringLikeRegexp("offboardingfn"), "Arn"] },
          RetryPolicy: { MaximumRetryAttempts: 2 },
          DeadLetterConfig: { Arn: { "Fn::GetAtt": [dlqId(dev.template), "Arn"] } },
        }),
      ],
    });
    const off = synth("dev", { offboardingSweepHours: 0 });
    expect(
      Object.values(off.template.findResources("AWS::Events::Rule")).filter(
        (r) => r.Properties.ScheduleExpression,
      ),
    ).toEqual([]);
  });

  test("alarms on dead-lettered offboarding events and offboarding errors, to SNS", () => {
    dev.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [
        { Name: "QueueName", Value: { "Fn::GetAtt": [dlqId(dev.template), "QueueName"] } },
      ],
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      AlarmActions: [Match.objectLike({ Ref: Match.stringLikeRegexp("Alerts") })],
    });
    dev.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [
        { Name: "FunctionName", Value: { Ref: functionId(dev.template, "offboarding") } },
      ],
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      AlarmActions: [Match.objectLike({ Ref: Match.stringLikeRegexp("Alerts") })],
    });
  });

  test("a management-events trail is created only when offboardingTrail is true", () => {
    expect(defaults.context.offboardingTrail).toBe(false);
    for (const { template } of [dev, prod, prodWithoutAlias]) {
      template.resourceCountIs("AWS::CloudTrail::Trail", 0);
      template.resourceCountIs("AWS::S3::Bucket", 0);
    }
    const t = devWithTrail.template;
    t.resourceCountIs("AWS::CloudTrail::Trail", 1);
    const bucketId = logicalId(t, "AWS::S3::Bucket", "AgpatTrailBucket");
    t.hasResourceProperties("AWS::CloudTrail::Trail", {
      IsLogging: true,
      IsMultiRegionTrail: false,
      IncludeGlobalServiceEvents: true,
      EnableLogFileValidation: true,
      EventSelectors: [{ IncludeManagementEvents: true, ReadWriteType: "All" }],
      S3BucketName: { Ref: bucketId },
    });
    const bucket = t.toJSON().Resources[bucketId];
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: "Enabled" },
      LoggingConfiguration: {
        DestinationBucketName: { Ref: logicalId(t, "AWS::S3::Bucket", "AgpatTrailAccessLogs") },
      },
    });
    t.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
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
    for (const { stack } of variants) {
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
    expect(() => synth("dev", { offboardingTrail: "yes" })).toThrow(/offboardingTrail/);
  });

  test("offboardingTrail given on the command line as a string is understood", () => {
    synth("dev", { offboardingTrail: "true" }).template.resourceCountIs(
      "AWS::CloudTrail::Trail",
      1,
    );
    synth("dev", { offboardingTrail: "false" }).template.resourceCountIs(
      "AWS::CloudTrail::Trail",
      0,
    );
  });
});
