import * as fs from "fs";
import * as path from "path";
import { App, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import {
  ACCESS_LOG_FIELDS,
  CORS_ALLOWED_HEADERS,
  ITEMS_MANIFEST,
  ItemsStack,
  PRE_CONSTRUCT_LOGICAL_IDS,
  RESERVED_CONCURRENCY_DEFAULTS,
  settingsFromContext,
} from "./items-stack";
import { MANIFEST_MOUNT_PATH, TOKEN_ROUTES, loadManifest } from "../../../infra/lib";
import defaults from "../../../infra/cdk.json";

// The demo items API as deployed by app.ts: its own REST API and business
// Lambda, with agpat adopted through the public entry. Context defaults come
// from infra/cdk.json, and the Lambda code from the component's stub assets.

/** Stand-ins for the built Lambda bundles (make lambdas), shared with the component's tests. */
const STUB_ASSETS = path.join(__dirname, "..", "..", "..", "infra", "test", "stub-assets");

/** What prod requires besides cdk.json (a test account, never a real one). */
const PROD_CONTEXT = {
  alertEmail: "ops@example.com",
  account: "111111111111",
  region: "eu-west-1",
};

/**
 * The demo stack as `cdk synth` builds it: the whole of cdk.json's context,
 * feature flags included, so that what is tested is what deploys.
 */
function synth(
  env: "dev" | "prod",
  extra: Record<string, unknown> = {},
): { app: App; stack: Stack; template: Template } {
  const app = new App({
    context: {
      ...defaults.context,
      env,
      lambdaAssets: STUB_ASSETS,
      ...(env === "prod" ? PROD_CONTEXT : {}),
      ...extra,
    },
  });
  const stack = new ItemsStack(app, `agpat-${env}`, { settings: settingsFromContext(app.node) });
  app.synth();
  return { app, stack, template: Template.fromStack(stack) };
}

const dev = synth("dev");
const prod = synth("prod", { provisionedAuthorizerConcurrency: 2 });
const prodWithoutAlias = synth("prod", { provisionedAuthorizerConcurrency: 0 });
const devWithTrail = synth("dev", { offboardingTrail: true });
const variants = [dev, prod, prodWithoutAlias, devWithTrail];
/** Two browser origins, for the CORS tests. */
const CORS_ORIGINS = ["https://app.example.com", "https://admin.example.com"];

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

  /** The authorizer's `live` alias (agpat's release alias) and its logical id. */
  const authorizerAlias = (template: Template) => {
    const fn = functionId(template, "authorizer");
    const aliases = Object.entries(template.findResources("AWS::Lambda::Alias")).filter(
      ([, a]) => JSON.stringify(a.Properties.FunctionName) === JSON.stringify({ Ref: fn }),
    );
    expect(aliases).toHaveLength(1);
    const [id, alias] = aliases[0];
    expect(alias.Properties.Name).toBe("live");
    return { id, alias };
  };

  test("the authorizer is invoked through its live alias, which holds the provisioned concurrency from context", () => {
    const { id, alias } = authorizerAlias(prod.template);
    expect(alias.Properties.ProvisionedConcurrencyConfig).toEqual({
      ProvisionedConcurrentExecutions: 2,
    });
    const [authorizer] = Object.values(prod.template.findResources("AWS::ApiGateway::Authorizer"));
    const uri = JSON.stringify(authorizer.Properties.AuthorizerUri);
    expect(uri).toContain(JSON.stringify({ Ref: id }));
    expect(uri).not.toContain(functionId(prod.template, "authorizer"));
    // API Gateway's invoke permission is for the alias, not the bare function.
    prod.template.hasResourceProperties("AWS::Lambda::Permission", {
      FunctionName: { Ref: id },
      Principal: "apigateway.amazonaws.com",
    });
  });

  test("without provisioned concurrency the live alias holds none, and is still what API Gateway invokes", () => {
    for (const { template } of [dev, prodWithoutAlias]) {
      const { id, alias } = authorizerAlias(template);
      expect(alias.Properties.ProvisionedConcurrencyConfig).toBeUndefined();
      const [authorizer] = Object.values(template.findResources("AWS::ApiGateway::Authorizer"));
      expect(JSON.stringify(authorizer.Properties.AuthorizerUri)).toContain(
        JSON.stringify({ Ref: id }),
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

  test("the stage throttles, traces, and never caches responses", () => {
    dev.template.hasResourceProperties("AWS::ApiGateway::Stage", {
      TracingEnabled: true,
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

  // Actions sorted: cdk.json turns on @aws-cdk/aws-iam:minimizePolicies.
  const xray = {
    Action: ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
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

  /** PutItem of whole history events (key, event, time, TTL), only under EVENTS#. */
  const putHistoryEvents = (template: Template): Statement => ({
    Action: "dynamodb:PutItem",
    Effect: "Allow",
    Resource: tableArn(template),
    Condition: {
      ...leadingKeys("EVENTS#*"),
      "ForAllValues:StringEquals": {
        "dynamodb:Attributes": ["PK", "SK", "event", "at", "ttl"],
      },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    },
  });
  const eventBusArn = (template: Template) =>
    arnOf(logicalId(template, "AWS::Events::EventBus", "AgpatEventBus"));

  test("the authorizer may only read token records, update last_used_at, recent_uses and hash on them, and put history events", () => {
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
              "dynamodb:Attributes": ["PK", "SK", "last_used_at", "hash", "recent_uses"],
            },
            StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
          },
        },
        // A use from a new IP address, in the same transaction as the touch.
        putHistoryEvents(template),
      ]);
    }
  });

  test("the token service may read and write token, user and alias items, query GSI1 by user, batch-read only versions, descriptions, recent uses, allow-lists, tiers and DPoP bindings, record and list history events, and publish on the agpat bus", () => {
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
        {
          // The listing's enrichment: never the hash.
          Action: "dynamodb:BatchGetItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: {
            ...leadingKeys("TOKEN#*"),
            "ForAllValues:StringEquals": {
              "dynamodb:Attributes": [
                "PK",
                "v",
                "description",
                "recent_uses",
                "cidrs",
                "tier",
                "jkt",
              ],
            },
            StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
          },
        },
        putHistoryEvents(template),
        {
          // A token's history, on the table itself, by its EVENTS# partition.
          Action: "dynamodb:Query",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: leadingKeys("EVENTS#*"),
        },
        {
          Action: "events:PutEvents",
          Effect: "Allow",
          Resource: eventBusArn(template),
        },
      ]);
    }
  });

  test("the expiry sweeper may query GSI2 by expiry day, keep its SWEEP# checkpoint, mark only notified_* on token records, put history events and publish on the agpat bus", () => {
    for (const { template } of variants) {
      expect(statementsOf(template, "expiry-sweeper")).toEqual([
        {
          Action: "dynamodb:Query",
          Effect: "Allow",
          Resource: { "Fn::Join": ["", [tableArn(template), "/index/GSI2"]] },
          Condition: leadingKeys("EXP#*"),
        },
        {
          Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: leadingKeys("SWEEP#*"),
        },
        {
          Action: "dynamodb:UpdateItem",
          Effect: "Allow",
          Resource: tableArn(template),
          Condition: {
            ...leadingKeys("TOKEN#*"),
            "ForAllValues:StringEquals": {
              // Never revoked_at, expires_at, owner, scopes or hash.
              "dynamodb:Attributes": [
                "PK",
                "SK",
                "notified_30",
                "notified_7",
                "notified_1",
                "notified_expired",
              ],
            },
            StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
          },
        },
        putHistoryEvents(template),
        {
          Action: "events:PutEvents",
          Effect: "Allow",
          Resource: eventBusArn(template),
        },
      ]);
    }
  });

  test("the business API may only touch the items table", () => {
    for (const { template } of variants) {
      expect(statementsOf(template, "api")).toEqual([
        {
          Action: [
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
          ],
          Effect: "Allow",
          Resource: arnOf(itemsTableId(template)),
        },
      ]);
    }
  });

  test("offboarding may read token, user and alias items, update only revocation attributes, record revoked events, query GSI1, look up Cognito users and dead-letter", () => {
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
        // The `revoked` event, in each revocation's transaction.
        putHistoryEvents(template),
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

  test("the api role never names the token table, and no role may scan (but the sweep's key-and-slots scan and the operator-run migrator), delete or condition-check tokens", () => {
    for (const { template } of variants) {
      const tokenTable = JSON.stringify(tableId(template));
      const migratorRole = roleOf(template, "migrator");
      const policiesOf = (st: Statement) =>
        Object.values(template.findResources("AWS::IAM::Policy")).filter((p) =>
          p.Properties.PolicyDocument.Statement.some(
            (other: Statement) => JSON.stringify(other) === JSON.stringify(st),
          ),
        );
      const onlyMigrator = (st: Statement) =>
        policiesOf(st).every((p) =>
          p.Properties.Roles.every((r: { Ref: string }) => r.Ref === migratorRole),
        );
      expect(JSON.stringify(statementsOf(template, "api"))).not.toContain(tokenTable);
      for (const st of allStatements(template)) {
        const actions = actionsOf(st);
        expect(actions).not.toContain("dynamodb:ConditionCheckItem");
        expect(actions).not.toContain("dynamodb:*");
        if (JSON.stringify(st.Resource).includes(tokenTable)) {
          expect(actions).not.toContain("dynamodb:DeleteItem");
          if (actions.includes("dynamodb:Scan") && !onlyMigrator(st)) {
            // Only the offboarding sweep scans, and it can read no hash. (The
            // migrator reads whole token records to rewrite their scopes; it
            // is run by an operator and can write only `v` and `scope_set`.)
            expect(st.Condition?.["ForAllValues:StringEquals"]).toEqual({
              "dynamodb:Attributes": ["PK", "SK", "slots"],
            });
          }
        }
      }
      // Only the token service can create token, user and alias items; the
      // migrator may put only its own checkpoints (MIGRATION#), the expiry
      // sweeper only its own (SWEEP#), and the roles that record history
      // only whole events (EVENTS#).
      const sweeperRole = roleOf(template, "expiry-sweeper");
      const onlySweeper = (st: Statement) =>
        policiesOf(st).every((p) =>
          p.Properties.Roles.every((r: { Ref: string }) => r.Ref === sweeperRole),
        );
      const leading = (st: Statement) => JSON.stringify(st.Condition?.["ForAllValues:StringLike"]);
      const under = (prefix: string) => JSON.stringify({ "dynamodb:LeadingKeys": [prefix] });
      const putters = Object.values(template.findResources("AWS::IAM::Policy")).filter((p) =>
        p.Properties.PolicyDocument.Statement.some(
          (st: Statement) =>
            actionsOf(st).includes("dynamodb:PutItem") &&
            JSON.stringify(st.Resource).includes(tokenTable) &&
            !(onlyMigrator(st) && leading(st) === under("MIGRATION#*")) &&
            !(onlySweeper(st) && leading(st) === under("SWEEP#*")) &&
            !(
              leading(st) === under("EVENTS#*") &&
              JSON.stringify(st.Condition?.["ForAllValues:StringEquals"]) ===
                JSON.stringify({ "dynamodb:Attributes": ["PK", "SK", "event", "at", "ttl"] })
            ),
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
  test("the token table is on-demand with PITR, TTL and hash-free GSIs for listing and expiry; prod adds deletion protection", () => {
    const tokenTable = dev.template.toJSON().Resources[tableId(dev.template)];
    expect(tokenTable.Properties).toMatchObject({
      BillingMode: "PAY_PER_REQUEST",
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    const gsis = tokenTable.Properties.GlobalSecondaryIndexes;
    expect(gsis).toHaveLength(2);
    expect(gsis[0]).toMatchObject({
      IndexName: "GSI1",
      KeySchema: [{ AttributeName: "GSI1PK", KeyType: "HASH" }, expect.anything()],
      Projection: { ProjectionType: "INCLUDE" },
    });
    expect(gsis[1]).toMatchObject({
      IndexName: "GSI2",
      KeySchema: [
        { AttributeName: "GSI2PK", KeyType: "HASH" },
        { AttributeName: "GSI2SK", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "INCLUDE" },
    });
    for (const gsi of gsis) expect(gsi.Projection.NonKeyAttributes).not.toContain("hash");
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
    for (const name of ["authorizer", "token-service", "offboarding", "expiry-sweeper"]) {
      expect(env(name).TABLE_NAME).toEqual({ Ref: tableId(dev.template) });
      expect(env(name).ITEMS_TABLE_NAME).toBeUndefined();
    }
    expect(env("offboarding")).toEqual({
      TABLE_NAME: { Ref: tableId(dev.template) },
      COGNITO_USER_POOL_ID: { Ref: logicalId(dev.template, "AWS::Cognito::UserPool", "UserPool") },
      RUST_LOG: "info",
      TOKEN_EVENT_RETENTION_DAYS: "90",
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
    // The business Lambda, and agpat's authorizer, token service, offboarding,
    // migrator and expiry sweeper; plus the two release hooks (Node.js, run
    // by CodeDeploy).
    const all = Object.entries(dev.template.findResources("AWS::Lambda::Function"));
    const hooks = all.filter(([id]) => id.includes("PreTrafficCheck"));
    expect(hooks).toHaveLength(2);
    for (const [, hook] of hooks) expect(hook.Properties.Runtime).toBe("nodejs24.x");
    const served = all.filter(([id]) => !id.includes("PreTrafficCheck"));
    expect(served).toHaveLength(6);
    for (const [, fn] of served) {
      expect(fn.Properties).toMatchObject({
        Runtime: "provided.al2023",
        Architectures: ["arm64"],
        TracingConfig: { Mode: "Active" },
      });
    }
    dev.template.hasResourceProperties("AWS::Lambda::Function", {
      Runtime: "provided.al2023",
      Architectures: ["arm64"],
      TracingConfig: { Mode: "Active" },
      MemorySize: 512,
      Timeout: 10,
    });
    prod.template.hasResourceProperties("AWS::Lambda::Function", {
      ReservedConcurrentExecutions: 400,
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
    const offboardingFn = functionId(off.template, "offboarding");
    expect(
      Object.values(off.template.findResources("AWS::Events::Rule")).filter(
        (r) =>
          r.Properties.ScheduleExpression &&
          JSON.stringify(r.Properties.Targets).includes(offboardingFn),
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
  test("every alarm notifies the demo's alert topic", () => {
    // What each alarm watches is agpat's (infra/test); the demo's part is
    // that all of them reach the topic its email subscribes to.
    const alarms = Object.values(dev.template.findResources("AWS::CloudWatch::Alarm"));
    expect(alarms.length).toBeGreaterThan(5);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: "Alerts91F83244" }]);
    }
  });

  test("a monthly budget alerts at the configured thresholds", () => {
    dev.template.hasResourceProperties("AWS::Budgets::Budget", {
      Budget: Match.objectLike({ BudgetLimit: { Amount: 20, Unit: "USD" }, TimeUnit: "MONTHLY" }),
      NotificationsWithSubscribers: Match.arrayWith(
        defaults.context.budgetThresholdsPercent.map((t) =>
          Match.objectLike({
            Notification: Match.objectLike({ NotificationType: "ACTUAL", Threshold: t }),
          }),
        ),
      ),
    });
  });

  test("cdk-nag AwsSolutions reports no unacknowledged error or warning", () => {
    for (const { stack } of variants) {
      const report = new AwsSolutionsChecks().validateScope(stack);
      expect(
        report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0].constructPath}`),
      ).toEqual([]);
      expect(report.success).toBe(true);
    }
  });

  test("bad context names the key", () => {
    expect(() => synth("dev", { authorizerCacheTtlSeconds: 7200 })).toThrow(
      /authorizerCacheTtlSeconds/,
    );
    expect(() => synth("dev", { offboardingTrail: "yes" })).toThrow(/offboardingTrail/);
  });

  test("ownerEmailFrom turns on agpat's owner emails from that address; without it there is no notifier", () => {
    const notifiers = (template: Template) =>
      Object.values(template.findResources("AWS::Lambda::Function")).filter(
        (fn) => fn.Properties.Environment?.Variables?.AGPAT_EXPIRY_MODE === "notify",
      );
    expect(notifiers(dev.template)).toEqual([]);
    const on = synth("dev", { ownerEmailFrom: "noreply@example.com" });
    expect(
      notifiers(on.template).map((fn) => fn.Properties.Environment.Variables.AGPAT_EMAIL_FROM),
    ).toEqual(["noreply@example.com"]);
    expect(() => synth("dev", { ownerEmailFrom: "nobody" })).toThrow(/context ownerEmailFrom/);
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

describe("feature flags", () => {
  const recommended: Record<string, unknown> = JSON.parse(
    fs.readFileSync(require.resolve("aws-cdk-lib/recommended-feature-flags.json"), "utf8"),
  );

  test("cdk.json sets every feature flag the installed aws-cdk-lib recommends, at its recommended value", () => {
    // A new aws-cdk-lib that recommends a new flag fails here until cdk.json
    // decides it (read the synth diff first: some flags replace resources).
    const context = defaults.context as Record<string, unknown>;
    const missing = Object.entries(recommended)
      .filter(([flag, value]) => JSON.stringify(context[flag]) !== JSON.stringify(value))
      .map(([flag]) => flag);
    expect(missing).toEqual([]);
    expect(context["@aws-cdk/aws-apigateway:authorizerChangeDeploymentLogicalId"]).toBe(true);
  });

  test("the tests synthesize with cdk.json's flags, as cdk synth does", () => {
    for (const { app } of [dev, prod]) {
      for (const [flag, value] of Object.entries(recommended)) {
        expect([flag, app.node.tryGetContext(flag)]).toEqual([flag, value]);
      }
    }
  });

  test("a new authorizer cache TTL gives the API a new deployment, so the stage picks it up", () => {
    const deploymentOf = (template: Template) => {
      const ids = Object.keys(template.findResources("AWS::ApiGateway::Deployment"));
      expect(ids).toHaveLength(1);
      const [stage] = Object.values(template.findResources("AWS::ApiGateway::Stage"));
      expect(stage.Properties.DeploymentId).toEqual({ Ref: ids[0] });
      return ids[0];
    };
    const ttl = defaults.context.authorizerCacheTtlSeconds;
    const same = synth("dev");
    const changed = synth("dev", { authorizerCacheTtlSeconds: ttl + 1 });
    expect(deploymentOf(same.template)).toBe(deploymentOf(dev.template));
    expect(deploymentOf(changed.template)).not.toBe(deploymentOf(dev.template));
  });
});

describe("settings", () => {
  /** The settings alone, without synthesizing (for what only settings.ts decides). */
  const settingsOf = (env: "dev" | "prod", extra: Record<string, unknown> = {}) => {
    const app = new App({
      context: { ...defaults.context, env, ...(env === "prod" ? PROD_CONTEXT : {}), ...extra },
    });
    return settingsFromContext(app.node);
  };

  test("prod requires alertEmail, and subscribes it to the alert topic", () => {
    expect(() => synth("prod", { alertEmail: undefined })).toThrow(
      /context alertEmail: required when env=prod/,
    );
    expect(() => synth("prod", { alertEmail: "not an address" })).toThrow(/context alertEmail/);
    prod.template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: PROD_CONTEXT.alertEmail,
    });
    // Dev may go without.
    dev.template.resourceCountIs("AWS::SNS::Subscription", 0);
  });

  test("prod requires account and region, and pins the stack to them", () => {
    expect(() => synth("prod", { account: undefined, region: undefined })).toThrow(
      /context account and region: required when env=prod/,
    );
    expect(() => synth("prod", { region: undefined })).toThrow(/give both or neither/);
    expect(() => synth("prod", { account: "12345" })).toThrow(/context account/);
    expect(() => synth("prod", { region: "Europe" })).toThrow(/context region/);
    expect(prod.stack.account).toBe(PROD_CONTEXT.account);
    expect(prod.stack.region).toBe(PROD_CONTEXT.region);
    expect(prod.stack.environment).toBe(`aws://${PROD_CONTEXT.account}/${PROD_CONTEXT.region}`);
    // Dev stays environment-agnostic unless told otherwise.
    expect(dev.stack.environment).toBe("aws://unknown-account/unknown-region");
  });

  test("termination protection is on in prod only", () => {
    expect(prod.stack.terminationProtection).toBe(true);
    expect(dev.stack.terminationProtection).toBe(false);
  });

  test("reserved concurrency: none in dev, the documented defaults in prod, each overridable by context", () => {
    const reserved = (template: Template, name: string) =>
      functionOf(template, name).Properties.ReservedConcurrentExecutions;
    expect(RESERVED_CONCURRENCY_DEFAULTS.dev).toEqual({});
    expect(reserved(dev.template, "api")).toBeUndefined();
    expect(reserved(prod.template, "api")).toBe(RESERVED_CONCURRENCY_DEFAULTS.prod.api);
    const custom = synth("prod", { reservedConcurrency: { api: 7, authorizer: 50 } });
    expect(reserved(custom.template, "api")).toBe(7);
    // agpat's functions get theirs through the construct.
    expect(reserved(custom.template, "authorizer")).toBe(50);
    expect(reserved(custom.template, "token-service")).toBe(
      RESERVED_CONCURRENCY_DEFAULTS.prod.tokenService,
    );
    // -c on the command line gives a string.
    const fromCli = synth("dev", { reservedConcurrency: '{"api": 3}' });
    expect(reserved(fromCli.template, "api")).toBe(3);
    expect(() => synth("dev", { reservedConcurrency: { api: 0 } })).toThrow(
      /reservedConcurrency.api/,
    );
    expect(() => synth("dev", { reservedConcurrency: { apii: 5 } })).toThrow(
      /reservedConcurrency.apii: unknown function/,
    );
  });

  test("waf defaults to on in prod and off in dev; context overrides", () => {
    const settings = settingsOf;
    expect(settings("prod").waf).toBe(true);
    expect(settings("dev").waf).toBe(false);
    expect(settings("prod", { waf: "false" }).waf).toBe(false);
    expect(settings("dev", { waf: true }).waf).toBe(true);
    expect(() => settings("dev", { waf: "maybe" })).toThrow(/context waf/);
    // And agpat puts the web ACL on the stage accordingly.
    prod.template.resourceCountIs("AWS::WAFv2::WebACLAssociation", 1);
    dev.template.resourceCountIs("AWS::WAFv2::WebACLAssociation", 0);
    synth("dev", { waf: true }).template.resourceCountIs("AWS::WAFv2::WebACLAssociation", 1);
  });

  test("CORS origins must be exact origins: no wildcard, no path; localhost only in dev", () => {
    expect(() => settingsOf("dev", { corsAllowedOrigins: ["*"] })).toThrow(/corsAllowedOrigins/);
    expect(() => settingsOf("dev", { corsAllowedOrigins: ["https://app.example.com/"] })).toThrow(
      /corsAllowedOrigins/,
    );
    expect(() => settingsOf("dev", { corsAllowedOrigins: "https://app.example.com" })).toThrow(
      /corsAllowedOrigins/,
    );
    expect(() => settingsOf("prod", { corsAllowedOrigins: ["http://localhost:3000"] })).toThrow(
      /corsAllowedOrigins/,
    );
    // -c on the command line gives a string; duplicates collapse.
    expect(
      settingsOf("dev", {
        corsAllowedOrigins: '["http://localhost:3000", "http://localhost:3000"]',
      }).corsAllowedOrigins,
    ).toEqual(["http://localhost:3000"]);
    expect(settingsOf("dev").corsAllowedOrigins).toEqual([]);
  });
});

describe("access logs", () => {
  /** The stage's access-log format, parsed. */
  const formatOf = (template: Template): Record<string, string> => {
    const [stage] = Object.values(template.findResources("AWS::ApiGateway::Stage"));
    return JSON.parse(stage.Properties.AccessLogSetting.Format);
  };

  test("each request is one JSON object following it through gateway, authorizer and integration", () => {
    const format = formatOf(dev.template);
    expect(format).toMatchObject({
      requestId: "$context.requestId",
      extendedRequestId: "$context.extendedRequestId",
      ip: "$context.identity.sourceIp",
      userAgent: "$context.identity.userAgent",
      requestTime: "$context.requestTime",
      httpMethod: "$context.httpMethod",
      resourcePath: "$context.resourcePath",
      path: "$context.path",
      status: "$context.status",
      protocol: "$context.protocol",
      responseLength: "$context.responseLength",
      responseLatency: "$context.responseLatency",
      principalId: "$context.authorizer.principalId",
      authorizerStatus: "$context.authorizer.status",
      authorizerLatency: "$context.authorizer.latency",
      authorizerError: "$context.authorizer.error",
      errorMessage: "$context.error.message",
      errorResponseType: "$context.error.responseType",
      integrationStatus: "$context.integration.status",
      integrationLatency: "$context.integration.latency",
      integrationError: "$context.integrationErrorMessage",
      xrayTraceId: "$context.xrayTraceId",
    });
    // Without WAF in front there is no WAF verdict to log.
    expect(format.wafResponseCode).toBeUndefined();
  });

  test("the caller is logged with the authorizer's own context keys", () => {
    // The keys AuthorizerContext serializes (camelCase), read from the
    // committed context schema that a Rust test keeps in step with it.
    const schema = JSON.parse(
      fs.readFileSync(
        path.join(__dirname, "..", "..", "..", "docs", "authorizer-context.schema.json"),
        "utf8",
      ),
    );
    const format = formatOf(dev.template);
    for (const key of ["sub", "authMethod", "tokenId"]) {
      expect(schema.properties[key]).toBeDefined();
      expect(format[key]).toBe(`$context.authorizer.${key}`);
    }
  });

  test("no field can carry a credential, and every value is a quoted $context variable", () => {
    for (const { template } of [dev, prod]) {
      const format = formatOf(template);
      for (const value of Object.values(format)) {
        expect(value).toMatch(/^\$context\.[A-Za-z.]+$/);
        expect(value.toLowerCase()).not.toMatch(/authorization|apikey|header|querystring|cookie/);
      }
    }
  });

  test("caller-chosen values come first, so no smuggled key can follow a genuine one", () => {
    const keys = Object.keys(ACCESS_LOG_FIELDS);
    expect(keys.slice(0, 2).sort()).toEqual(["path", "userAgent"]);
    const [stage] = Object.values(dev.template.findResources("AWS::ApiGateway::Stage"));
    const format = JSON.parse(stage.Properties.AccessLogSetting.Format);
    expect(Object.keys(format).slice(0, 2).sort()).toEqual(["path", "userAgent"]);
  });

  test("with WAF on, WAF's verdict is logged too", () => {
    expect(formatOf(prod.template).wafResponseCode).toBe("$context.wafResponseCode");
    expect(formatOf(synth("dev", { waf: true }).template).wafResponseCode).toBe(
      "$context.wafResponseCode",
    );
  });

  test("the stage's access log goes to the access-log group", () => {
    const [stage] = Object.values(dev.template.findResources("AWS::ApiGateway::Stage"));
    expect(JSON.stringify(stage.Properties.AccessLogSetting.DestinationArn)).toContain(
      logicalId(dev.template, "AWS::Logs::LogGroup", "ApiAccessLogs"),
    );
  });
});

describe("account-level API Gateway logging role", () => {
  test("no stack sets the account's API Gateway CloudWatch role", () => {
    for (const { template } of variants) {
      template.resourceCountIs("AWS::ApiGateway::Account", 0);
      expect(JSON.stringify(template.toJSON())).not.toContain(
        "AmazonAPIGatewayPushToCloudWatchLogs",
      );
    }
  });
});

describe("CORS", () => {
  /** CORS on, with both origins; synthesized once, by the first test that needs it. */
  let corsOnCache: ReturnType<typeof synth> | undefined;
  const corsOn = () => (corsOnCache ??= synth("dev", { corsAllowedOrigins: CORS_ORIGINS }));
  type Resources = ReturnType<Template["findResources"]>;
  /** `METHOD /path` of every method, walking the resources up to the root. */
  const methodsByKey = (template: Template): Map<string, Resources[string]> => {
    const resources = template.findResources("AWS::ApiGateway::Resource");
    const pathOf = (ref: unknown): string => {
      const parts: string[] = [];
      let current = ref as { Ref?: string };
      while (current?.Ref && resources[current.Ref]) {
        parts.unshift(resources[current.Ref].Properties.PathPart);
        current = resources[current.Ref].Properties.ParentId;
      }
      return "/" + parts.join("/");
    };
    return new Map(
      Object.values(template.findResources("AWS::ApiGateway::Method")).map((m) => [
        `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId)}`,
        m,
      ]),
    );
  };

  test("off by default: no preflight methods and no CORS header anywhere", () => {
    expect(defaults.context).not.toHaveProperty("corsAllowedOrigins");
    for (const { template } of variants) {
      const options = [...methodsByKey(template).keys()].filter((k) => k.startsWith("OPTIONS "));
      expect(options).toEqual([]);
      expect(JSON.stringify(template.toJSON())).not.toMatch(/Access-Control-/i);
    }
  });

  test("on: every resource with methods answers a preflight itself, without the authorizer", () => {
    const methods = methodsByKey(corsOn().template);
    const paths = new Set(
      [...methods.keys()].filter((k) => !k.startsWith("OPTIONS ")).map((k) => k.split(" ")[1]),
    );
    expect(paths.size).toBeGreaterThan(3);
    for (const p of paths) {
      const preflight = methods.get(`OPTIONS ${p}`);
      expect([p, preflight?.Properties.AuthorizationType]).toEqual([p, "NONE"]);
      expect(preflight?.Properties.AuthorizerId).toBeUndefined();
      expect(preflight?.Properties.ApiKeyRequired).toBe(false);
      expect(preflight?.Properties.Integration.Type).toBe("MOCK");
    }
  });

  test("on: a preflight allows the resource's own methods, authorization and content-type, and varies on Origin", () => {
    const methods = methodsByKey(corsOn().template);
    for (const [key, method] of methods) {
      if (!key.startsWith("OPTIONS ")) continue;
      const p = key.split(" ")[1];
      const own = [...methods.keys()]
        .filter((k) => k.endsWith(` ${p}`) && !k.startsWith("OPTIONS "))
        .map((k) => k.split(" ")[0])
        .sort();
      const [response] = method.Properties.Integration.IntegrationResponses;
      const headers = response.ResponseParameters;
      expect([p, headers["method.response.header.Access-Control-Allow-Methods"]]).toEqual([
        p,
        `'${own.join(",")}'`,
      ]);
      expect(headers["method.response.header.Access-Control-Allow-Headers"]).toBe(
        `'${CORS_ALLOWED_HEADERS.join(",")}'`,
      );
      expect(CORS_ALLOWED_HEADERS).toEqual(
        expect.arrayContaining(["authorization", "content-type"]),
      );
      expect(headers["method.response.header.Vary"]).toBe("'Origin'");
      expect(headers["method.response.header.Access-Control-Allow-Origin"]).toBe(
        `'${CORS_ORIGINS[0]}'`,
      );
      // The second origin is answered by the template, which echoes only a listed one.
      expect(JSON.stringify(response.ResponseTemplates)).toContain(CORS_ORIGINS[1]);
    }
  });

  test("on: cdk-nag reports nothing, and no account-level logging role appears", () => {
    const { stack, template } = corsOn();
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
    template.resourceCountIs("AWS::ApiGateway::Account", 0);
  });

  test("on: never a wildcard origin, never credentials", () => {
    const text = JSON.stringify(corsOn().template.toJSON());
    expect(text).not.toContain("Access-Control-Allow-Credentials");
    expect(text).not.toMatch(/Access-Control-Allow-Origin[^,]*'\*'/);
  });

  test("on: the gateway's own error responses carry the CORS headers, agpat's problems included", () => {
    const responses = Object.values(
      corsOn().template.findResources("AWS::ApiGateway::GatewayResponse"),
    );
    const types = responses.map((r) => r.Properties.ResponseType).sort();
    // A type is defined at most once per API (CloudFormation refuses a second).
    expect(types).toEqual([...new Set(types)]);
    expect(types).toEqual(
      expect.arrayContaining([
        "DEFAULT_4XX",
        "DEFAULT_5XX",
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "THROTTLED",
      ]),
    );
    for (const r of responses) {
      expect([r.Properties.ResponseType, r.Properties.ResponseParameters]).toEqual([
        r.Properties.ResponseType,
        expect.objectContaining({
          "gatewayresponse.header.Access-Control-Allow-Origin": "method.request.header.origin",
          "gatewayresponse.header.Vary": "'Origin'",
        }),
      ]);
    }
    // agpat's problem type is kept.
    corsOn().template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
      ResponseType: "UNAUTHORIZED",
      ResponseParameters: Match.objectLike({
        "gatewayresponse.header.Content-Type": "'application/problem+json'",
      }),
    });
    // One origin is named, not echoed.
    const single = synth("dev", { corsAllowedOrigins: [CORS_ORIGINS[0]] });
    single.template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
      ResponseType: "UNAUTHORIZED",
      ResponseParameters: Match.objectLike({
        "gatewayresponse.header.Access-Control-Allow-Origin": `'${CORS_ORIGINS[0]}'`,
      }),
    });
  });
});

describe("deployments and releases", () => {
  test("a staging deployment runs prod's settings under its own names and namespace", () => {
    const staging = synth("prod", { deployment: "staging" });
    const t = staging.template;
    t.hasResourceProperties("AWS::ApiGateway::RestApi", { Name: "agpat-staging" });
    t.hasResourceProperties("AWS::ApiGateway::Stage", { StageName: "staging" });
    t.hasResourceProperties("AWS::Budgets::Budget", {
      Budget: Match.objectLike({ BudgetName: "agpat-staging-monthly" }),
    });
    const namespaces = Object.values(t.findResources("AWS::Lambda::Function"))
      .map((f) => f.Properties.Environment?.Variables?.AGPAT_METRICS_NAMESPACE)
      .filter((ns) => ns !== undefined);
    expect(new Set(namespaces)).toEqual(new Set(["agpat/staging"]));
    // prod's settings: termination protection, a canary, the web ACL.
    expect(staging.stack.terminationProtection).toBe(true);
    t.resourceCountIs("AWS::WAFv2::WebACL", 1);
    for (const group of Object.values(t.findResources("AWS::CodeDeploy::DeploymentGroup"))) {
      expect(group.Properties.DeploymentConfigName).toBe(
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
      );
    }
    expect(() => synth("dev", { deployment: "Staging!" })).toThrow(/context deployment/);
  });

  test("the business Lambda is released through its live alias and rolled back on its crashes and the stage's 5XX", () => {
    const t = prod.template;
    const fn = functionId(t, "api");
    const release = Object.entries(t.findResources("AWS::Lambda::Alias")).find(
      ([, a]) => JSON.stringify(a.Properties.FunctionName) === JSON.stringify({ Ref: fn }),
    );
    if (!release) throw new Error("the api function has no alias");
    const [aliasId, alias] = release;
    const group = t.findResources("AWS::CodeDeploy::DeploymentGroup")[
      alias.UpdatePolicy.CodeDeployLambdaAliasUpdate.DeploymentGroupName.Ref
    ];
    expect(group.Properties.DeploymentConfigName).toBe(
      "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    );
    const alarms = group.Properties.AlarmConfiguration.Alarms.map(
      (a: Resource) => a.Name.Ref,
    ).sort();
    expect(alarms).toEqual(
      [
        logicalId(t, "AWS::CloudWatch::Alarm", "ApiReleaseErrors"),
        logicalId(t, "AWS::CloudWatch::Alarm", "AgpatReleaseApi5xx"),
      ].sort(),
    );
    // Every items method invokes the alias, none the function.
    const integrations = Object.values(t.findResources("AWS::ApiGateway::Method")).map((m) =>
      JSON.stringify(m.Properties.Integration ?? {}),
    );
    expect(integrations.filter((i) => i.includes(`"${aliasId}"`)).length).toBeGreaterThanOrEqual(5);
    expect(integrations.filter((i) => i.includes(`"${fn}"`))).toEqual([]);
  });

  test("the business function's throttles and the items table's throttles and internal errors alarm, 2 of 3, on ALARM and OK", () => {
    const t = prod.template;
    const topic = { Ref: logicalId(t, "AWS::SNS::Topic", "Alerts") };
    const alarmOf = (prefix: string) =>
      t.findResources("AWS::CloudWatch::Alarm")[logicalId(t, "AWS::CloudWatch::Alarm", prefix)]
        .Properties;
    const throttles = alarmOf("ApiThrottles");
    expect(throttles).toMatchObject({
      MetricName: "Throttles",
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
    });
    expect(JSON.stringify(throttles.Dimensions)).toContain(functionId(t, "api"));
    const table = alarmOf("ItemsTableThrottles");
    expect(JSON.stringify(table.Metrics)).toContain("ReadThrottleEvents");
    expect(JSON.stringify(table.Metrics)).toContain("WriteThrottleEvents");
    expect(JSON.stringify(table.Metrics)).toContain(itemsTableId(t));
    const errors = alarmOf("ItemsTableSystemErrors");
    expect(JSON.stringify(errors.Metrics)).toContain("SystemErrors");
    for (const a of [throttles, table, errors]) {
      expect(a.AlarmActions).toEqual([topic]);
      expect(a.OKActions).toEqual([topic]);
      expect(a.EvaluationPeriods).toBe(3);
      expect(a.DatapointsToAlarm).toBe(2);
    }
  });

  test("the outputs name what the smoke test, the migration workflow and the emergency lever need", () => {
    const outputs = prod.template.toJSON().Outputs;
    for (const name of [
      "ApiUrl",
      "UserPoolId",
      "SmokeTestClientId",
      "MigratorFunctionName",
      "RestApiId",
      "StageName",
      "AuthorizerFunctionName",
      "EventBusName",
    ]) {
      expect(outputs[name]).toBeDefined();
    }
    // Where adopters' own rules (webhooks, chat) subscribe to agpat's events.
    expect(outputs.EventBusName.Value).toEqual({
      Ref: logicalId(prod.template, "AWS::Events::EventBus", "AgpatEventBus"),
    });
    const smokeClients = Object.keys(
      prod.template.findResources("AWS::Cognito::UserPoolClient"),
    ).filter((id) => id.includes("SmokeTestClient"));
    expect(smokeClients).toHaveLength(1);
    expect(outputs.SmokeTestClientId.Value).toEqual({ Ref: smokeClients[0] });
  });
});
