/**
 * The demo items API as an agpat adopter: it builds its own REST API, table
 * and business Lambda, then adopts agpat through the public entry only.
 *
 * `app.ts`, beside it, deploys it as `agpat-<env>`; `items-stack.test.ts` tests it.
 */
import * as fs from "fs";
import * as path from "path";
import {
  CfnOutput,
  CfnResource,
  Duration,
  RemovalPolicy,
  Stack,
  StackProps,
  aws_apigateway as apigw,
  aws_cloudwatch as cw,
  aws_cloudwatch_actions as cwActions,
  aws_dynamodb as dynamodb,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_sns as sns,
} from "aws-cdk-lib";
import { Construct, IConstruct } from "constructs";
import {
  Agpat,
  CheckovSkip,
  LiveAlias,
  LAMBDA_ROLE_SUPPRESSIONS,
  acknowledgeNagFindings,
  skipCheckov,
} from "../../../infra/lib";
import { Settings } from "./settings";

export {
  RESERVED_CONCURRENCY_DEFAULTS,
  ReservedConcurrency,
  Settings,
  settingsFromContext,
} from "./settings";

/** The demo's agpat manifest: its scopes and its routes. */
export const ITEMS_MANIFEST = path.join(__dirname, "..", "agpat.toml");

/**
 * The stage's access log, one JSON object per request. Everything needed to
 * follow a request through the gateway, the authorizer and the integration,
 * and to tell who made it; never a header or parameter that can carry a
 * credential (no Authorization, no API key, no query string). `tokenId` is a
 * PAT's public id, not its secret. Values are `$context` variables
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html#context-variable-reference);
 * all are quoted, so a missing one logs `"-"` and every line stays valid JSON.
 */
export const ACCESS_LOG_FIELDS: Readonly<Record<string, string>> = {
  // The caller chooses these two, and API Gateway does not JSON-escape
  // $context values: a crafted User-Agent can smuggle keys into the line.
  // They come first, so that every key below, which the caller does not
  // control, follows any smuggled duplicate (parsers keep the last one).
  userAgent: "$context.identity.userAgent",
  path: "$context.path",
  requestId: "$context.requestId",
  extendedRequestId: "$context.extendedRequestId",
  ip: "$context.identity.sourceIp",
  requestTime: "$context.requestTime",
  requestTimeEpoch: "$context.requestTimeEpoch",
  httpMethod: "$context.httpMethod",
  resourcePath: "$context.resourcePath",
  status: "$context.status",
  protocol: "$context.protocol",
  responseLength: "$context.responseLength",
  responseLatency: "$context.responseLatency",
  // Who: API Gateway's principalId and the agpat authorizer's own context
  // (AuthorizerContext in shared/src/principal.rs).
  principalId: "$context.authorizer.principalId",
  sub: "$context.authorizer.sub",
  authMethod: "$context.authorizer.authMethod",
  tokenId: "$context.authorizer.tokenId",
  // The authorizer's invocation: its status, latency and error, if any.
  authorizerStatus: "$context.authorizer.status",
  authorizerLatency: "$context.authorizer.latency",
  authorizerError: "$context.authorizer.error",
  // Why the gateway refused or failed (e.g. UNAUTHORIZED, THROTTLED).
  errorMessage: "$context.error.message",
  errorResponseType: "$context.error.responseType",
  integrationStatus: "$context.integration.status",
  integrationLatency: "$context.integration.latency",
  integrationError: "$context.integrationErrorMessage",
  xrayTraceId: "$context.xrayTraceId",
};

/** {@link ACCESS_LOG_FIELDS}, plus WAF's verdict when a web ACL is in front of the stage. */
export function accessLogFields(waf: boolean): Record<string, string> {
  return waf
    ? { ...ACCESS_LOG_FIELDS, wafResponseCode: "$context.wafResponseCode" }
    : { ...ACCESS_LOG_FIELDS };
}

/**
 * The request headers a browser may send cross-origin: the credential and
 * the JSON body's type. Lower case, as browsers send them in
 * Access-Control-Request-Headers.
 */
export const CORS_ALLOWED_HEADERS = ["authorization", "content-type"] as const;

/** How long a browser may cache a preflight answer. */
const CORS_MAX_AGE = Duration.hours(1);

/** What the demo stack needs. */
export interface ItemsStackProps extends StackProps {
  /** The demo's settings, usually from {@link settingsFromContext}. */
  settings: Settings;
}

/** The demo: /items and /me on their own API and table, authenticated by agpat. */
export class ItemsStack extends Stack {
  /** The demo's REST API. */
  readonly api: apigw.RestApi;
  /** The items, apart from the tokens: the business Lambda needs no access to the token table. */
  readonly itemsTable: dynamodb.Table;
  /** The business Lambda serving /items and /me. */
  readonly itemsFunction: lambda.Function;
  /** agpat, adopted on {@link ItemsStack.api}. */
  readonly agpat: Agpat;

  constructor(scope: Construct, id: string, props: ItemsStackProps) {
    const s = props.settings;
    const prod = s.env === "prod";
    super(scope, id, {
      // Pinned in prod (settings require it), so a prod template only deploys
      // into the account and region it names.
      env: s.deployTo,
      terminationProtection: prod,
      ...props,
    });
    const retainInProd = prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.itemsTable = new dynamodb.Table(this, "ItemsTable", {
      partitionKey: { name: "PK", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "SK", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: prod,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: retainInProd,
    });

    // The business Lambda: its own table, nothing on the token table.
    this.itemsFunction = new lambda.Function(this, "api-fn", {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: "bootstrap",
      // The zip scripts/build-lambdas.sh packs, uploaded as is (as agpat does
      // for its own functions), so that the asset is the CI artifact.
      code: lambda.Code.fromAsset(apiBundle(s.lambdaAssets)),
      memorySize: 256,
      timeout: Duration.seconds(10),
      reservedConcurrentExecutions: s.reservedConcurrency.api,
      tracing: lambda.Tracing.ACTIVE,
      logGroup: new logs.LogGroup(this, "api-logs", {
        retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
        removalPolicy: retainInProd,
      }),
      environment: { ITEMS_TABLE_NAME: this.itemsTable.tableName, RUST_LOG: "info" },
    });
    this.itemsFunction.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:Query",
        ],
        resources: [this.itemsTable.tableArn],
      }),
    );
    acknowledgeNagFindings(this.itemsFunction, LAMBDA_ROLE_SUPPRESSIONS);
    skipCheckov(this.itemsFunction, ...checkovFunctionSkips(s.reservedConcurrency.api));
    skipCheckov(this.itemsFunction.logGroup, CHECKOV_LOG_GROUP_SKIP);
    skipCheckov(this.itemsTable, CHECKOV_TABLE_SKIP);

    // Released like agpat's own functions: API Gateway invokes the `live`
    // alias, which CodeDeploy moves (a canary in prod) and moves back when a
    // release alarm fires (agpat's stage 5XX guard and this alias's errors,
    // added below).
    const itemsRelease = new LiveAlias(this, "ApiRelease", {
      function: this.itemsFunction,
      shift: prod ? "canary10Percent5Minutes" : "allAtOnce",
    });

    // The REST API, as any adopter would have it.
    const accessLogs = new logs.LogGroup(this, "ApiAccessLogs", {
      retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
      removalPolicy: retainInProd,
    });
    this.api = new apigw.RestApi(this, "Api", {
      restApiName: `agpat-${s.deployment}`,
      description: "Cognito JWT and personal access token authentication",
      // The account-wide role API Gateway logs through is set once per account
      // and region (see the README), not by each stack: stacks that each set it
      // overwrite one another, and deleting one leaves the others unable to log.
      cloudWatchRole: false,
      deployOptions: {
        stageName: s.deployment,
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
        accessLogFormat: apigw.AccessLogFormat.custom(JSON.stringify(accessLogFields(s.waf))),
      },
    });
    skipCheckov(accessLogs, CHECKOV_LOG_GROUP_SKIP);
    skipCheckov(this.api.deploymentStage, {
      id: "CKV_AWS_120",
      comment:
        "Response caching is off on purpose: responses are per user, and a cache key without Authorization would serve one user's data to another.",
    });
    acknowledgeNagFindings(this.api, [
      {
        id: "AwsSolutions-APIG2",
        reason:
          "Request validation happens in the Lambdas, which answer RFC 9457 problems listing every invalid field.",
      },
      // With waf on, agpat puts a web ACL on the stage and the rule passes.
      ...(s.waf
        ? []
        : [
            {
              id: "AwsSolutions-APIG3",
              reason:
                "WAF is off by context (waf=false, the dev default); stage and method throttling are configured.",
            },
          ]),
    ]);

    // The routes of agpat.toml, each to the business Lambda. Authorization is
    // agpat's to set: a method missing here, or one the manifest does not
    // declare, fails synthesis.
    const items = new apigw.LambdaIntegration(itemsRelease.alias);
    const itemsResource = this.api.root.addResource("items");
    itemsResource.addMethod("GET", items);
    itemsResource.addMethod("POST", items);
    const item = itemsResource.addResource("{id}");
    item.addMethod("GET", items);
    item.addMethod("PUT", items);
    item.addMethod("DELETE", items);
    this.api.root.addResource("me").addMethod("GET", items);

    // Alarms and budget alerts; the topic is the demo's so that an email
    // subscription made before agpat became a construct stays confirmed.
    const alerts = new sns.Topic(this, "Alerts", { enforceSSL: true });
    skipCheckov(alerts, {
      id: "CKV_AWS_26",
      comment:
        "Alarm and budget notifications carry no data; an encrypted topic would need a customer-managed key whose policy admits CloudWatch and Budgets, or alerts silently stop.",
    });
    if (s.alertEmail) {
      new sns.Subscription(this, "AlertEmail", {
        topic: alerts,
        protocol: sns.SubscriptionProtocol.EMAIL,
        endpoint: s.alertEmail,
      });
    }

    this.agpat = new Agpat(this, "Agpat", {
      api: this.api,
      manifestPath: ITEMS_MANIFEST,
      lambdaAssets: s.lambdaAssets,
      envName: s.env,
      metricsNamespace: `agpat/${s.deployment}`,
      smokeTestClient: true,
      authorizerCacheTtlSeconds: s.authorizerCacheTtlSeconds,
      patCacheTtlSeconds: s.patCacheTtlSeconds,
      tokenMaxLifetimeDays: s.tokenMaxLifetimeDays,
      tokenWriteRateLimit: s.tokenWriteRateLimit,
      tokenWriteBurstLimit: s.tokenWriteBurstLimit,
      publicRevokeRateLimit: s.publicRevokeRateLimit,
      publicRevokeBurstLimit: s.publicRevokeBurstLimit,
      provisionedAuthorizerConcurrency: s.provisionedAuthorizerConcurrency,
      reservedConcurrency: definedOnly({
        authorizer: s.reservedConcurrency.authorizer,
        "token-service": s.reservedConcurrency.tokenService,
        offboarding: s.reservedConcurrency.offboarding,
      }),
      waf: s.waf,
      offboardingTrail: s.offboardingTrail,
      offboardingSweepHours: s.offboardingSweepHours,
      ownerEmails: s.ownerEmailFrom ? { from: s.ownerEmailFrom } : undefined,
      alertTopic: alerts,
      budget: {
        monthlyUsd: s.budgetMonthlyUsd,
        thresholdsPercent: s.budgetThresholdsPercent,
        name: `agpat-${s.deployment}-monthly`,
      },
    });
    keepPreConstructLogicalIds(this.agpat);
    if (s.corsAllowedOrigins.length > 0) enableCors(this.api, s.corsAllowedOrigins);

    // The business Lambda reads the authorizer context with agpat's context
    // crate, which needs the manifest.
    this.itemsFunction.addLayers(this.agpat.manifestLayer);
    for (const [name, value] of Object.entries(this.agpat.manifestEnvironment)) {
      this.itemsFunction.addEnvironment(name, value);
    }

    new CfnOutput(this, "ApiUrl", { value: this.api.url });
    new CfnOutput(this, "UserPoolId", { value: this.agpat.userPool.userPoolId });
    new CfnOutput(this, "UserPoolClientId", { value: this.agpat.clientIds[0] });
    new CfnOutput(this, "TableName", { value: this.agpat.table.tableName });
    new CfnOutput(this, "ItemsTableName", { value: this.itemsTable.tableName });
    // What the smoke test, the migration workflow and the emergency lever need.
    new CfnOutput(this, "SmokeTestClientId", { value: this.agpat.smokeTestClientId ?? "" });
    new CfnOutput(this, "MigratorFunctionName", {
      value: this.agpat.functions.migrator.functionName,
    });
    new CfnOutput(this, "RestApiId", { value: this.api.restApiId });
    new CfnOutput(this, "StageName", { value: this.agpat.stage.stageName });
    new CfnOutput(this, "AuthorizerFunctionName", {
      value: this.agpat.functions.authorizer.functionName,
    });
    // agpat's event bus (expiry warnings, leak reports), for your own rules.
    new CfnOutput(this, "EventBusName", { value: this.agpat.eventBus.eventBusName });

    // The business function's release stops on a crash of its new code, and
    // on agpat's stage-wide 5XX guard.
    const period = Duration.minutes(1);
    const crashes = new cw.Alarm(this, "ApiReleaseErrors", {
      metric: new cw.MathExpression({
        expression:
          "IF(invocations >= 20, 100 * FILL(errors, 0) / invocations, IF(FILL(errors, 0) >= 3, 100, 0))",
        usingMetrics: {
          errors: itemsRelease.alias.metricErrors({ period, statistic: "Sum" }),
          invocations: itemsRelease.alias.metricInvocations({ period, statistic: "Sum" }),
        },
        label: "items API crashes (%), per minute",
        period,
      }),
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      alarmDescription:
        "Release guard: the items API's live alias crashed or timed out on at least 5% of a minute's invocations",
    });
    crashes.addAlarmAction(new cwActions.SnsAction(alerts));
    crashes.addOkAction(new cwActions.SnsAction(alerts));
    itemsRelease.addAlarm(crashes);
    for (const guard of this.agpat.releaseAlarms) {
      if (guard.node.id === "ReleaseApi5xx") itemsRelease.addAlarm(guard);
    }

    // What agpat cannot see: the business function's throttles and its own
    // table's throttles and internal errors (2 of 3 five-minute periods; the
    // stage's 5XX share and p99 are agpat's).
    const fiveMin = Duration.minutes(5);
    const repeated = (id: string, metric: cw.IMetric, description: string) => {
      const a = new cw.Alarm(this, id, {
        metric,
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        alarmDescription: description,
      });
      a.addAlarmAction(new cwActions.SnsAction(alerts));
      a.addOkAction(new cwActions.SnsAction(alerts));
    };
    repeated(
      "ApiThrottles",
      this.itemsFunction.metricThrottles({ period: fiveMin, statistic: "Sum" }),
      "The items API was throttled: its reserved concurrency or the account's quota is exhausted",
    );
    repeated(
      "ItemsTableThrottles",
      new cw.MathExpression({
        expression: "FILL(reads, 0) + FILL(writes, 0)",
        usingMetrics: {
          reads: this.itemsTable.metric("ReadThrottleEvents", {
            period: fiveMin,
            statistic: "Sum",
          }),
          writes: this.itemsTable.metric("WriteThrottleEvents", {
            period: fiveMin,
            statistic: "Sum",
          }),
        },
        label: "throttle events",
        period: fiveMin,
      }),
      "The items table throttled reads or writes",
    );
    repeated(
      "ItemsTableSystemErrors",
      this.itemsTable.metricSystemErrorsForOperations({
        operations: [
          dynamodb.Operation.GET_ITEM,
          dynamodb.Operation.PUT_ITEM,
          dynamodb.Operation.UPDATE_ITEM,
          dynamodb.Operation.DELETE_ITEM,
          dynamodb.Operation.QUERY,
        ],
        period: fiveMin,
        statistic: "Sum",
      }),
      "DynamoDB returned internal errors on the items table",
    );
  }
}

/** `record` without its undefined entries (agpat refuses an explicit undefined). */
function definedOnly<T>(record: Record<string, T | undefined>): Record<string, T> {
  return Object.fromEntries(
    Object.entries(record).filter((entry): entry is [string, T] => entry[1] !== undefined),
  );
}

/** The business Lambda's deployment package, `<lambdaAssets>/api/bootstrap.zip`. */
function apiBundle(lambdaAssets: string): string {
  const zip = path.join(lambdaAssets, "api", "bootstrap.zip");
  if (!fs.existsSync(zip)) {
    throw new Error(`${zip} does not exist; build it with scripts/build-lambdas.sh`);
  }
  return zip;
}

/** Checkov on a log group: accepted, as no secret is ever logged. */
const CHECKOV_LOG_GROUP_SKIP: CheckovSkip = {
  id: "CKV_AWS_158",
  comment:
    "CloudWatch Logs encrypts every log group at rest; these logs carry no secrets (no credential is ever logged), so a customer-managed key adds cost and key-policy risk only.",
};

/** Checkov on a DynamoDB table with the AWS-managed KMS key. */
const CHECKOV_TABLE_SKIP: CheckovSkip = {
  id: "CKV_AWS_119",
  comment:
    "Encrypted with the AWS-managed DynamoDB KMS key; a customer-managed key would add cost and a key that can lock the data away, for no reader it would exclude.",
};

/** Checkov on a Lambda that API Gateway invokes synchronously. */
function checkovFunctionSkips(reserved: number | undefined): CheckovSkip[] {
  const skips: CheckovSkip[] = [
    {
      id: "CKV_AWS_116",
      comment:
        "Invoked synchronously by API Gateway, which returns the error to the caller; a dead-letter queue only applies to asynchronous invocations.",
    },
    {
      id: "CKV_AWS_117",
      comment:
        "Reaches only AWS public endpoints (DynamoDB, X-Ray); a VPC would add NAT or endpoints and cold-start latency, and protect nothing.",
    },
    {
      id: "CKV_AWS_173",
      comment:
        "The environment holds resource names only, never a secret; Lambda encrypts it at rest with its service key.",
    },
  ];
  if (reserved === undefined) {
    skips.push({
      id: "CKV_AWS_115",
      comment:
        "No reserved concurrency in dev: fresh accounts have a limit of 10, below what Lambda lets one reserve. Prod reserves (context reservedConcurrency).",
    });
  }
  return skips;
}

/**
 * CORS for browser clients on `origins`: a preflight `OPTIONS` on every
 * resource with methods, answered by API Gateway itself (a MOCK integration,
 * no authorizer: a preflight carries no credential), allowing that
 * resource's methods and {@link CORS_ALLOWED_HEADERS}; and the CORS headers
 * on the gateway's own error responses, so a browser can read a 401 or 429
 * problem. Credentials mode is never allowed: the API takes a bearer
 * credential in Authorization, never a cookie. The Lambdas' own responses
 * must carry Access-Control-Allow-Origin too (proxy integrations pass their
 * headers through).
 */
function enableCors(api: apigw.RestApi, origins: readonly string[]): void {
  const byResource = new Map<apigw.Resource, Set<string>>();
  for (const method of api.methods) {
    if (method.httpMethod === "OPTIONS") continue;
    const resource = method.resource as apigw.Resource;
    byResource.set(resource, (byResource.get(resource) ?? new Set()).add(method.httpMethod));
  }
  for (const [resource, methods] of byResource) {
    resource.addCorsPreflight({
      allowOrigins: [...origins],
      allowMethods: [...methods].sort(),
      allowHeaders: [...CORS_ALLOWED_HEADERS],
      allowCredentials: false,
      maxAge: CORS_MAX_AGE,
    });
  }
  // Error responses cannot choose among several origins as the preflight's
  // template does: with one origin they name it, with several they echo the
  // caller's Origin. Echoing is safe here only because these bodies are
  // generic problems with no caller data and credentials are never allowed.
  const corsHeaders = {
    "gatewayresponse.header.Access-Control-Allow-Origin":
      origins.length === 1 ? `'${origins[0]}'` : "method.request.header.origin",
    "gatewayresponse.header.Vary": "'Origin'",
  };
  const responses = () =>
    api.node.children
      .filter((child) => child instanceof apigw.GatewayResponse)
      .map((child) => child.node.defaultChild as apigw.CfnGatewayResponse);
  // The catch-alls, unless the API (or agpat) already defines them: a type
  // may be defined once per API.
  for (const [id, type] of [
    ["CorsDefault4xx", apigw.ResponseType.DEFAULT_4XX],
    ["CorsDefault5xx", apigw.ResponseType.DEFAULT_5XX],
  ] as const) {
    if (!responses().some((r) => r.responseType === type.responseType)) {
      api.addGatewayResponse(id, { type });
    }
  }
  // Every gateway response of the API, agpat's problem responses included.
  for (const cfn of responses()) {
    cfn.responseParameters = {
      ...((cfn.responseParameters as Record<string, string> | undefined) ?? {}),
      ...corsHeaders,
    };
  }
}

/**
 * The logical ids agpat's stateful resources had when the demo was one flat
 * stack. Keeping them lets a deployment made before agpat became a construct
 * update in place; new ids would make CloudFormation create an empty token
 * table and user pool (the prod ones, retained, would be orphaned with every
 * user and token), a second budget under the same name (which fails), and a
 * new dead-letter queue (dropping dead-lettered offboarding events) whose old
 * queue policy's deletion would clear the new one's.
 */
export const PRE_CONSTRUCT_LOGICAL_IDS = {
  table: "TableCD117FA1",
  userPool: "UserPool6BA7E5F2",
  userPoolClient: "UserPoolPublicClient5FB87EBD",
  offboardingDeadLetterQueue: "OffboardingDlq06834D8A",
  offboardingDeadLetterQueuePolicy: "OffboardingDlqPolicy2BC82B8A",
  costBudget: "Budget",
} as const;

function keepPreConstructLogicalIds(agpat: Agpat): void {
  const keep = (construct: IConstruct | undefined, logicalId: string) => {
    const resource = construct?.node.defaultChild ?? construct;
    if (!(resource instanceof CfnResource)) {
      throw new Error(`expected a CloudFormation resource to keep the logical id ${logicalId}`);
    }
    resource.overrideLogicalId(logicalId);
  };
  const ids = PRE_CONSTRUCT_LOGICAL_IDS;
  keep(agpat.table, ids.table);
  keep(agpat.userPool, ids.userPool);
  keep(agpat.userPoolClient, ids.userPoolClient);
  keep(agpat.offboardingDeadLetterQueue, ids.offboardingDeadLetterQueue);
  // The queue's SSL-only policy (enforceSSL).
  keep(
    agpat.offboardingDeadLetterQueue.node.tryFindChild("Policy"),
    ids.offboardingDeadLetterQueuePolicy,
  );
  keep(agpat.costBudget, ids.costBudget);
}
