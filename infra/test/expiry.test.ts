import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Duration } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AGPAT_EVENT_DETAIL_TYPES, AgpatProps, TABLE, TOKEN_ROUTES } from "../lib";
import { Built, STUB_ASSETS, buildOnFixture } from "./fixture";

// Issue #15 in the construct: the expiry index (GSI2), the agpat event bus,
// history retention, the expiry sweeper on its schedule, the optional
// owner-email notifier, their IAM and alarms, and the new /tokens routes.
const FROM = "noreply@mail.example.com";

/** Template JSON, as untyped as the assertions library hands it out. */
type Json = ReturnType<Template["toJSON"]>;

/** A stack of the fixture with agpat on it (see fixture.ts). */
function build(
  envName: "dev" | "prod",
  props: Partial<AgpatProps> = {},
  name: string = envName,
): Built {
  return buildOnFixture("expiry", envName, props, name);
}

const dev = build("dev");
const prod = build("prod");
const emails = build("dev", { ownerEmails: { from: FROM } }, "emails");
const prodEmails = build("prod", { ownerEmails: { from: FROM } }, "prod-emails");

/** The one resource of `type` whose logical id starts with `prefix`. */
function one(t: Template, type: string, prefix: string): { id: string; r: Json } {
  const found = Object.entries(t.findResources(type)).filter(([id]) => id.startsWith(prefix));
  if (found.length !== 1) {
    throw new Error(`${found.length} ${type} start with ${prefix}: ${found.map(([id]) => id)}`);
  }
  return { id: found[0][0], r: found[0][1] as Json };
}
const fn = (t: Template, name: string) =>
  one(t, "AWS::Lambda::Function", `Agpat${name.replace(/-/g, "")}fn`);
const envOf = (t: Template, name: string): Record<string, unknown> =>
  fn(t, name).r.Properties.Environment.Variables;
const busRef = (t: Template) => ({ Ref: one(t, "AWS::Events::EventBus", "AgpatEventBus").id });
const busArn = (t: Template) => ({
  "Fn::GetAtt": [one(t, "AWS::Events::EventBus", "AgpatEventBus").id, "Arn"],
});
const tableRef = (t: Template) => ({ Ref: one(t, "AWS::DynamoDB::Table", "AgpatTable").id });
const topicRef = (t: Template) => ({ Ref: one(t, "AWS::SNS::Topic", "AgpatAlerts").id });
const alarm = (t: Template, prefix: string) =>
  one(t, "AWS::CloudWatch::Alarm", `Agpat${prefix}`).r.Properties;

/** Every statement of the policies attached to `name`'s execution role. */
function statementsOf(t: Template, name: string): Json[] {
  const roleId = fn(t, name).r.Properties.Role["Fn::GetAtt"][0];
  return Object.values(t.findResources("AWS::IAM::Policy"))
    .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}
const actionsOf = (st: Json): string[] => ([] as string[]).concat(st.Action);

describe("the expiry index, the agpat event bus and history retention", () => {
  test("the token table has the expiry index GSI2 on GSI2PK and GSI2SK, projecting exactly the generated attributes and never the hash", () => {
    expect(TABLE.gsi2.name).toBe("GSI2");
    for (const { template } of [dev, prod]) {
      const table = one(template, "AWS::DynamoDB::Table", "AgpatTable").r.Properties;
      const gsi2 = table.GlobalSecondaryIndexes.find((g: Json) => g.IndexName === "GSI2");
      expect(gsi2).toEqual({
        IndexName: "GSI2",
        KeySchema: [
          { AttributeName: "GSI2PK", KeyType: "HASH" },
          { AttributeName: "GSI2SK", KeyType: "RANGE" },
        ],
        Projection: {
          ProjectionType: "INCLUDE",
          NonKeyAttributes: [
            "v",
            "id",
            "owner",
            "name",
            "created_at",
            "expires_at",
            "revoked_at",
            "rotated_to",
          ],
        },
      });
      expect(table.AttributeDefinitions).toEqual(
        expect.arrayContaining([
          { AttributeName: "GSI2PK", AttributeType: "S" },
          { AttributeName: "GSI2SK", AttributeType: "S" },
        ]),
      );
    }
  });

  test("a custom agpat event bus without a resource policy is created, and only the token service and the expiry sweeper may put events on it, knowing it as AGPAT_EVENT_BUS", () => {
    for (const { template } of [dev, prod, emails]) {
      expect(Object.keys(template.findResources("AWS::Events::EventBus"))).toHaveLength(1);
      expect(template.findResources("AWS::Events::EventBusPolicy")).toEqual({});
      const bus = one(template, "AWS::Events::EventBus", "AgpatEventBus").r.Properties;
      expect(bus.Policy).toBeUndefined();
      for (const name of ["token-service", "expiry-sweeper"]) {
        expect(envOf(template, name).AGPAT_EVENT_BUS).toEqual(busRef(template));
      }
      for (const name of ["authorizer", "offboarding", "migrator"]) {
        expect(envOf(template, name).AGPAT_EVENT_BUS).toBeUndefined();
      }
      const putters = Object.values(template.findResources("AWS::IAM::Policy")).flatMap((p) =>
        (p.Properties.PolicyDocument.Statement as Json[])
          .filter((st) => actionsOf(st).some((a) => a.startsWith("events:")))
          .map((st) => ({ roles: p.Properties.Roles, st })),
      );
      const roleOf = (name: string) => [
        { Ref: fn(template, name).r.Properties.Role["Fn::GetAtt"][0] },
      ];
      expect(putters).toEqual([
        {
          roles: roleOf("token-service"),
          st: { Action: "events:PutEvents", Effect: "Allow", Resource: busArn(template) },
        },
        {
          roles: roleOf("expiry-sweeper"),
          st: { Action: "events:PutEvents", Effect: "Allow", Resource: busArn(template) },
        },
      ]);
    }
    expect(dev.agpat.eventBus).toBeDefined();
  });

  test("every function that records history gets TOKEN_EVENT_RETENTION_DAYS, 90 by default; eventRetentionDays sets it and is refused outside 1 to 3650", () => {
    const writers = ["authorizer", "token-service", "offboarding", "expiry-sweeper"];
    for (const name of writers) {
      expect({ name, days: envOf(dev.template, name).TOKEN_EVENT_RETENTION_DAYS }).toEqual({
        name,
        days: "90",
      });
    }
    const year = build("dev", { eventRetentionDays: 365 }, "year");
    for (const name of writers) {
      expect(envOf(year.template, name).TOKEN_EVENT_RETENTION_DAYS).toBe("365");
    }
    for (const bad of [0, 3651, 1.5e9, Number.NaN]) {
      expect(() => build("dev", { eventRetentionDays: bad }, `bad-${bad}`)).toThrow(
        /eventRetentionDays must be a number from 1 to 3650/,
      );
    }
  });

  test("the token service writes schema v3 by default; tokenSchemaWriteVersion 2 pins it for a roll-out over older readers, and nothing else is accepted", () => {
    expect(envOf(dev.template, "token-service").TOKEN_SCHEMA_WRITE_VERSION).toBe("3");
    const pinned = build("dev", { tokenSchemaWriteVersion: 2 }, "pinned");
    expect(envOf(pinned.template, "token-service").TOKEN_SCHEMA_WRITE_VERSION).toBe("2");
    for (const bad of [1, 4, 2.5]) {
      expect(() =>
        build("dev", { tokenSchemaWriteVersion: bad }, `v-${String(bad).replace(".", "-")}`),
      ).toThrow(/tokenSchemaWriteVersion must be a number from 2 to 3/);
    }
  });

  test("PATCH /tokens/{id} and GET /tokens/{id}/events are methods behind agpat's authorizer, and PATCH gets the token-write throttle", () => {
    const keys = TOKEN_ROUTES.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.access)}`);
    expect(keys).toContain('PATCH /tokens/{id} {"kind":"scope","scope":"tokens:write"}');
    expect(keys).toContain('GET /tokens/{id}/events {"kind":"scope","scope":"tokens:read"}');
    const t = dev.template;
    const authorizer = { Ref: one(t, "AWS::ApiGateway::Authorizer", "AgpatAuthorizer").id };
    const resources = t.findResources("AWS::ApiGateway::Resource");
    const pathOf = (ref: { Ref?: string }): string => {
      const parts: string[] = [];
      let current = ref;
      while (current?.Ref && resources[current.Ref]) {
        parts.unshift(resources[current.Ref].Properties.PathPart);
        current = resources[current.Ref].Properties.ParentId;
      }
      return "/" + parts.join("/");
    };
    const methods = Object.values(t.findResources("AWS::ApiGateway::Method")).map((m) => ({
      key: `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId)}`,
      auth: m.Properties.AuthorizationType,
      authorizer: m.Properties.AuthorizerId,
    }));
    for (const key of ["PATCH /tokens/{id}", "GET /tokens/{id}/events"]) {
      expect(methods.filter((m) => m.key === key)).toEqual([{ key, auth: "CUSTOM", authorizer }]);
    }
    t.hasResourceProperties("AWS::ApiGateway::Stage", {
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          HttpMethod: "PATCH",
          ResourcePath: "/~1tokens~1{id}",
          ThrottlingRateLimit: 5,
          ThrottlingBurstLimit: 10,
        }),
      ]),
    });
  });
});

describe("the expiry sweeper", () => {
  test("the expiry sweeper runs the expiry package in sweep mode, alone (reserved concurrency 1), for at most 5 minutes, with its own log group", () => {
    for (const { template } of [dev, prod]) {
      const { r } = fn(template, "expiry-sweeper");
      expect(r.Properties).toMatchObject({
        Runtime: "provided.al2023",
        Architectures: ["arm64"],
        Handler: "bootstrap",
        Timeout: 300,
        ReservedConcurrentExecutions: 1,
        TracingConfig: { Mode: "Active" },
      });
      expect(r.Properties.LoggingConfig.LogGroup).toEqual({
        Ref: one(template, "AWS::Logs::LogGroup", "Agpatexpirysweeperlogs").id,
      });
      expect(envOf(template, "expiry-sweeper")).toEqual({
        AGPAT_EXPIRY_MODE: "sweep",
        TABLE_NAME: tableRef(template),
        TOKEN_EVENT_RETENTION_DAYS: "90",
        AGPAT_EVENT_BUS: busRef(template),
        AGPAT_METRICS_NAMESPACE: template === dev.template ? "agpat/dev" : "agpat/prod",
        RUST_LOG: "info",
      });
    }
    expect(dev.agpat.functions["expiry-sweeper"]).toBeDefined();
    expect(() =>
      build("dev", { reservedConcurrency: { "expiry-sweeper": 2 } as never }, "rc"),
    ).toThrow(/reservedConcurrency.expiry-sweeper cannot be set/);
    // Without the expiry package, synthesis fails and says how to build it.
    const partial = fs.mkdtempSync(path.join(os.tmpdir(), "agpat-assets-"));
    try {
      for (const name of ["authorizer", "token-service", "offboarding", "migrator"]) {
        fs.mkdirSync(path.join(partial, name));
        fs.copyFileSync(
          path.join(STUB_ASSETS, name, "bootstrap.zip"),
          path.join(partial, name, "bootstrap.zip"),
        );
      }
      expect(() => build("dev", { lambdaAssets: partial }, "na")).toThrow(
        /expiry\/bootstrap\.zip does not exist; build it with scripts\/build-lambdas\.sh/,
      );
    } finally {
      fs.rmSync(partial, { recursive: true, force: true });
    }
  });

  test("an EventBridge schedule runs the sweeper every hour by default, and a failed run is left to the next one instead of retried", () => {
    const t = dev.template;
    const sweeper = fn(t, "expiry-sweeper").id;
    const rules = Object.values(t.findResources("AWS::Events::Rule")).filter((r) =>
      JSON.stringify(r.Properties.Targets).includes(sweeper),
    );
    expect(rules).toHaveLength(1);
    expect(rules[0].Properties).toMatchObject({
      ScheduleExpression: "rate(1 hour)",
      State: "ENABLED",
      Targets: [
        {
          Arn: { "Fn::GetAtt": [sweeper, "Arn"] },
          RetryPolicy: { MaximumRetryAttempts: 2 },
        },
      ],
    });
    // On the default bus: a schedule, never an event pattern anyone could match.
    expect(rules[0].Properties.EventBusName).toBeUndefined();
    expect(rules[0].Properties.EventPattern).toBeUndefined();
    t.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
      FunctionName: { Ref: sweeper },
      MaximumRetryAttempts: 0,
    });
  });

  test("expirySweepSchedule sets the sweep's rate, and is refused outside whole minutes from 5 minutes to 8 hours", () => {
    const quarter = build("dev", { expirySweepSchedule: Duration.minutes(15) }, "quarter");
    quarter.template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(15 minutes)",
      Targets: [
        Match.objectLike({
          Arn: { "Fn::GetAtt": [fn(quarter.template, "expiry-sweeper").id, "Arn"] },
        }),
      ],
    });
    for (const bad of [Duration.minutes(4), Duration.hours(9), Duration.seconds(330)]) {
      expect(() => build("dev", { expirySweepSchedule: bad }, `bad-${bad.toSeconds()}`)).toThrow(
        /expirySweepSchedule must be whole minutes from 5 minutes to 8 hours/,
      );
    }
  });

  test("two failed sweeps of the last three alarm, counted per sweep interval, to the topic", () => {
    for (const [t, period] of [
      [dev.template, 3600],
      [build("dev", { expirySweepSchedule: Duration.minutes(30) }, "half").template, 1800],
    ] as const) {
      const a = alarm(t, "ExpirySweeperErrors");
      expect(a).toMatchObject({
        Namespace: "AWS/Lambda",
        MetricName: "Errors",
        Dimensions: [{ Name: "FunctionName", Value: { Ref: fn(t, "expiry-sweeper").id } }],
        Statistic: "Sum",
        Period: period,
        Threshold: 1,
        EvaluationPeriods: 3,
        DatapointsToAlarm: 2,
        TreatMissingData: "notBreaching",
        AlarmActions: [topicRef(t)],
        OKActions: [topicRef(t)],
      });
    }
    expect(dev.agpat.alarms.map((a) => a.node.id)).toContain("ExpirySweeperErrors");
  });

  test("the sweeper's role cannot read a hash, revoke, extend or re-own a token, or delete anything", () => {
    const statements = statementsOf(dev.template, "expiry-sweeper");
    const dynamo = statements.filter((st) => JSON.stringify(st.Action).includes("dynamodb:"));
    for (const st of dynamo) {
      const actions = actionsOf(st);
      expect(actions).not.toContain("dynamodb:Scan");
      expect(actions).not.toContain("dynamodb:DeleteItem");
      expect(actions).not.toContain("dynamodb:BatchWriteItem");
      const leading = st.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
      if (leading.includes("TOKEN#*")) {
        // Token records: UpdateItem of the notice marks only, no GetItem.
        expect(actions).toEqual(["dynamodb:UpdateItem"]);
        expect(st.Condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]).toEqual([
          "PK",
          "SK",
          "notified_30",
          "notified_7",
          "notified_1",
          "notified_expired",
        ]);
      }
    }
  });
});

describe("owner emails", () => {
  test("without ownerEmails there is no notifier, no rule on the agpat bus and no SES permission", () => {
    const t = dev.template;
    expect(dev.agpat.expiryNotifier).toBeUndefined();
    expect(
      Object.keys(t.findResources("AWS::Lambda::Function")).filter((id) =>
        id.startsWith("Agpatexpirynotifier"),
      ),
    ).toEqual([]);
    expect(
      Object.values(t.findResources("AWS::Events::Rule")).filter(
        (r) => r.Properties.EventBusName !== undefined,
      ),
    ).toEqual([]);
    expect(JSON.stringify(t.findResources("AWS::IAM::Policy"))).not.toContain("ses:");
  });

  test("with ownerEmails, a rule on the agpat bus sends expiring, expired and leak-report events to the notifier in notify mode, retrying and dead-lettering", () => {
    const t = emails.template;
    const notifier = fn(t, "expiry-notifier");
    const dlq = one(t, "AWS::SQS::Queue", "AgpatExpiryNotifierDlq").id;
    const rules = Object.values(t.findResources("AWS::Events::Rule")).filter((r) =>
      JSON.stringify(r.Properties.Targets).includes(notifier.id),
    );
    expect(rules).toHaveLength(1);
    expect(rules[0].Properties).toMatchObject({
      EventBusName: busRef(t),
      State: "ENABLED",
      EventPattern: {
        source: ["agpat"],
        "detail-type": ["agpat.token.expiring", "agpat.token.expired", "agpat.token.leak_reported"],
      },
      Targets: [
        {
          Arn: { "Fn::GetAtt": [notifier.id, "Arn"] },
          RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 },
          DeadLetterConfig: { Arn: { "Fn::GetAtt": [dlq, "Arn"] } },
        },
      ],
    });
    expect([...AGPAT_EVENT_DETAIL_TYPES]).toEqual(rules[0].Properties.EventPattern["detail-type"]);
    expect(notifier.r.Properties).toMatchObject({
      Runtime: "provided.al2023",
      Architectures: ["arm64"],
      DeadLetterConfig: { TargetArn: { "Fn::GetAtt": [dlq, "Arn"] } },
      Environment: {
        Variables: {
          AGPAT_EXPIRY_MODE: "notify",
          USER_POOL_ID: { Ref: one(t, "AWS::Cognito::UserPool", "AgpatUserPool").id },
          AGPAT_EMAIL_FROM: FROM,
          RUST_LOG: "info",
        },
      },
    });
    // The notifier needs no table: it must not know its name.
    expect(notifier.r.Properties.Environment.Variables.TABLE_NAME).toBeUndefined();
    // The same deployment package as the sweeper.
    expect(notifier.r.Properties.Code).toEqual(fn(t, "expiry-sweeper").r.Properties.Code);
    t.hasResourceProperties("AWS::SQS::Queue", {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    expect(emails.agpat.expiryNotifierRule).toBeDefined();
    expect(emails.agpat.expiryNotifierDeadLetterQueue).toBeDefined();
    // Reserved in prod (which also paces SES sends), not in dev.
    expect(notifier.r.Properties.ReservedConcurrentExecutions).toBeUndefined();
    expect(
      fn(prodEmails.template, "expiry-notifier").r.Properties.ReservedConcurrentExecutions,
    ).toBe(2);
  });

  test("the notifier may only list the pool's users, send email from the configured address and dead-letter; it never touches the token table", () => {
    const t = emails.template;
    const identity = (name: string) =>
      emails.stack.resolve(
        emails.stack.formatArn({ service: "ses", resource: "identity", resourceName: name }),
      );
    const [xray, ...rest] = statementsOf(t, "expiry-notifier");
    expect(actionsOf(xray).every((a) => a.startsWith("xray:"))).toBe(true);
    expect(rest).toEqual([
      {
        Action: "cognito-idp:ListUsers",
        Effect: "Allow",
        Resource: { "Fn::GetAtt": [one(t, "AWS::Cognito::UserPool", "AgpatUserPool").id, "Arn"] },
      },
      {
        Action: "ses:SendEmail",
        Effect: "Allow",
        Resource: [identity(FROM), identity("mail.example.com")],
        Condition: { StringEquals: { "ses:FromAddress": [FROM] } },
      },
      {
        Action: "sqs:SendMessage",
        Effect: "Allow",
        Resource: { "Fn::GetAtt": [one(t, "AWS::SQS::Queue", "AgpatExpiryNotifierDlq").id, "Arn"] },
      },
    ]);
  });

  test("ownerEmails.from must be a plain email address", () => {
    for (const bad of ["", "noreply", "Agpat <noreply@example.com>", "a@b@example.com", "a@b"]) {
      expect(() => build("dev", { ownerEmails: { from: bad } }, `from-${bad.length}`)).toThrow(
        /ownerEmails.from must be a plain address such as noreply@example.com/,
      );
    }
  });

  test("the notifier's errors, throttles and dead letters alarm in M of N periods, to the topic", () => {
    const t = emails.template;
    const notifier = { Ref: fn(t, "expiry-notifier").id };
    const shape = {
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
      TreatMissingData: "notBreaching",
      AlarmActions: [topicRef(t)],
      OKActions: [topicRef(t)],
    };
    expect(alarm(t, "ExpiryNotifierErrors")).toMatchObject({
      ...shape,
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [{ Name: "FunctionName", Value: notifier }],
    });
    expect(alarm(t, "ExpiryNotifierThrottles")).toMatchObject({
      ...shape,
      Namespace: "AWS/Lambda",
      MetricName: "Throttles",
      Dimensions: [{ Name: "FunctionName", Value: notifier }],
    });
    expect(alarm(t, "ExpiryNotifierDlqMessages")).toMatchObject({
      ...shape,
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [
        {
          Name: "QueueName",
          Value: {
            "Fn::GetAtt": [one(t, "AWS::SQS::Queue", "AgpatExpiryNotifierDlq").id, "QueueName"],
          },
        },
      ],
    });
    expect(
      Object.keys(dev.template.findResources("AWS::CloudWatch::Alarm")).filter((id) =>
        id.startsWith("AgpatExpiryNotifier"),
      ),
    ).toEqual([]);
  });
});
