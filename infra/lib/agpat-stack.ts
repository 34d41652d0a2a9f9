import * as path from "path";
import {
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  StackProps,
  aws_apigateway as apigw,
  aws_budgets as budgets,
  aws_cloudwatch as cw,
  aws_cloudwatch_actions as cwActions,
  aws_cognito as cognito,
  aws_dynamodb as dynamodb,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_sns as sns,
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
    alertEmail: node.tryGetContext("alertEmail"),
  };
}

export interface AgpatStackProps extends StackProps {
  settings: Settings;
}

/** Per-function sizing. */
const FUNCTIONS: Record<
  "authorizer" | Service,
  { memoryMb: number; timeoutS: number; reservedProd: number }
> = {
  authorizer: { memoryMb: 256, timeoutS: 5, reservedProd: 200 },
  "token-service": { memoryMb: 512, timeoutS: 10, reservedProd: 20 },
  api: { memoryMb: 256, timeoutS: 10, reservedProd: 100 },
};

/**
 * The whole component: table, user pool, three Rust Lambdas, the REST API
 * generated from the route table, alarms and a budget.
 */
export class AgpatStack extends Stack {
  readonly api: apigw.RestApi;
  readonly table: dynamodb.Table;
  readonly functions: Record<"authorizer" | Service, lambda.Function>;

  constructor(scope: Construct, id: string, props: AgpatStackProps) {
    super(scope, id, props);
    const s = props.settings;
    const prod = s.env === "prod";

    // ---- DynamoDB: the single table, keys and GSI from the generated manifest.
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
    const common: Record<string, string> = {
      TABLE_NAME: this.table.tableName,
      RUST_LOG: "info",
    };
    const environments: Record<"authorizer" | Service, Record<string, string>> = {
      authorizer: {
        ...common,
        COGNITO_USER_POOL_ID: userPool.userPoolId,
        COGNITO_CLIENT_IDS: client.userPoolClientId,
        PAT_CACHE_TTL_SECONDS: String(s.patCacheTtlSeconds),
      },
      "token-service": { ...common, TOKEN_MAX_LIFETIME_DAYS: String(s.tokenMaxLifetimeDays) },
      api: common,
    };
    const make = (name: "authorizer" | Service): lambda.Function => {
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
    };
    if (s.provisionedAuthorizerConcurrency > 0) {
      new lambda.Alias(this, "AuthorizerLive", {
        aliasName: "live",
        version: this.functions.authorizer.currentVersion,
        provisionedConcurrentExecutions: s.provisionedAuthorizerConcurrency,
      });
    }

    // ---- IAM least privilege: each function gets only what it calls.
    const tableArn = this.table.tableArn;
    const gsiArn = `${tableArn}/index/${TABLE.gsi1.name}`;
    const allow = (fn: lambda.Function, actions: string[], resources: string[]) =>
      fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources }));
    // Authorizer: GetItem by id, plus the conditional last_used UpdateItem.
    allow(this.functions.authorizer, ["dynamodb:GetItem", "dynamodb:UpdateItem"], [tableArn]);
    // Token service: reads, transactional Put/Update, listing through GSI1.
    allow(
      this.functions["token-service"],
      [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
      ],
      [tableArn],
    );
    allow(this.functions["token-service"], ["dynamodb:Query"], [gsiArn]);
    // Business API: items under the caller's partition, on the base table only.
    allow(
      this.functions.api,
      [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
      ],
      [tableArn],
    );

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
      handler: this.functions.authorizer,
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

    suppressAcceptedFindings(this);
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
    },
    {
      id: "AwsSolutions-IAM5",
      reason:
        "X-Ray PutTraceSegments/PutTelemetryRecords require Resource '*' (AWS requirement); no other wildcard is granted.",
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
