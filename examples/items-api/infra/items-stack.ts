/**
 * The demo items API as an agpat adopter: it builds its own REST API, table
 * and business Lambda, then adopts agpat through the public entry only.
 *
 * `app.ts`, beside it, deploys it as `agpat-<env>`; `items-stack.test.ts` tests it.
 */
import * as path from "path";
import {
  CfnOutput,
  CfnResource,
  Duration,
  RemovalPolicy,
  Stack,
  StackProps,
  aws_apigateway as apigw,
  aws_dynamodb as dynamodb,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_sns as sns,
} from "aws-cdk-lib";
import { NagSuppressions } from "cdk-nag";
import { Construct, IConstruct } from "constructs";
import { Agpat, LAMBDA_ROLE_SUPPRESSIONS } from "../../../infra/lib";
import { Settings } from "./settings";

export { Settings, settingsFromContext } from "./settings";

/** The demo's agpat manifest: its scopes and its routes. */
export const ITEMS_MANIFEST = path.join(__dirname, "..", "agpat.toml");

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
    super(scope, id, props);
    const s = props.settings;
    const prod = s.env === "prod";
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
      code: lambda.Code.fromAsset(path.join(s.lambdaAssets, "api")),
      memorySize: 256,
      timeout: Duration.seconds(10),
      reservedConcurrentExecutions: prod ? 100 : undefined,
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
    NagSuppressions.addResourceSuppressions(this.itemsFunction, LAMBDA_ROLE_SUPPRESSIONS, true);

    // The REST API, as any adopter would have it.
    const accessLogs = new logs.LogGroup(this, "ApiAccessLogs", {
      retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
      removalPolicy: retainInProd,
    });
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
      },
    });
    NagSuppressions.addResourceSuppressions(
      this.api,
      [
        {
          id: "AwsSolutions-IAM4",
          reason:
            "API Gateway's CloudWatch push role uses the AWS-managed policy made for exactly that.",
          appliesTo: [
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
          ],
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
      ],
      true,
    );

    // The routes of agpat.toml, each to the business Lambda. Authorization is
    // agpat's to set: a method missing here, or one the manifest does not
    // declare, fails synthesis.
    const items = new apigw.LambdaIntegration(this.itemsFunction);
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
      authorizerCacheTtlSeconds: s.authorizerCacheTtlSeconds,
      patCacheTtlSeconds: s.patCacheTtlSeconds,
      tokenMaxLifetimeDays: s.tokenMaxLifetimeDays,
      tokenWriteRateLimit: s.tokenWriteRateLimit,
      tokenWriteBurstLimit: s.tokenWriteBurstLimit,
      publicRevokeRateLimit: s.publicRevokeRateLimit,
      publicRevokeBurstLimit: s.publicRevokeBurstLimit,
      provisionedAuthorizerConcurrency: s.provisionedAuthorizerConcurrency,
      offboardingTrail: s.offboardingTrail,
      offboardingSweepHours: s.offboardingSweepHours,
      alertTopic: alerts,
      budget: {
        monthlyUsd: s.budgetMonthlyUsd,
        thresholdsPercent: s.budgetThresholdsPercent,
        name: `agpat-${s.env}-monthly`,
      },
    });
    keepPreConstructLogicalIds(this.agpat);

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
