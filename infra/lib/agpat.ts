import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  AspectPriority,
  Aspects,
  CfnElement,
  Duration,
  RemovalPolicy,
  Stack,
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
import { NagPackSuppression, NagSuppressions } from "cdk-nag";
import { Construct, IConstruct } from "constructs";
import { Access, AgpatManifest, ManifestRoute, loadManifest } from "./manifest";
import { TABLE, TOKEN_ROUTES, isPublic } from "./routes";

/**
 * Where the manifest layer puts the manifest inside every Lambda that has the
 * layer (layers are extracted under `/opt`).
 */
export const MANIFEST_MOUNT_PATH = "/opt/agpat/agpat.toml";

/** The Lambdas agpat deploys. */
export type AgpatFunctionName = "authorizer" | "token-service" | "offboarding";

/** An existing Cognito user pool whose tokens agpat accepts. */
export interface AgpatUserPool {
  /** The pool: JWTs are verified against its keys, and its disabled or deleted users are offboarded. */
  readonly userPool: cognito.IUserPool;
  /** The app clients whose tokens are accepted (`client_id` of access tokens, `aud` of ID tokens); at least one. */
  readonly clientIds: readonly string[];
}

/** A monthly AWS cost budget that alerts the alert topic. */
export interface AgpatBudget {
  /** The monthly limit in US dollars. */
  readonly monthlyUsd: number;
  /** Alert when actual cost passes these percentages of the limit. */
  readonly thresholdsPercent: readonly number[];
  /** The budget's name; CloudFormation generates one when unset. Must be unique in the account. */
  readonly name?: string;
}

/** What {@link Agpat} needs; every number is validated and named in the error when out of range. */
export interface AgpatProps {
  /**
   * The adopter's REST API, in the same stack as this construct. agpat adds
   * the `/tokens` resources to it, attaches its authorizer to every method
   * the manifest marks `scope` or `authenticated`, and fails synthesis when
   * the API's methods and the manifest's routes differ. Add every method
   * before synthesis: one added by an aspect that runs after agpat's
   * (priority `MUTATING`) gets no authorizer and fails the check.
   */
  readonly api: apigw.RestApi;
  /** The agpat manifest (TOML) declaring the API's scopes and routes. */
  readonly manifestPath: string;
  /** Directory holding `authorizer/`, `token-service/` and `offboarding/`, each with the `bootstrap` built by cargo-lambda. */
  readonly lambdaAssets: string;
  /**
   * `prod` retains the table, the user pool and the log groups, turns on
   * deletion protection and reserves concurrency; `dev` is destroyable.
   * @default "dev"
   */
  readonly envName?: "dev" | "prod";
  /**
   * The stage whose method settings get the `/tokens` throttles.
   * @default api.deploymentStage
   */
  readonly stage?: apigw.Stage;
  /**
   * An existing user pool and the app clients whose tokens are accepted.
   * @default a new pool (strong passwords, optional TOTP MFA) with one public client
   */
  readonly userPool?: AgpatUserPool;
  /**
   * An existing token table, laid out as `generated/routes.json` `table` says
   * (string keys `PK`/`SK`, the `GSI1` index without the hash, TTL on `ttl`).
   * @default a new on-demand table with PITR
   */
  readonly table?: dynamodb.ITable;
  /**
   * API Gateway's authorizer result cache, 0–3600 s; one half of the revocation bound.
   * @default 60
   */
  readonly authorizerCacheTtlSeconds?: number;
  /**
   * The authorizer's in-process PAT decision cache, 0–300 s; the other half of the revocation bound.
   * @default 30
   */
  readonly patCacheTtlSeconds?: number;
  /**
   * The longest lifetime a token may be given, 1–365 days.
   * @default 90
   */
  readonly tokenMaxLifetimeDays?: number;
  /**
   * Method throttle (requests per second) of the `/tokens` routes that write, 1–1000.
   * @default 5
   */
  readonly tokenWriteRateLimit?: number;
  /**
   * Method burst of the `/tokens` routes that write, 1–1000.
   * @default 10
   */
  readonly tokenWriteBurstLimit?: number;
  /**
   * Method throttle (requests per second) of the public `POST /tokens/revoke`, 1–100.
   * @default 2
   */
  readonly publicRevokeRateLimit?: number;
  /**
   * Method burst of the public `POST /tokens/revoke`, 1–100.
   * @default 5
   */
  readonly publicRevokeBurstLimit?: number;
  /**
   * Provisioned concurrency of the authorizer, 0–100. Above 0 it is put on a
   * `live` alias, and API Gateway invokes that alias.
   * @default 0
   */
  readonly provisionedAuthorizerConcurrency?: number;
  /**
   * Create a management-events CloudTrail trail, so Cognito's API calls reach
   * EventBridge and offboarding runs. Leave false where an account or
   * organisation trail exists.
   * @default false
   */
  readonly offboardingTrail?: boolean;
  /**
   * Hours between offboarding's reconciliation sweeps, 0–168; 0 turns the sweep off.
   * @default 24
   */
  readonly offboardingSweepHours?: number;
  /**
   * Where alarms and budget alerts go. The budget's publish permission is
   * added to the topic's policy; an imported topic must grant
   * `budgets.amazonaws.com` `sns:Publish` itself.
   * @default a new SSL-only topic
   */
  readonly alertTopic?: sns.ITopic;
  /** An address subscribed to the alert topic this construct creates; not allowed with `alertTopic`. */
  readonly alertEmail?: string;
  /**
   * A monthly cost budget alerting the topic.
   * @default no budget
   */
  readonly budget?: AgpatBudget;
  /**
   * Make the API's 401, 403, 429 and missing-route (404) gateway responses
   * RFC 9457 problems. Turn off if the API defines these responses itself.
   * @default true
   */
  readonly problemGatewayResponses?: boolean;
}

/** Per-function sizing. */
const FUNCTIONS: Record<
  AgpatFunctionName,
  { memoryMb: number; timeoutS: number; reservedProd: number }
> = {
  authorizer: { memoryMb: 256, timeoutS: 5, reservedProd: 200 },
  "token-service": { memoryMb: 512, timeoutS: 10, reservedProd: 20 },
  // 15 minutes: the reconciliation sweep walks every owner with a live token.
  offboarding: { memoryMb: 256, timeoutS: 900, reservedProd: 5 },
};

/** The numeric props, their defaults and their ranges: the only place these limits live. */
const NUMBERS = {
  authorizerCacheTtlSeconds: { fallback: 60, min: 0, max: 3600 },
  patCacheTtlSeconds: { fallback: 30, min: 0, max: 300 },
  tokenMaxLifetimeDays: { fallback: 90, min: 1, max: 365 },
  tokenWriteRateLimit: { fallback: 5, min: 1, max: 1000 },
  tokenWriteBurstLimit: { fallback: 10, min: 1, max: 1000 },
  publicRevokeRateLimit: { fallback: 2, min: 1, max: 100 },
  publicRevokeBurstLimit: { fallback: 5, min: 1, max: 100 },
  provisionedAuthorizerConcurrency: { fallback: 0, min: 0, max: 100 },
  offboardingSweepHours: { fallback: 24, min: 0, max: 168 },
} as const;

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
 * agpat on an existing REST API: Cognito JWTs and personal access tokens,
 * checked by one REQUEST authorizer against the adopter's manifest.
 *
 * It adds the authorizer, token-service and offboarding Lambdas (the manifest
 * reaches the first two through {@link Agpat.manifestLayer}), the `/tokens`
 * routes, the token table and the user pool unless given, least-privilege
 * IAM, offboarding on Cognito events, alarms and an optional budget. At
 * synthesis it attaches the authorizer to every method the manifest protects
 * (methods added after this construct included). It then checks the stack's
 * rendered template, after every aspect and property override, and fails
 * when the API and the manifest disagree: a route without a method, a
 * method without a route (it would bypass or mis-scope authentication), a
 * protected method without agpat's authorizer (one added by a later aspect,
 * or one whose authorization an override changed), or a public method with
 * authorization.
 */
export class Agpat extends Construct {
  /** The adopter's REST API. */
  readonly api: apigw.RestApi;
  /** The parsed manifest. */
  readonly manifest: AgpatManifest;
  /**
   * A layer holding only the manifest, at {@link MANIFEST_MOUNT_PATH}. Add it,
   * with {@link Agpat.manifestEnvironment}, to a business Lambda that reads
   * the authorizer context through agpat's context crate.
   */
  readonly manifestLayer: lambda.LayerVersion;
  /** `AGPAT_MANIFEST`, pointing at the manifest inside {@link Agpat.manifestLayer}. */
  readonly manifestEnvironment: Readonly<Record<string, string>>;
  /** Tokens, per-user active sets and username aliases. */
  readonly table: dynamodb.ITable;
  /** The user pool whose tokens are accepted. */
  readonly userPool: cognito.IUserPool;
  /** The public app client, when this construct created the pool. */
  readonly userPoolClient?: cognito.UserPoolClient;
  /** The app client ids whose tokens are accepted. */
  readonly clientIds: readonly string[];
  /** agpat's Lambdas. */
  readonly functions: Readonly<Record<AgpatFunctionName, lambda.Function>>;
  /** What API Gateway invokes: the `live` alias with provisioned concurrency, else the function. */
  readonly authorizerHandler: lambda.IFunction;
  /** The REQUEST authorizer (identity source: the `Authorization` header). */
  readonly authorizer: apigw.RequestAuthorizer;
  /** Where alarms and budget alerts go. */
  readonly alertTopic: sns.ITopic;
  /** The dead-letter queue of offboarding events and failed offboarding runs. */
  readonly offboardingDeadLetterQueue: sqs.Queue;
  /** The monthly budget, when `budget` was given. */
  readonly costBudget?: budgets.CfnBudget;
  /** The management-events trail, when `offboardingTrail` is true. */
  readonly managementTrail?: cloudtrail.Trail;

  /** The `/tokens` methods this construct created; they are not manifest routes. */
  private readonly ownMethods = new Set<apigw.Method>();
  /** The resources of the `/tokens` routes (CORS preflight may add OPTIONS methods to them). */
  private readonly ownResources = new Set<apigw.IResource>();
  /** The API's methods (their CfnMethods) that existed when the authorizer was attached. */
  private readonly methodsSeenByAspect = new Set<IConstruct>();

  constructor(scope: Construct, id: string, props: AgpatProps) {
    super(scope, id);
    const stack = Stack.of(this);
    if (Stack.of(props.api) !== stack) {
      throw new Error(
        `Agpat ${this.node.path}: the REST API must be in the same stack (${stack.node.path}), because its methods reference the authorizer and the authorizer references the API`,
      );
    }
    const n = (key: keyof typeof NUMBERS): number => {
      const { fallback, min, max } = NUMBERS[key];
      const value = props[key] ?? fallback;
      if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
        throw new Error(
          `Agpat ${this.node.path}: ${key} must be a number from ${min} to ${max} (got ${value})`,
        );
      }
      return value;
    };
    const prod = (props.envName ?? "dev") === "prod";
    const retainInProd = prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    this.api = props.api;

    // ---- The manifest, shipped to the Lambdas as a layer.
    this.manifest = loadManifest(props.manifestPath);
    const manifestDigest = crypto.createHash("sha256").update(this.manifest.text).digest("hex");
    this.manifestLayer = new lambda.LayerVersion(this, "ManifestLayer", {
      code: lambda.Code.fromAsset(manifestLayerDirectory(this.manifest.text, manifestDigest)),
      description: `agpat manifest (${path.basename(props.manifestPath)})`,
    });
    this.manifestEnvironment = { AGPAT_MANIFEST: MANIFEST_MOUNT_PATH };

    // ---- DynamoDB: the token table, keys and GSI from the generated layout.
    if (props.table) {
      this.table = props.table;
    } else {
      const table = new dynamodb.Table(this, "Table", {
        partitionKey: { name: TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: TABLE.sortKey, type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection: prod,
        timeToLiveAttribute: TABLE.ttlAttribute,
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy: retainInProd,
      });
      table.addGlobalSecondaryIndex({
        indexName: TABLE.gsi1.name,
        partitionKey: { name: TABLE.gsi1.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: TABLE.gsi1.sortKey, type: dynamodb.AttributeType.STRING },
        // The hash is never projected: listings cannot read it.
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: [...TABLE.gsi1.projectedAttributes],
      });
      this.table = table;
    }

    // ---- Cognito: the adopter's pool, or one with strong passwords,
    // optional MFA and a public client.
    if (props.userPool) {
      if (props.userPool.clientIds.length === 0) {
        throw new Error(
          `Agpat ${this.node.path}: userPool.clientIds must name at least one client`,
        );
      }
      this.userPool = props.userPool.userPool;
      this.clientIds = [...props.userPool.clientIds];
    } else {
      const pool = new cognito.UserPool(this, "UserPool", {
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
        removalPolicy: retainInProd,
      });
      this.userPoolClient = pool.addClient("PublicClient", {
        generateSecret: false,
        authFlows: { userSrp: true, userPassword: true },
        accessTokenValidity: Duration.hours(1),
        idTokenValidity: Duration.hours(1),
        refreshTokenValidity: Duration.days(30),
        preventUserExistenceErrors: true,
        enableTokenRevocation: true,
      });
      NagSuppressions.addResourceSuppressions(pool, [
        {
          id: "AwsSolutions-COG2",
          reason:
            "MFA is optional so machine users can exist; human users can enrol TOTP. Tighten to required where policy demands.",
        },
        {
          id: "AwsSolutions-COG3",
          reason:
            "Cognito threat protection (advanced security) is a paid add-on left to the adopter.",
        },
        {
          id: "AwsSolutions-COG8",
          reason: "The Plus feature plan is a paid add-on left to the adopter.",
        },
      ]);
      this.userPool = pool;
      this.clientIds = [this.userPoolClient.userPoolClientId];
    }

    // ---- Lambdas: provided.al2023 on arm64, from cargo-lambda output. The
    // manifest's session rules replace the former JWT_DEFAULT_SCOPES and
    // JWT_SCOPE_PREFIX variables.
    const tokenTable: Record<string, string> = {
      TABLE_NAME: this.table.tableName,
      RUST_LOG: "info",
    };
    const environments: Record<AgpatFunctionName, Record<string, string>> = {
      authorizer: {
        ...tokenTable,
        ...this.manifestEnvironment,
        COGNITO_USER_POOL_ID: this.userPool.userPoolId,
        COGNITO_CLIENT_IDS: this.clientIds.join(","),
        PAT_CACHE_TTL_SECONDS: String(n("patCacheTtlSeconds")),
      },
      "token-service": {
        ...tokenTable,
        ...this.manifestEnvironment,
        TOKEN_MAX_LIFETIME_DAYS: String(n("tokenMaxLifetimeDays")),
      },
      offboarding: { ...tokenTable, COGNITO_USER_POOL_ID: this.userPool.userPoolId },
    };
    const make = (name: AgpatFunctionName, layers: lambda.ILayerVersion[]): lambda.Function => {
      const sizing = FUNCTIONS[name];
      const logGroup = new logs.LogGroup(this, `${name}-logs`, {
        retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
        removalPolicy: retainInProd,
      });
      return new lambda.Function(this, `${name}-fn`, {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: "bootstrap",
        code: lambda.Code.fromAsset(path.join(props.lambdaAssets, name)),
        memorySize: sizing.memoryMb,
        timeout: Duration.seconds(sizing.timeoutS),
        reservedConcurrentExecutions: prod ? sizing.reservedProd : undefined,
        tracing: lambda.Tracing.ACTIVE,
        logGroup,
        layers,
        environment: environments[name],
      });
    };
    this.functions = {
      authorizer: make("authorizer", [this.manifestLayer]),
      "token-service": make("token-service", [this.manifestLayer]),
      offboarding: make("offboarding", []),
    };
    // A published version pins its layers, so a new manifest must publish a
    // new version for the alias (layers count towards the version hash only
    // under a feature flag the adopter may not set).
    this.functions.authorizer.invalidateVersionBasedOn(manifestDigest);
    // API Gateway must invoke the alias, or the provisioned instances sit idle
    // while every request is served by on-demand ones.
    const provisioned = n("provisionedAuthorizerConcurrency");
    this.authorizerHandler =
      provisioned > 0
        ? new lambda.Alias(this, "AuthorizerLive", {
            aliasName: "live",
            version: this.functions.authorizer.currentVersion,
            provisionedConcurrentExecutions: provisioned,
          })
        : this.functions.authorizer;

    this.grantLeastPrivilege();

    // ---- Offboarding: Cognito disable/delete calls, as CloudTrail delivers
    // them to the default event bus, revoke the user's tokens.
    const offboarding = this.functions.offboarding;
    this.offboardingDeadLetterQueue = new sqs.Queue(this, "OffboardingDlq", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const offboardingDlq = this.offboardingDeadLetterQueue;
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
    const sweepHours = n("offboardingSweepHours");
    if (sweepHours > 0) {
      new events.Rule(this, "OffboardingSweep", {
        description: "Revoke the tokens of users Cognito no longer has enabled",
        schedule: events.Schedule.rate(Duration.hours(sweepHours)),
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
    if (props.offboardingTrail) this.managementTrail = this.createManagementTrail();

    // ---- The REQUEST authorizer and the /tokens routes.
    this.authorizer = new apigw.RequestAuthorizer(this, "Authorizer", {
      // The alias when provisioned concurrency is on; the invoke permission
      // then names the alias too.
      handler: this.authorizerHandler,
      identitySources: [apigw.IdentitySource.header("Authorization")],
      resultsCacheTtl: Duration.seconds(n("authorizerCacheTtlSeconds")),
    });
    this.addTokenRoutes(props.stage ?? deploymentStageOf(this.api, this.node.path), {
      tokenWrite: [n("tokenWriteRateLimit"), n("tokenWriteBurstLimit")],
      publicRevoke: [n("publicRevokeRateLimit"), n("publicRevokeBurstLimit")],
    });
    if (props.problemGatewayResponses ?? true) addProblemGatewayResponses(this.api);

    // ---- Alarms and budget, to one SNS topic.
    if (props.alertTopic) {
      if (props.alertEmail) {
        throw new Error(
          `Agpat ${this.node.path}: alertEmail subscribes to the topic agpat creates; with alertTopic, subscribe to your topic yourself`,
        );
      }
      this.alertTopic = props.alertTopic;
    } else {
      this.alertTopic = new sns.Topic(this, "Alerts", { enforceSSL: true });
      if (props.alertEmail) {
        new sns.Subscription(this, "AlertEmail", {
          topic: this.alertTopic,
          protocol: sns.SubscriptionProtocol.EMAIL,
          endpoint: props.alertEmail,
        });
      }
    }
    this.addAlarms();
    if (props.budget) this.costBudget = this.createBudget(props.budget);

    // cdk-nag findings on the functions' roles, each with its reason.
    NagSuppressions.addResourceSuppressions(
      Object.values(this.functions),
      LAMBDA_ROLE_SUPPRESSIONS,
      true,
    );

    // Methods may be added to the API after this construct, so the
    // authorizer is attached late: before any read-only aspect (cdk-nag) and
    // at the stack, so before any of the API's methods is visited.
    let attached = false;
    Aspects.of(stack).add(
      {
        visit: (node: IConstruct) => {
          if (node !== stack || attached) return;
          attached = true;
          this.attachToManifestRoutes();
        },
      },
      { priority: AspectPriority.MUTATING },
    );
    // The check is not part of that aspect: a later aspect could still add a
    // method, and a property override could still remove the authorizer. It
    // runs after every aspect and reads what CloudFormation will receive.
    this.node.addValidation({ validate: () => this.checkRenderedMethods() });
  }

  /**
   * IAM least privilege: each function gets only what it calls, and
   * LeadingKeys conditions keep each role to the item kinds it owns. No role
   * but the token service may PutItem on the token table, so nothing else can
   * mint a token record. (TransactWriteItems is authorised per contained
   * Put/Update, so it needs no action of its own.)
   */
  private grantLeastPrivilege(): void {
    const tableArn = this.table.tableArn;
    const gsiArn = `${tableArn}/index/${TABLE.gsi1.name}`;
    const { authorizer, offboarding } = this.functions;
    const tokenService = this.functions["token-service"];

    // Authorizer: reads token records, and may update only two attributes of
    // them, without reading anything back.
    allow(authorizer, ["dynamodb:GetItem"], [tableArn], leadingKeys(KEY.token));
    allow(authorizer, ["dynamodb:UpdateItem"], [tableArn], {
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
      tokenService,
      ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
      [tableArn],
      leadingKeys(KEY.token, KEY.user, KEY.alias),
    );
    allow(tokenService, ["dynamodb:Query"], [gsiArn], leadingKeys(KEY.user));

    // Offboarding: resolves the user (alias item, or Cognito for the sub),
    // lists their tokens and revokes them; it never creates items.
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
      [this.userPool.userPoolArn],
    );
    // The reconciliation sweep scans for owners with live tokens: it may read
    // only the key and the active-set map, never a hash.
    allow(offboarding, ["dynamodb:Scan"], [tableArn], {
      "ForAllValues:StringEquals": { "dynamodb:Attributes": ["PK", "SK", "slots"] },
      StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
    });
  }

  /**
   * The token service's routes on the API, from the generated route table,
   * with tight method throttles on the writes and on the public revocation.
   */
  private addTokenRoutes(
    stage: apigw.Stage,
    throttles: { tokenWrite: [number, number]; publicRevoke: [number, number] },
  ): void {
    const integration = new apigw.LambdaIntegration(this.functions["token-service"]);
    const methodSettings: apigw.CfnStage.MethodSettingProperty[] = [];
    for (const route of TOKEN_ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      this.ownResources.add(resource);
      const method = resource.addMethod(
        route.method,
        integration,
        isPublic(route)
          ? { authorizationType: apigw.AuthorizationType.NONE }
          : { authorizer: this.authorizer, authorizationType: apigw.AuthorizationType.CUSTOM },
      );
      this.ownMethods.add(method);
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
      } else {
        NagSuppressions.addResourceSuppressions(method, [CUSTOM_AUTHORIZER_SUPPRESSION]);
      }
      const limits = isPublic(route)
        ? throttles.publicRevoke
        : route.method !== "GET"
          ? throttles.tokenWrite
          : undefined;
      if (limits) {
        methodSettings.push({
          httpMethod: route.method,
          // Stage method settings escape the path's slashes as ~1.
          resourcePath: `/${route.path.replace(/\//g, "~1")}`,
          throttlingRateLimit: limits[0],
          throttlingBurstLimit: limits[1],
          dataTraceEnabled: false,
        });
      }
    }
    const cfnStage = stage.node.defaultChild as apigw.CfnStage;
    const existing = cfnStage.methodSettings ?? [];
    if (!Array.isArray(existing)) {
      throw new Error(
        `Agpat ${this.node.path}: the stage's method settings are a token; agpat cannot add the /tokens throttles to them`,
      );
    }
    cfnStage.methodSettings = [...existing, ...methodSettings];
  }

  /**
   * The late half of adoption (run by an aspect, once the adopter's own
   * methods exist): the authorizer goes on each method the manifest protects
   * that has no authorization yet. Disagreements are left to
   * {@link Agpat.checkRenderedMethods}, which sees methods added after this.
   */
  private attachToManifestRoutes(): void {
    const declared = new Map<string, ManifestRoute>(
      this.manifest.routes.map((route) => [`${route.method} ${route.path}`, route]),
    );
    for (const method of this.api.methods) {
      const cfn = method.node.defaultChild as apigw.CfnMethod;
      this.methodsSeenByAspect.add(cfn);
      if (this.ownMethods.has(method)) continue;
      const key = `${method.httpMethod} ${method.resource.path}`;
      const route = declared.get(key);
      if (!route) continue;
      const current = cfn.authorizationType ?? apigw.AuthorizationType.NONE;
      if (isPublic(route)) {
        NagSuppressions.addResourceSuppressions(method, [
          {
            id: "AwsSolutions-APIG4",
            reason: `Declared access = "public" in the agpat manifest ${this.manifest.file}.`,
          },
          {
            id: "AwsSolutions-COG4",
            reason: `Declared access = "public" in the agpat manifest ${this.manifest.file}.`,
          },
        ]);
        continue;
      }
      if (current !== apigw.AuthorizationType.NONE || cfn.authorizerId !== undefined) {
        // Already agpat's authorizer, or another one the check will refuse.
        NagSuppressions.addResourceSuppressions(method, [CUSTOM_AUTHORIZER_SUPPRESSION]);
        continue;
      }
      cfn.authorizationType = apigw.AuthorizationType.CUSTOM;
      cfn.authorizerId = this.authorizer.authorizerId;
      NagSuppressions.addResourceSuppressions(method, [CUSTOM_AUTHORIZER_SUPPRESSION]);
      // The deployment's logical id covers each method's properties as they
      // were when it was added; without this, a changed authorization would
      // not redeploy the stage.
      this.api.latestDeployment?.addToLogicalId({
        agpatAuthorizer: { method: key, authorizerId: cfn.authorizerId },
      });
    }
  }

  /**
   * The manifest against the API as CloudFormation will receive it: run as a
   * validation, after every aspect, on the rendered template (property
   * overrides included). Each method of the API must be a declared route (or
   * one of agpat's `/tokens` routes); a protected one must render agpat's
   * authorizer and a public one no authorization. The path and HTTP method
   * are read from the rendered method too, so an override cannot move a
   * method away from what its construct says. Returns the problems, which
   * fail synthesis.
   */
  private checkRenderedMethods(): string[] {
    const stack = Stack.of(this);
    const resources = renderedResources(stack);
    const json = (value: unknown) => JSON.stringify(stack.resolve(value));
    const apiRef = stack.resolve(this.api.restApiId) as { Ref?: unknown };
    const rootId = json(this.api.root.resourceId);
    const authorizerId = json(this.authorizer.authorizerId);
    // `Ref` and `GetAtt RestApiId` both name the API.
    const isThisApi = (value: unknown) =>
      JSON.stringify(value) === JSON.stringify(apiRef) ||
      JSON.stringify(value) === JSON.stringify({ "Fn::GetAtt": [apiRef.Ref, "RestApiId"] });
    const refOf = (value: unknown) => {
      const ref = (value as { Ref?: unknown } | undefined)?.Ref;
      return typeof ref === "string" ? resources.get(ref) : undefined;
    };
    /** The path of a rendered ResourceId, walking ParentIds up to the API's root. */
    const pathOf = (resourceId: unknown, depth = 0): string | undefined => {
      if (JSON.stringify(resourceId) === rootId) return "/";
      const resource = refOf(resourceId);
      const part = resource?.properties.PathPart;
      if (
        !resource ||
        resource.type !== "AWS::ApiGateway::Resource" ||
        !isThisApi(resource.properties.RestApiId) ||
        typeof part !== "string" ||
        depth > 128
      ) {
        return undefined;
      }
      const parent = pathOf(resource.properties.ParentId, depth + 1);
      if (parent === undefined) return undefined;
      return parent === "/" ? `/${part}` : `${parent}/${part}`;
    };

    const declared = new Map<string, { access: Access; builtIn: boolean }>();
    for (const route of this.manifest.routes) {
      declared.set(`${route.method} ${route.path}`, { access: route.access, builtIn: false });
    }
    for (const route of TOKEN_ROUTES) {
      declared.set(`${route.method} ${route.path}`, { access: route.access, builtIn: true });
    }
    const constructOf = new Map<IConstruct | undefined, apigw.Method>(
      this.api.methods.map((method) => [method.node.defaultChild, method]),
    );
    const problems: string[] = [];
    const lateHint =
      "it was added after agpat's aspect (priority MUTATING) attached the authorizer, e.g. by a later aspect; add methods before synthesis";

    const api = refOf(apiRef);
    for (const property of ["Body", "BodyS3Location", "CloneFrom"]) {
      if (api?.properties[property] !== undefined) {
        problems.push(
          `the REST API renders ${property}, which defines methods agpat cannot check; add methods with Resource.addMethod`,
        );
      }
    }
    for (const method of this.api.methods) {
      if (Stack.of(method) !== stack) {
        problems.push(
          `${method.node.path} is a method of the API in another stack; agpat checks only its own stack's template`,
        );
      }
    }

    const rendered = new Set<string>();
    for (const [logicalId, resource] of resources) {
      if (resource.type !== "AWS::ApiGateway::Method") continue;
      const props = resource.properties;
      const path = pathOf(props.ResourceId);
      if (!isThisApi(props.RestApiId) && path === undefined) continue;
      const where = `${resource.element.node.path} (${logicalId})`;
      const method = constructOf.get(resource.element);
      if (!method) {
        // Nothing ties a bare CfnMethod (or another API's method overridden
        // onto this one) to a manifest route: refuse it rather than let it
        // bypass the manifest.
        problems.push(
          `${where} is a method of the API but not one of its Method constructs; add methods with Resource.addMethod so agpat can match them to the manifest`,
        );
        continue;
      }
      if (path === undefined || typeof props.HttpMethod !== "string") {
        problems.push(`${where} renders a ResourceId or HttpMethod agpat cannot resolve to a path`);
        continue;
      }
      const key = `${props.HttpMethod} ${path}`;
      const late = !this.methodsSeenByAspect.has(resource.element);
      if (rendered.has(key)) {
        problems.push(`${key} is rendered by more than one method (${where} is one)`);
        continue;
      }
      rendered.add(key);
      const route = declared.get(key);
      if (!route) {
        // CORS preflight the API's defaults add to the /tokens resources.
        const preflight = `OPTIONS ${method.resource.path}`;
        if (key === preflight && this.ownResources.has(method.resource)) continue;
        problems.push(
          `${key} is a method of the API but not a route of the manifest; declare it with a scope, access = "authenticated" or access = "public"` +
            (late ? ` (${lateHint})` : ""),
        );
        continue;
      }
      const source = route.builtIn ? "agpat's route table" : "the manifest";
      const authorization = props.AuthorizationType ?? apigw.AuthorizationType.NONE;
      const hasAuthorizer = props.AuthorizerId !== undefined;
      if (isPublic(route)) {
        if (authorization !== apigw.AuthorizationType.NONE || hasAuthorizer) {
          problems.push(
            `${key} is public in ${source} but the API gives it authorization ${authorization}; remove it or change the manifest`,
          );
        }
        continue;
      }
      if (
        authorization === apigw.AuthorizationType.CUSTOM &&
        JSON.stringify(props.AuthorizerId) === authorizerId
      ) {
        continue;
      }
      if (authorization === apigw.AuthorizationType.NONE) {
        problems.push(
          `${key} is protected by ${source} but would deploy with authorization NONE; ` +
            (late
              ? lateHint
              : "an override of AuthorizationType or AuthorizerId removed agpat's authorizer"),
        );
      } else {
        problems.push(
          `${key} is protected by ${source} but already has another authorizer (${authorization}); agpat's must be its only one`,
        );
      }
    }

    for (const [key, route] of declared) {
      if (!rendered.has(key)) {
        problems.push(
          route.builtIn
            ? `${key} is one of agpat's /tokens routes but the API has no such method`
            : `${key} is a route of the manifest but the API has no such method`,
        );
      }
    }
    if (problems.length === 0) return [];
    return [
      `agpat manifest ${this.manifest.file} does not match the REST API ${this.api.node.path}:\n` +
        problems.map((problem) => `  - ${problem}`).join("\n"),
    ];
  }

  /** Alarms on the authorizer, the API's error rates and offboarding, to the alert topic. */
  private addAlarms(): void {
    const alarm = (id: string, metric: cw.IMetric, threshold: number, description: string) =>
      new cw.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      }).addAlarmAction(new cwActions.SnsAction(this.alertTopic));
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
      this.offboardingDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: fiveMin,
      }),
      1,
      "Offboarding events dead-lettered: a user's tokens may still be active; redrive the queue",
    );
    alarm(
      "OffboardingErrors",
      this.functions.offboarding.metricErrors({ period: fiveMin }),
      1,
      "Offboarding function returned errors",
    );
  }

  /** A monthly cost budget alerting the topic at each threshold. */
  private createBudget(budget: AgpatBudget): budgets.CfnBudget {
    if (!(budget.monthlyUsd >= 1 && budget.monthlyUsd <= 1_000_000)) {
      throw new Error(`Agpat ${this.node.path}: budget.monthlyUsd must be from 1 to 1000000`);
    }
    if (budget.thresholdsPercent.some((t) => !(t > 0))) {
      throw new Error(`Agpat ${this.node.path}: budget.thresholdsPercent must be positive`);
    }
    this.alertTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        actions: ["sns:Publish"],
        principals: [new iam.ServicePrincipal("budgets.amazonaws.com")],
        resources: [this.alertTopic.topicArn],
      }),
    );
    return new budgets.CfnBudget(this, "Budget", {
      budget: {
        budgetName: budget.name,
        budgetType: "COST",
        timeUnit: "MONTHLY",
        budgetLimit: { amount: budget.monthlyUsd, unit: "USD" },
      },
      notificationsWithSubscribers: budget.thresholdsPercent.map((threshold) => ({
        notification: {
          notificationType: "ACTUAL",
          comparisonOperator: "GREATER_THAN",
          threshold,
          thresholdType: "PERCENTAGE",
        },
        subscribers: [{ subscriptionType: "SNS", address: this.alertTopic.topicArn }],
      })),
    });
  }

  /**
   * A single-region management-events trail (global service events included),
   * writing to an encrypted, versioned, private bucket whose access is logged.
   */
  private createManagementTrail(): cloudtrail.Trail {
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

/**
 * cdk-nag findings accepted on every Lambda role, scoped so that any other
 * managed policy or wildcard still fails the check. Exported for adopters'
 * own Lambdas built the same way.
 */
export const LAMBDA_ROLE_SUPPRESSIONS: NagPackSuppression[] = [
  {
    id: "AwsSolutions-IAM4",
    reason: "AWSLambdaBasicExecutionRole (log writes only) is AWS-managed and minimal.",
    appliesTo: [
      "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ],
  },
  {
    id: "AwsSolutions-IAM5",
    reason:
      "X-Ray PutTraceSegments/PutTelemetryRecords require Resource '*' (AWS requirement); no other wildcard is granted.",
    appliesTo: ["Resource::*"],
  },
];

const CUSTOM_AUTHORIZER_SUPPRESSION: NagPackSuppression = {
  id: "AwsSolutions-COG4",
  reason:
    "Protected by agpat's REQUEST Lambda authorizer, which verifies Cognito JWTs (issuer, client, signature) and also accepts PATs; a Cognito-only authorizer could not.",
};

function allow(
  fn: lambda.Function,
  actions: string[],
  resources: string[],
  conditions?: Record<string, Record<string, string[]>>,
): void {
  fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources, conditions }));
}

function leadingKeys(...prefixes: string[]): Record<string, Record<string, string[]>> {
  return { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": prefixes } };
}

/** A resource as the template will have it: type and properties resolved, raw overrides applied. */
interface RenderedResource {
  readonly type: unknown;
  readonly properties: Record<string, unknown>;
  /** The construct that renders it. */
  readonly element: CfnElement;
}

/**
 * Every resource of `stack`'s template by logical id, rendered the way the
 * stack renders its template. Reading the L1 properties instead would miss
 * `addOverride`/`addPropertyOverride`, which are applied only here.
 */
function renderedResources(stack: Stack): Map<string, RenderedResource> {
  const resources = new Map<string, RenderedResource>();
  for (const node of stack.node.findAll()) {
    // Nested stacks render their own templates.
    if (!CfnElement.isCfnElement(node) || Stack.of(node) !== stack) continue;
    const fragment = stack.resolve(node._toCloudFormation()) as {
      Resources?: Record<string, { Type?: unknown; Properties?: Record<string, unknown> }>;
    };
    for (const [logicalId, resource] of Object.entries(fragment.Resources ?? {})) {
      resources.set(logicalId, {
        type: resource.Type,
        properties: resource.Properties ?? {},
        element: node,
      });
    }
  }
  return resources;
}

function deploymentStageOf(api: apigw.RestApi, who: string): apigw.Stage {
  try {
    return api.deploymentStage;
  } catch {
    throw new Error(
      `Agpat ${who}: the REST API has no deployment stage (deploy: false); pass the stage as \`stage\``,
    );
  }
}

/**
 * A directory holding only `agpat/agpat.toml` (the layer's content, extracted
 * under /opt), named by the manifest's digest so that repeated synths reuse it.
 */
function manifestLayerDirectory(text: string, digest: string): string {
  const dir = path.join(os.tmpdir(), `agpat-manifest-${digest.slice(0, 32)}`);
  const file = path.join(dir, "agpat", "agpat.toml");
  if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Written beside the directory and renamed in, so that a concurrent
    // synth never bundles a half-written file or a stray temporary.
    const partial = `${dir}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
    fs.writeFileSync(partial, text);
    fs.renameSync(partial, file);
  }
  return dir;
}

/** The 401, 403, 429 and missing-route gateway responses as RFC 9457 problems. */
function addProblemGatewayResponses(api: apigw.RestApi): void {
  const problem = (status: number, slug: string, title: string) => ({
    "application/json": JSON.stringify({
      type: `urn:agpat:problem:${slug}`,
      title,
      status,
    }),
  });
  const problemHeaders = { "Content-Type": "'application/problem+json'" };
  api.addGatewayResponse("Unauthorized", {
    type: apigw.ResponseType.UNAUTHORIZED,
    statusCode: "401",
    responseHeaders: { ...problemHeaders, "WWW-Authenticate": "'Bearer'" },
    templates: problem(401, "unauthenticated", "Authentication required"),
  });
  api.addGatewayResponse("AccessDenied", {
    type: apigw.ResponseType.ACCESS_DENIED,
    statusCode: "403",
    responseHeaders: problemHeaders,
    templates: problem(403, "insufficient-scope", "The credential does not allow this route"),
  });
  api.addGatewayResponse("Throttled", {
    type: apigw.ResponseType.THROTTLED,
    statusCode: "429",
    responseHeaders: problemHeaders,
    templates: problem(429, "throttled", "Too many requests"),
  });
  api.addGatewayResponse("MissingToken", {
    type: apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
    statusCode: "404",
    responseHeaders: problemHeaders,
    templates: problem(404, "not-found", "No such route"),
  });
}
