import * as path from "path";
import {
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  StackProps,
  aws_apigateway as apigw,
  aws_budgets as budgets,
  aws_cloudtrail as cloudtrail,
  aws_cloudwatch as cw,
  aws_cloudwatch_actions as cwActions,
  aws_cognito as cognito,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_events_targets as targets,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_s3 as s3,
  aws_sns as sns,
  aws_sqs as sqs,
} from "aws-cdk-lib";
import { NagSuppressions } from "cdk-nag";
import { Construct, Node } from "constructs";
import { ROUTES, Route, Service, TABLE, isPublic } from "./routes";

/** Everything configurable, read from CDK context (see cdk.json and the README). */
export interface Settings {
  env: "dev" | "prod";
  /** Directory holding `<function>/bootstrap` built by cargo-lambda. */
  lambdaAssets: string;
  /** API Gateway authorizer result cache; part of the revocation bound. */
  authorizerCacheTtlSeconds: number;
  /** The authorizer's in-process PAT cache; the other part of the bound. */
  patCacheTtlSeconds: number;
  tokenMaxLifetimeDays: number;
  stageRateLimit: number;
  stageBurstLimit: number;
  tokenWriteRateLimit: number;
  tokenWriteBurstLimit: number;
  publicRevokeRateLimit: number;
  publicRevokeBurstLimit: number;
  budgetMonthlyUsd: number;
  budgetThresholdsPercent: number[];
  /** 0 disables provisioned concurrency for the authorizer. */
  provisionedAuthorizerConcurrency: number;
  /**
   * Create a management-events CloudTrail trail so Cognito API calls reach
   * EventBridge (offboarding). Leave false where an organisation trail exists.
   */
  offboardingTrail: boolean;
  /**
   * Hours between offboarding's reconciliation sweeps (every owner with a
   * live token checked against Cognito); 0 disables the sweep.
   */
  offboardingSweepHours: number;
  /** Where alarms and budget alerts go, if set. */
  alertEmail?: string;
}

function num(node: Node, key: string, min: number, max: number): number {
  const value = Number(node.tryGetContext(key));
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`context ${key}: expected a number from ${min} to ${max}`);
  }
  return value;
}

function bool(node: Node, key: string, fallback: boolean): boolean {
  const value = node.tryGetContext(key);
  if (value === undefined) return fallback;
  // `-c key=true` on the command line arrives as a string.
  if (value === true || value === "true") return true;
  if (value === false || value === "false") return false;
  throw new Error(`context ${key}: expected true or false`);
}

/** Reads and validates the settings; a bad value names the context key. */
export function settingsFromContext(node: Node): Settings {
  const env = node.tryGetContext("env");
  if (env !== "dev" && env !== "prod") throw new Error("context env: expected dev or prod");
  const thresholds = node.tryGetContext("budgetThresholdsPercent");
  if (!Array.isArray(thresholds) || thresholds.some((t) => typeof t !== "number" || t <= 0)) {
    throw new Error("context budgetThresholdsPercent: expected a list of positive numbers");
  }
  return {
    env,
    lambdaAssets: String(node.tryGetContext("lambdaAssets") ?? "../target/lambda"),
    authorizerCacheTtlSeconds: num(node, "authorizerCacheTtlSeconds", 0, 3600),
    patCacheTtlSeconds: num(node, "patCacheTtlSeconds", 0, 300),
    tokenMaxLifetimeDays: num(node, "tokenMaxLifetimeDays", 1, 365),
    stageRateLimit: num(node, "stageRateLimit", 1, 10000),
    stageBurstLimit: num(node, "stageBurstLimit", 1, 5000),
    tokenWriteRateLimit: num(node, "tokenWriteRateLimit", 1, 1000),
    tokenWriteBurstLimit: num(node, "tokenWriteBurstLimit", 1, 1000),
    publicRevokeRateLimit: num(node, "publicRevokeRateLimit", 1, 100),
    publicRevokeBurstLimit: num(node, "publicRevokeBurstLimit", 1, 100),
    budgetMonthlyUsd: num(node, "budgetMonthlyUsd", 1, 1_000_000),
    budgetThresholdsPercent: thresholds,
    provisionedAuthorizerConcurrency: num(node, "provisionedAuthorizerConcurrency", 0, 100),
    offboardingTrail: bool(node, "offboardingTrail", false),
    offboardingSweepHours: num(node, "offboardingSweepHours", 0, 168),
    alertEmail: node.tryGetContext("alertEmail"),
  };
}

export interface AgpatStackProps extends StackProps {
  settings: Settings;
}

/** The Lambdas: the two route services plus the authorizer and offboarding. */
export type FunctionName = "authorizer" | "offboarding" | Service;

/** Per-function sizing. */
const FUNCTIONS: Record<
  FunctionName,
  { memoryMb: number; timeoutS: number; reservedProd: number }
> = {
  authorizer: { memoryMb: 256, timeoutS: 5, reservedProd: 200 },
  "token-service": { memoryMb: 512, timeoutS: 10, reservedProd: 20 },
  api: { memoryMb: 256, timeoutS: 10, reservedProd: 100 },
  // 15 minutes: the reconciliation sweep walks every owner with a live token.
  offboarding: { memoryMb: 256, timeoutS: 900, reservedProd: 5 },
};

/**
 * Partition-key prefixes of the token table. IAM `dynamodb:LeadingKeys`
 * conditions pin each role to the item kinds it owns.
 */
const KEY = {
  /** `TOKEN#<id>` / `TOKEN`: one token record. */
  token: "TOKEN#*",
  /** `USER#<sub>` / `SLOTS`: the per-user active set (also GSI1's partition key). */
  user: "USER#*",
  /** `ALIAS#<username>` / `USER`: Cognito username to sub. */
  alias: "ALIAS#*",
};

/**
 * What offboarding may write on a token record: its revocation only. Never
 * `owner`, `hash`, `scopes`, `expires_at` or `epoch`: nothing that could give
 * a token to someone else or hide it from revoke-all.
 */
export const OFFBOARDING_TOKEN_ATTRIBUTES = ["PK", "SK", "revoked_at", "ttl"];

/**
 * What offboarding may write on an owner's active set: the slots it frees, the
 * revocation `epoch`, `revoked_all_at`, and `legacy_swept` (set once
 * revoke-all has searched the owner's history).
 */
export const OFFBOARDING_OWNER_ATTRIBUTES = [
  "PK",
  "SK",
  "slots",
  "epoch",
  "revoked_all_at",
  "legacy_swept",
];

/** Cognito API calls (via CloudTrail) after which a user's tokens are revoked. */
export const OFFBOARDING_EVENTS = ["AdminDisableUser", "AdminDeleteUser", "DeleteUser"];

/**
 * The whole component: token and items tables, user pool, four Rust Lambdas,
 * the REST API generated from the route table, offboarding on Cognito events,
 * alarms and a budget.
 */
export class AgpatStack extends Stack {
  readonly api: apigw.RestApi;
  /** Tokens, per-user active sets and username aliases. */
  readonly table: dynamodb.Table;
  /** The demo business API's items; no function but `api` can reach it. */
  readonly itemsTable: dynamodb.Table;
  readonly functions: Record<FunctionName, lambda.Function>;

  constructor(scope: Construct, id: string, props: AgpatStackProps) {
    super(scope, id, props);
    const s = props.settings;
    const prod = s.env === "prod";

    // ---- DynamoDB: the token table, keys and GSI from the generated manifest.
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: prod,
      timeToLiveAttribute: TABLE.ttlAttribute,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: TABLE.gsi1.name,
      partitionKey: { name: TABLE.gsi1.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE.gsi1.sortKey, type: dynamodb.AttributeType.STRING },
      // The hash is never projected: listings cannot read it.
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: TABLE.gsi1.projectedAttributes,
    });

    // ---- DynamoDB: the business API's items, apart from the tokens so that
    // the api role needs no access to the token table at all.
    this.itemsTable = new dynamodb.Table(this, "ItemsTable", {
      partitionKey: { name: "PK", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "SK", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: prod,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    // ---- Cognito: strong passwords, optional MFA, a public client.
    const userPool = new cognito.UserPool(this, "UserPool", {
      selfSignUpEnabled: false,
      signInAliases: { username: true, email: true },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      removalPolicy: prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    const client = userPool.addClient("PublicClient", {
      generateSecret: false,
      authFlows: { userSrp: true, userPassword: true },
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(30),
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
    });

    // ---- Lambdas: provided.al2023 on arm64, from cargo-lambda output.
    const tokenTable: Record<string, string> = {
      TABLE_NAME: this.table.tableName,
      RUST_LOG: "info",
    };
    const environments: Record<FunctionName, Record<string, string>> = {
      authorizer: {
        ...tokenTable,
        COGNITO_USER_POOL_ID: userPool.userPoolId,
        COGNITO_CLIENT_IDS: client.userPoolClientId,
        PAT_CACHE_TTL_SECONDS: String(s.patCacheTtlSeconds),
      },
      "token-service": { ...tokenTable, TOKEN_MAX_LIFETIME_DAYS: String(s.tokenMaxLifetimeDays) },
      // The business API sees only its own table.
      api: { ITEMS_TABLE_NAME: this.itemsTable.tableName, RUST_LOG: "info" },
      offboarding: { ...tokenTable, COGNITO_USER_POOL_ID: userPool.userPoolId },
    };
    const make = (name: FunctionName): lambda.Function => {
      const sizing = FUNCTIONS[name];
      const logGroup = new logs.LogGroup(this, `${name}-logs`, {
        retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
        removalPolicy: prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      });
      return new lambda.Function(this, `${name}-fn`, {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: "bootstrap",
        code: lambda.Code.fromAsset(path.join(s.lambdaAssets, name)),
        memorySize: sizing.memoryMb,
        timeout: Duration.seconds(sizing.timeoutS),
        reservedConcurrentExecutions: prod ? sizing.reservedProd : undefined,
        tracing: lambda.Tracing.ACTIVE,
        logGroup,
        environment: environments[name],
      });
    };
    this.functions = {
      authorizer: make("authorizer"),
      "token-service": make("token-service"),
      api: make("api"),
      offboarding: make("offboarding"),
    };
    // API Gateway must invoke the alias, or the provisioned instances sit idle
    // while every request is served by on-demand ones.
    const authorizerHandler: lambda.IFunction =
      s.provisionedAuthorizerConcurrency > 0
        ? new lambda.Alias(this, "AuthorizerLive", {
            aliasName: "live",
            version: this.functions.authorizer.currentVersion,
            provisionedConcurrentExecutions: s.provisionedAuthorizerConcurrency,
          })
        : this.functions.authorizer;

    // ---- IAM least privilege: each function gets only what it calls, and
    // LeadingKeys conditions keep each role to the item kinds it owns. No
    // role but the token service may PutItem on the token table, so nothing
    // else can mint a token record. (TransactWriteItems is authorised per
    // contained Put/Update, so it needs no action of its own.)
    const tableArn = this.table.tableArn;
    const gsiArn = `${tableArn}/index/${TABLE.gsi1.name}`;
    const leadingKeys = (...prefixes: string[]) => ({
      "ForAllValues:StringLike": { "dynamodb:LeadingKeys": prefixes },
    });
    const allow = (
      fn: lambda.Function,
      actions: string[],
      resources: string[],
      conditions?: Record<string, Record<string, string[]>>,
    ) => fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources, conditions }));

    // Authorizer: reads token records, and may update only two attributes of
    // them, without reading anything back.
    allow(this.functions.authorizer, ["dynamodb:GetItem"], [tableArn], leadingKeys(KEY.token));
    allow(this.functions.authorizer, ["dynamodb:UpdateItem"], [tableArn], {
      ...leadingKeys(KEY.token),
      "ForAllValues:StringEquals": {
        "dynamodb:Attributes": [
          // The key of the item being updated.
          "PK",
          "SK",
          // The throttled last-use timestamp.
          "last_used_at",
          // Rehash-on-verify: a conditional write replacing an argon2 hash
          // made with older parameters by one made with the current ones.
          "hash",
        ],
      },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });

    // Token service: token records, active sets and aliases; listing via GSI1.
    allow(
      this.functions["token-service"],
      ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
      [tableArn],
      leadingKeys(KEY.token, KEY.user, KEY.alias),
    );
    allow(this.functions["token-service"], ["dynamodb:Query"], [gsiArn], leadingKeys(KEY.user));

    // Business API: its own table only, nothing on the token table.
    allow(
      this.functions.api,
      [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
      ],
      [this.itemsTable.tableArn],
    );

    // Offboarding: resolves the user (alias item, or Cognito for the sub),
    // lists their tokens and revokes them; it never creates items.
    const offboarding = this.functions.offboarding;
    allow(
      offboarding,
      ["dynamodb:GetItem"],
      [tableArn],
      leadingKeys(KEY.token, KEY.user, KEY.alias),
    );
    // UpdateItem creates the item when it does not exist, so without an
    // attribute list a compromised offboarding function could write a token
    // record. One statement per item kind, each with exactly the attributes
    // revocation touches there.
    allow(offboarding, ["dynamodb:UpdateItem"], [tableArn], {
      ...leadingKeys(KEY.token),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": OFFBOARDING_TOKEN_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });
    allow(offboarding, ["dynamodb:UpdateItem"], [tableArn], {
      ...leadingKeys(KEY.user),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": OFFBOARDING_OWNER_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"] },
    });
    allow(offboarding, ["dynamodb:Query"], [gsiArn], leadingKeys(KEY.user));
    allow(
      offboarding,
      ["cognito-idp:AdminGetUser", "cognito-idp:ListUsers"],
      [userPool.userPoolArn],
    );
    // The reconciliation sweep scans for owners with live tokens: it may read
    // only the key and the active-set map, never a hash.
    allow(offboarding, ["dynamodb:Scan"], [tableArn], {
      "ForAllValues:StringEquals": { "dynamodb:Attributes": ["PK", "SK", "slots"] },
      StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
    });

    // ---- Offboarding: Cognito disable/delete calls, as CloudTrail delivers
    // them to the default event bus, revoke the user's tokens.
    const offboardingDlq = new sqs.Queue(this, "OffboardingDlq", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    NagSuppressions.addResourceSuppressions(offboardingDlq, [
      {
        id: "AwsSolutions-SQS3",
        reason:
          "This queue is itself the dead-letter queue of the offboarding rule target and function; its messages are alarmed on and redriven by an operator.",
      },
    ]);
    // Failures inside the function are retried by Lambda's asynchronous
    // invocation (EventBridge's retry policy only covers delivery), so the
    // function dead-letters to the same queue: no offboarding event is lost.
    (offboarding.node.defaultChild as lambda.CfnFunction).deadLetterConfig = {
      targetArn: offboardingDlq.queueArn,
    };
    allow(offboarding, ["sqs:SendMessage"], [offboardingDlq.queueArn]);
    new events.Rule(this, "OffboardingRule", {
      description: "Revoke a user's tokens when Cognito disables or deletes them",
      eventPattern: {
        source: ["aws.cognito-idp"],
        detailType: ["AWS API Call via CloudTrail"],
        detail: {
          eventSource: ["cognito-idp.amazonaws.com"],
          eventName: OFFBOARDING_EVENTS,
        },
      },
      targets: [
        new targets.LambdaFunction(offboarding, {
          retryAttempts: 8,
          maxEventAge: Duration.hours(2),
          deadLetterQueue: offboardingDlq,
        }),
      ],
    });
    // The sweep catches what events cannot: no trail, a lost or dead-lettered
    // event, a name the handler cannot resolve.
    if (s.offboardingSweepHours > 0) {
      new events.Rule(this, "OffboardingSweep", {
        description: "Revoke the tokens of users Cognito no longer has enabled",
        schedule: events.Schedule.rate(Duration.hours(s.offboardingSweepHours)),
        targets: [
          new targets.LambdaFunction(offboarding, {
            retryAttempts: 2,
            deadLetterQueue: offboardingDlq,
          }),
        ],
      });
    }
    // CloudTrail management events reach EventBridge only while a trail with
    // logging enabled exists in the account and region. With offboardingTrail
    // false nothing is created here: the adopter's organisation (or account)
    // trail is assumed to provide them.
    if (s.offboardingTrail) this.managementTrail();

    // ---- REST API generated from the route table.
    const accessLogs = new logs.LogGroup(this, "ApiAccessLogs", {
      retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
      removalPolicy: prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    const methodOptions: Record<string, apigw.MethodDeploymentOptions> = {};
    for (const route of ROUTES) {
      const key = `${route.path}/${route.method}`;
      if (isPublic(route)) {
        methodOptions[key] = {
          throttlingRateLimit: s.publicRevokeRateLimit,
          throttlingBurstLimit: s.publicRevokeBurstLimit,
        };
      } else if (route.service === "token-service" && route.method !== "GET") {
        methodOptions[key] = {
          throttlingRateLimit: s.tokenWriteRateLimit,
          throttlingBurstLimit: s.tokenWriteBurstLimit,
        };
      }
    }
    this.api = new apigw.RestApi(this, "Api", {
      restApiName: `agpat-${s.env}`,
      description: "Cognito JWT and personal access token authentication",
      cloudWatchRole: true,
      deployOptions: {
        stageName: s.env,
        throttlingRateLimit: s.stageRateLimit,
        throttlingBurstLimit: s.stageBurstLimit,
        tracingEnabled: true,
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        // No response caching: this API is per-user, and a cache key without
        // Authorization would serve one user's data to another.
        cachingEnabled: false,
        accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
        methodOptions,
      },
    });
    const authorizer = new apigw.RequestAuthorizer(this, "Authorizer", {
      // The alias when provisioned concurrency is on; the invoke permission
      // then names the alias too.
      handler: authorizerHandler,
      identitySources: [apigw.IdentitySource.header("Authorization")],
      resultsCacheTtl: Duration.seconds(s.authorizerCacheTtlSeconds),
    });
    const integrations: Record<Service, apigw.LambdaIntegration> = {
      "token-service": new apigw.LambdaIntegration(this.functions["token-service"]),
      api: new apigw.LambdaIntegration(this.functions.api),
    };
    for (const route of ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      const method = resource.addMethod(
        route.method,
        integrations[route.service],
        methodAuthorization(route, authorizer),
      );
      if (isPublic(route)) {
        NagSuppressions.addResourceSuppressions(method, [
          {
            id: "AwsSolutions-APIG4",
            reason:
              "Leaked-token revocation must work for anyone holding the token; it is throttled tightly and verifies the secret.",
          },
          {
            id: "AwsSolutions-COG4",
            reason:
              "Leaked-token revocation is deliberately unauthenticated (like GitHub's credential revocation API).",
          },
        ]);
      }
    }

    // ---- Gateway responses as RFC 9457 problems.
    const problem = (status: number, slug: string, title: string) => ({
      "application/json": JSON.stringify({
        type: `urn:agpat:problem:${slug}`,
        title,
        status,
      }),
    });
    const problemHeaders = { "Content-Type": "'application/problem+json'" };
    this.api.addGatewayResponse("Unauthorized", {
      type: apigw.ResponseType.UNAUTHORIZED,
      statusCode: "401",
      responseHeaders: { ...problemHeaders, "WWW-Authenticate": "'Bearer'" },
      templates: problem(401, "unauthenticated", "Authentication required"),
    });
    this.api.addGatewayResponse("AccessDenied", {
      type: apigw.ResponseType.ACCESS_DENIED,
      statusCode: "403",
      responseHeaders: problemHeaders,
      templates: problem(403, "insufficient-scope", "The credential does not allow this route"),
    });
    this.api.addGatewayResponse("Throttled", {
      type: apigw.ResponseType.THROTTLED,
      statusCode: "429",
      responseHeaders: problemHeaders,
      templates: problem(429, "throttled", "Too many requests"),
    });
    this.api.addGatewayResponse("MissingToken", {
      type: apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
      statusCode: "404",
      responseHeaders: problemHeaders,
      templates: problem(404, "not-found", "No such route"),
    });

    // ---- Alarms and budget, to one SNS topic.
    const alerts = new sns.Topic(this, "Alerts", { enforceSSL: true });
    if (s.alertEmail) {
      new sns.Subscription(this, "AlertEmail", {
        topic: alerts,
        protocol: sns.SubscriptionProtocol.EMAIL,
        endpoint: s.alertEmail,
      });
    }
    const alarm = (id: string, metric: cw.IMetric, threshold: number, description: string) =>
      new cw.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      }).addAlarmAction(new cwActions.SnsAction(alerts));
    const fiveMin = Duration.minutes(5);
    const authz = this.functions.authorizer;
    alarm(
      "AuthorizerErrors",
      authz.metricErrors({ period: fiveMin }),
      1,
      "Authorizer returned errors (fails closed as 500)",
    );
    alarm(
      "AuthorizerThrottles",
      authz.metricThrottles({ period: fiveMin }),
      1,
      "Authorizer throttled",
    );
    alarm(
      "AuthorizerP99Duration",
      authz.metricDuration({ period: fiveMin, statistic: "p99" }),
      1000,
      "Authorizer p99 duration at or above 1 s",
    );
    alarm(
      "Api5xxRate",
      this.api.metricServerError({ period: fiveMin, statistic: "Average" }),
      0.01,
      "API 5xx rate at or above 1%",
    );
    alarm(
      "Api4xxRate",
      this.api.metricClientError({ period: fiveMin, statistic: "Average" }),
      0.25,
      "API 4xx rate at or above 25%",
    );
    alarm(
      "OffboardingDlqMessages",
      offboardingDlq.metricApproximateNumberOfMessagesVisible({ period: fiveMin }),
      1,
      "Offboarding events dead-lettered: a user's tokens may still be active; redrive the queue",
    );
    alarm(
      "OffboardingErrors",
      offboarding.metricErrors({ period: fiveMin }),
      1,
      "Offboarding function returned errors",
    );

    alerts.addToResourcePolicy(
      new iam.PolicyStatement({
        actions: ["sns:Publish"],
        principals: [new iam.ServicePrincipal("budgets.amazonaws.com")],
        resources: [alerts.topicArn],
      }),
    );
    new budgets.CfnBudget(this, "Budget", {
      budget: {
        budgetName: `agpat-${s.env}-monthly`,
        budgetType: "COST",
        timeUnit: "MONTHLY",
        budgetLimit: { amount: s.budgetMonthlyUsd, unit: "USD" },
      },
      notificationsWithSubscribers: s.budgetThresholdsPercent.map((threshold) => ({
        notification: {
          notificationType: "ACTUAL",
          comparisonOperator: "GREATER_THAN",
          threshold,
          thresholdType: "PERCENTAGE",
        },
        subscribers: [{ subscriptionType: "SNS", address: alerts.topicArn }],
      })),
    });

    new CfnOutput(this, "ApiUrl", { value: this.api.url });
    new CfnOutput(this, "UserPoolId", { value: userPool.userPoolId });
    new CfnOutput(this, "UserPoolClientId", { value: client.userPoolClientId });
    new CfnOutput(this, "TableName", { value: this.table.tableName });
    new CfnOutput(this, "ItemsTableName", { value: this.itemsTable.tableName });

    suppressAcceptedFindings(this);
  }

  /**
   * A single-region management-events trail (global service events included),
   * writing to an encrypted, versioned, private bucket whose access is logged.
   */
  private managementTrail(): cloudtrail.Trail {
    // Audit logs outlive the stack even in dev: a non-empty bucket would block
    // deletion anyway, and deleting audit evidence should be a deliberate act.
    const bucketProps: s3.BucketProps = {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
    };
    const accessLogs = new s3.Bucket(this, "TrailAccessLogs", bucketProps);
    NagSuppressions.addResourceSuppressions(accessLogs, [
      {
        id: "AwsSolutions-S1",
        reason:
          "This bucket receives the trail bucket's server access logs; logging it too would only move the same finding to another bucket.",
      },
    ]);
    const bucket = new s3.Bucket(this, "TrailBucket", {
      ...bucketProps,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: "trail-bucket/",
    });
    return new cloudtrail.Trail(this, "ManagementTrail", {
      bucket,
      isMultiRegionTrail: false,
      includeGlobalServiceEvents: true,
      enableFileValidation: true,
      managementEvents: cloudtrail.ReadWriteType.ALL,
    });
  }
}

function methodAuthorization(route: Route, authorizer: apigw.IAuthorizer): apigw.MethodOptions {
  if (isPublic(route)) return { authorizationType: apigw.AuthorizationType.NONE };
  return { authorizer, authorizationType: apigw.AuthorizationType.CUSTOM };
}

/** cdk-nag findings we accept, each with its reason. */
function suppressAcceptedFindings(stack: Stack): void {
  NagSuppressions.addStackSuppressions(stack, [
    {
      id: "AwsSolutions-IAM4",
      reason:
        "AWSLambdaBasicExecutionRole (log writes only) and API Gateway's CloudWatch push role are AWS-managed and minimal for their purpose.",
      // Scoped so that any other managed policy still fails the check.
      appliesTo: [
        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
      ],
    },
    {
      id: "AwsSolutions-IAM5",
      reason:
        "X-Ray PutTraceSegments/PutTelemetryRecords require Resource '*' (AWS requirement); no other wildcard is granted.",
      // Scoped so that any other wildcard still fails the check.
      appliesTo: ["Resource::*"],
    },
    {
      id: "AwsSolutions-COG4",
      reason:
        "Protected methods use the REQUEST Lambda authorizer, which verifies Cognito JWTs (issuer, client, signature) and also accepts PATs; a Cognito-only authorizer could not.",
    },
    {
      id: "AwsSolutions-APIG2",
      reason:
        "Request validation happens in the Lambdas, which answer RFC 9457 problems listing every invalid field.",
    },
    {
      id: "AwsSolutions-APIG3",
      reason:
        "WAF is left to the adopting platform team (cost and rule choice are theirs); stage and method throttling are configured.",
    },
    {
      id: "AwsSolutions-COG2",
      reason:
        "MFA is optional so machine users can exist; human users can enrol TOTP. Tighten to required where policy demands.",
    },
    {
      id: "AwsSolutions-COG3",
      reason: "Cognito threat protection (advanced security) is a paid add-on left to the adopter.",
    },
    {
      id: "AwsSolutions-COG8",
      reason: "The Plus feature plan is a paid add-on left to the adopter.",
    },
  ]);
}
