import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  ArnFormat,
  AspectPriority,
  Aspects,
  CfnElement,
  Duration,
  Names,
  RemovalPolicy,
  Stack,
  Tags,
  Token,
  Validations,
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
  aws_wafv2 as wafv2,
} from "aws-cdk-lib";
import { Construct, IConstruct } from "constructs";
import { LiveAlias, TrafficShift } from "./deployment";
import { CheckovSkip, skipCheckov } from "./checkov";
import { Access, AgpatManifest, ManifestRoute, loadManifest } from "./manifest";
import { GATEWAY_RESPONSES, TABLE, TOKEN_ROUTES, isPublic } from "./routes";

/** The secret-scanning partner endpoint's path (a public built-in route). */
export const SECRET_SCANNING_PATH = "/tokens/secret-scanning";
/** GitHub's secret-scanning public keys, the default key source. */
export const GITHUB_SECRET_SCANNING_KEYS_URL =
  "https://api.github.com/meta/public_keys/secret_scanning";

/**
 * Where the manifest layer puts the manifest inside every Lambda that has the
 * layer (layers are extracted under `/opt`).
 */
export const MANIFEST_MOUNT_PATH = "/opt/agpat/agpat.toml";

/**
 * The Lambdas agpat always deploys. `expiry-sweeper` runs the `expiry`
 * binary in `sweep` mode; the optional owner-email notifier (same binary,
 * `notify` mode) is {@link Agpat.expiryNotifier}.
 */
export type AgpatFunctionName =
  "authorizer" | "token-service" | "offboarding" | "migrator" | "expiry-sweeper";

/**
 * The Lambdas whose reserved concurrency can be set; the migrator and the
 * expiry sweeper always have 1 (one run at a time).
 */
export type AgpatReservableFunctionName = Exclude<AgpatFunctionName, "migrator" | "expiry-sweeper">;

/**
 * Source of the events agpat publishes on {@link Agpat.eventBus}. Adopters
 * match on it (and on {@link AGPAT_EVENT_DETAIL_TYPES}) in their own rules.
 */
export const AGPAT_EVENT_SOURCE = "agpat";

/**
 * The detail types agpat publishes on {@link Agpat.eventBus}, all with
 * source {@link AGPAT_EVENT_SOURCE}:
 *
 * - `agpat.token.expiring` (the expiry sweeper, 30, 7 and 1 days before a
 *   token expires): `{ tokenId, owner, name, expiresAt, daysLeft }`;
 * - `agpat.token.expired` (the expiry sweeper, once a token has expired):
 *   `{ tokenId, owner, name, expiresAt }`;
 * - `agpat.token.leak_reported` (the token service, when someone revoked a
 *   token through the public `POST /tokens/revoke`): `{ tokenId, owner, name, at }`.
 *
 * `owner` is the Cognito `sub`; times are RFC 3339. No event carries a
 * secret, a hash or a caller's IP address.
 */
export const AGPAT_EVENT_DETAIL_TYPES = [
  "agpat.token.expiring",
  "agpat.token.expired",
  "agpat.token.leak_reported",
] as const;

/** Owner emails about a token's expiry or leak report (the `notify` mode of the `expiry` binary). */
export interface AgpatOwnerEmails {
  /**
   * The sender address, a plain `local@domain` address verified in SES in
   * this account and region (as an address identity, or through its
   * domain's identity). The notifier may send only from it.
   */
  readonly from: string;
}

/**
 * Alarm thresholds and the minimum volumes below which a rate cannot alarm.
 * Every rate alarm is `IF(volume >= minimum, 100 * part / volume, 0)` over
 * 5-minute periods, and fires when 3 of the last 5 periods breach.
 */
export interface AgpatAlarmOptions {
  /**
   * Decisions per 5 minutes below which the decision-rate alarms stay OK, 1–1000000.
   * @default 20
   */
  readonly minimumDecisions?: number;
  /**
   * Fail-closed decisions (`Outcome=error`) as a percentage of all decisions, 0.01–100.
   * @default 1
   */
  readonly failClosedPercent?: number;
  /**
   * `unauthorized` decisions as a percentage of all decisions, 1–100: a credential-stuffing or broken-client signal.
   * @default 50
   */
  readonly unauthorizedPercent?: number;
  /**
   * Requests (API stage `Count`, or token-service invocations) per 5 minutes below which the error-rate alarms stay OK, 1–1000000.
   * @default 20
   */
  readonly minimumRequests?: number;
  /**
   * Failures in one period (fail-closed decisions, 5XX, crashes) that alarm
   * even below the minimum volume, so that a quiet stage failing on every
   * request still pages (and a quiet release still rolls back), 1–1000.
   * @default 3
   */
  readonly minimumFailures?: number;
  /**
   * API 5XX responses as a percentage of requests, 0.01–100.
   * @default 1
   */
  readonly api5xxPercent?: number;
  /**
   * Token-service Lambda errors (crashes, timeouts) as a percentage of its invocations, 0.01–100.
   * @default 5
   */
  readonly tokenServiceErrorPercent?: number;
  /**
   * The stage's p99 `Latency` in milliseconds, 50–29000.
   * @default 1000
   */
  readonly apiP99LatencyMs?: number;
}

/** The web ACL's limits, as requests per IP per 5 minutes. */
export interface AgpatWafOptions {
  /**
   * Requests per IP per 5 minutes to the whole API, 10–2000000000.
   * @default 2000
   */
  readonly rateLimit?: number;
  /**
   * Requests per IP per 5 minutes to the public `POST /tokens/revoke`, 10–2000000000.
   * @default 100
   */
  readonly revokeRateLimit?: number;
  /**
   * Requests per IP per 5 minutes to the public secret-scanning partner
   * route (`POST /tokens/secret-scanning`), 10–2000000000: forged reports
   * from one address cannot use up the route's method throttle for the
   * partner.
   * @default 300
   */
  readonly secretScanningRateLimit?: number;
  /**
   * Log requests the web ACL evaluates to a CloudWatch log group named
   * `aws-waf-logs-…`, the `Authorization` header redacted.
   * @default true
   */
  readonly logging?: boolean;
}

/**
 * A cdk-nag finding accepted on a construct and everything under it. With
 * `appliesTo`, only those findings (`Policy::<arn>`, `Resource::<arn>`,
 * `Action::<action>`) are accepted, so any other managed policy or wildcard
 * still fails the check.
 */
export interface NagAcknowledgment {
  /** The rule, e.g. `AwsSolutions-IAM5`. */
  readonly id: string;
  /** Why the finding is accepted. */
  readonly reason: string;
  /** The exact findings accepted; every finding of the rule when unset. */
  readonly appliesTo?: readonly string[];
}

/**
 * Records cdk-nag 3 acknowledgments (`Validations.of(scope).acknowledge`) on
 * `scope`, one per finding of `appliesTo` (`Rule[Finding]`), else one for the rule.
 */
export function acknowledgeNagFindings(
  scope: IConstruct,
  acknowledgments: readonly NagAcknowledgment[],
): void {
  for (const { id, reason, appliesTo } of acknowledgments) {
    const ids = appliesTo ? appliesTo.map((finding) => `${id}[${finding}]`) : [id];
    for (const one of ids) Validations.of(scope).acknowledge({ id: one, reason });
  }
}

/** An existing Cognito user pool whose tokens agpat accepts. */
export interface AgpatUserPool {
  /** The pool: JWTs are verified against its keys, and its disabled or deleted users are offboarded. */
  readonly userPool: cognito.IUserPool;
  /** The app clients whose tokens are accepted (`client_id` of access tokens, `aud` of ID tokens); at least one. */
  readonly clientIds: readonly string[];
}

/** A rate tier: one usage plan's limits, and how many API keys carry it. */
export interface AgpatRateTier {
  /** Steady requests per second, per key (an integer ≥ 1). */
  readonly rateLimit: number;
  /** Requests a key may make at once (an integer ≥ 1). */
  readonly burstLimit: number;
  /** At most `limit` requests per key per `period`. */
  readonly quota?: { readonly limit: number; readonly period: "DAY" | "WEEK" | "MONTH" };
  /**
   * API keys of the tier, 1–16 (about 40 in all, the authorizer's
   * environment holds them): each has the tier's full limits, and a token
   * always uses the same one, so a runaway token exhausts only its key.
   * @default 1
   */
  readonly keys?: number;
}

/** A monthly AWS cost budget that alerts the alert topic. */
export interface AgpatBudget {
  /** The monthly limit in US dollars. */
  readonly monthlyUsd: number;
  /** Alert when actual cost passes these percentages of the limit. */
  readonly thresholdsPercent: readonly number[];
  /** The budget's name; CloudFormation generates one when unset. Must be unique in the account. */
  readonly name?: string;
  /**
   * Alert when the month's forecast passes this percentage of the limit, 1–1000.
   * @default 100
   */
  readonly forecastPercent?: number;
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
  /**
   * Directory holding `authorizer/`, `token-service/`, `offboarding/`,
   * `migrator/` and `expiry/`, each with the `bootstrap.zip` that
   * `scripts/build-lambdas.sh` builds (the same zip CI uploads). The zip is
   * the deployment package, uploaded as is. The `expiry` package runs as the
   * sweeper and, with `ownerEmails`, as the notifier.
   */
  readonly lambdaAssets: string;
  /**
   * `prod` retains the table, the user pool and the log groups, turns on
   * deletion protection, reserves concurrency, turns on the web ACL and
   * requires an alert subscriber; `dev` is destroyable. Every resource is
   * tagged `app=agpat` and `env=<envName>`.
   * @default "dev"
   */
  readonly envName?: "dev" | "prod";
  /**
   * The CloudWatch namespace of agpat's own metrics (EMF), given to the
   * authorizer, token service and migrator as `AGPAT_METRICS_NAMESPACE` and
   * used by the alarms and the dashboard.
   * @default `agpat/<envName>`
   */
  readonly metricsNamespace?: string;
  /**
   * Reserved concurrency per function, 1–1000. Reserving takes capacity from
   * the account's regional concurrency quota, which must keep at least 100
   * unreserved: check the quota's headroom before raising these. The
   * migrator always has 1 (one run at a time).
   * @default prod: authorizer 400, token-service 20, offboarding 5; dev: none reserved
   */
  readonly reservedConcurrency?: Partial<Record<AgpatReservableFunctionName, number>>;
  /**
   * Alarm thresholds and volume guards.
   * @default the defaults of {@link AgpatAlarmOptions}
   */
  readonly alarms?: AgpatAlarmOptions;
  /**
   * A regional WAF web ACL on the stage: per-IP rate limits (a tight one on
   * the public revocation route) and the AWS common and known-bad-inputs rule
   * sets. `true` uses the defaults of {@link AgpatWafOptions}.
   * @default true when envName is "prod", else false
   */
  readonly waf?: boolean | AgpatWafOptions;
  /**
   * Create, in the pool this construct creates, an app client allowing only
   * `ALLOW_ADMIN_USER_PASSWORD_AUTH` (and refresh), without a secret, for a
   * smoke test that logs in with AdminInitiateAuth through its deploy role.
   * Ignored with `userPool`.
   * @default false
   */
  readonly smokeTestClient?: boolean;
  /**
   * The stage whose method settings get the `/tokens` throttles.
   * @default api.deploymentStage
   */
  readonly stage?: apigw.Stage;
  /**
   * The deployment `stage` points to, for an API built with `deploy: false`.
   * API Gateway applies authorizer changes (identity sources, cache TTL)
   * only through a new deployment, so agpat adds its authorizer settings to
   * this deployment's logical id. Required with `dpop` or `ipAllowLists` on
   * such an API: a stage left on the old settings would serve cached
   * answers the Lambdas no longer expect.
   * @default the API's own deployment
   */
  readonly deployment?: apigw.Deployment;
  /**
   * An existing user pool and the app clients whose tokens are accepted.
   * @default a new pool (strong passwords, optional TOTP MFA) with one public client
   */
  readonly userPool?: AgpatUserPool;
  /**
   * App clients of the pool whose client-credentials access tokens are
   * machines (principal kind `service`, scopes from the manifest's
   * `[services]`); never one of the clients whose tokens are people's.
   * @default none: no client-credentials token is accepted
   */
  readonly serviceClientIds?: readonly string[];
  /**
   * Let tokens carry IP allow-lists (`allowedCidrs`). Adds
   * `context.identity.sourceIp` to the authorizer's identity sources, so its
   * result cache is keyed by token and client address: one authorizer call
   * per (token, address) instead of per token. Off, no token can be issued
   * with an allow-list, and one that has one is refused.
   * @default false
   */
  readonly ipAllowLists?: boolean;
  /**
   * Sender-constrained tokens (DPoP, RFC 9449): owners may bind a PAT to a
   * public key at issue or rotation (`dpopJwk`), and a bound PAT then works
   * only as `Authorization: DPoP <token>` with a fresh proof signed by that
   * key on every request. A copied bound token alone is useless.
   *
   * Every proof is unique, so API Gateway's authorizer cache cannot serve a
   * bound token, and a cached Allow would serve the next request without a
   * proof: `dpop` turns the cache off (`authorizerCacheTtlSeconds` 0) for
   * every client. The authorizer's in-process caches still spare an unbound
   * token's or a session's repeat decisions the read and the argon2 or
   * RS256 work; each request pays one authorizer invocation (cost model in
   * BENCHMARKS.md). Unset, no token can be bound and a bound one is refused.
   * @default off
   */
  readonly dpop?: AgpatDpop;
  /**
   * Rate tiers, as API Gateway usage plans: the API key source becomes
   * `AUTHORIZER`, every protected method requires a key, and the authorizer
   * names the key of each principal's tier (a token's `rateTier`, else
   * `defaultRateTier`). Tokens share their tier's keys: API Gateway caps API
   * keys per account and region, so there is no key per token.
   * @default none: no usage plan, the stage's throttles only
   */
  readonly rateTiers?: Readonly<Record<string, AgpatRateTier>>;
  /**
   * The tier of sessions, services and tokens issued without one.
   * @default the first of `rateTiers`
   */
  readonly defaultRateTier?: string;
  /**
   * Whether protected methods require the key the authorizer names. Turning
   * tiers on over a live stage takes two deployments: first with `false`
   * (plans, keys and an authorizer that names them), then, once the
   * authorizer cache TTL and any canary have passed, with `true`; otherwise
   * cached decisions without a key are refused (403) meanwhile. Removing a
   * tier or keys needs the same two steps in reverse.
   * @default true
   */
  readonly rateTiersEnforced?: boolean;
  /**
   * An existing token table, laid out as `generated/routes.json` `table` says
   * (string keys `PK`/`SK`, the `GSI1` and `GSI2` indexes without the hash,
   * TTL on `ttl`).
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
   * Where the secret-scanning partner endpoint (`POST /tokens/secret-scanning`)
   * fetches the scanner's ECDSA public keys (`SECRET_SCANNING_KEYS_URL`, an
   * `https://` URL). An empty string turns the endpoint off (it answers 404).
   * @default GitHub's keys, https://api.github.com/meta/public_keys/secret_scanning
   */
  readonly secretScanningKeysUrl?: string;
  /**
   * Method throttle (requests per second) of the public
   * `POST /tokens/secret-scanning`, 1–100. Reports are signed, so this only
   * bounds the cost of refusing forged ones.
   * @default 5
   */
  readonly secretScanningRateLimit?: number;
  /**
   * Method burst of the public `POST /tokens/secret-scanning`, 1–100.
   * @default 10
   */
  readonly secretScanningBurstLimit?: number;
  /**
   * Provisioned concurrency of the authorizer, 0–100, on its `live` alias,
   * which is what API Gateway invokes.
   * @default 0
   */
  readonly provisionedAuthorizerConcurrency?: number;
  /**
   * How a new version of the authorizer and of the token service takes
   * traffic: CodeDeploy moves each one's `live` alias (which API Gateway
   * invokes) and moves it back when a release alarm fires.
   * @default "canary10Percent5Minutes" in prod, "allAtOnce" in dev
   */
  readonly trafficShift?: TrafficShift;
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
   * Days a token's history events (`EVENTS#<id>` items: created, rotated,
   * revoked, updated, new_ip, expiring, expired) are kept before DynamoDB's
   * TTL removes them, 1–3650. Given to every function that writes them as
   * `TOKEN_EVENT_RETENTION_DAYS`.
   * @default 90
   */
  readonly eventRetentionDays?: number;
  /**
   * The schema version the token service writes token records with
   * (`TOKEN_SCHEMA_WRITE_VERSION`), 2 or 3. Set 2 for the first deployment
   * of this release over an existing table: the readers of earlier releases
   * (still running during the deployment, a canary or a rollback) refuse v3
   * records. Raise it to 3 once they are gone, then run the migrator.
   * @default 3
   */
  readonly tokenSchemaWriteVersion?: number;
  /**
   * How often the expiry sweeper runs, in whole minutes from 5 minutes to
   * 8 hours. Each run picks up where the last one's checkpoint ended, so a
   * longer interval only delays warnings (by up to one interval).
   * @default Duration.hours(1)
   */
  readonly expirySweepSchedule?: Duration;
  /**
   * Email each token's owner (their Cognito `email` attribute) when the
   * token is about to expire, has expired, or was reported leaked: a
   * notifier Lambda subscribed to {@link Agpat.eventBus}. Without it the
   * events are still published, for the adopter's own rules.
   * @default no owner emails
   */
  readonly ownerEmails?: AgpatOwnerEmails;
  /**
   * Where alarms and budget alerts go. CloudWatch's and the budget's
   * publish permissions are added to the topic's policy; an imported topic
   * must grant `cloudwatch.amazonaws.com` and `budgets.amazonaws.com`
   * `sns:Publish` itself.
   * @default a new SSL-only topic
   */
  readonly alertTopic?: sns.ITopic;
  /**
   * An address subscribed to the alert topic this construct creates; not
   * allowed with `alertTopic`. In prod, this or `alertTopic` is required.
   */
  readonly alertEmail?: string;
  /**
   * A monthly cost budget alerting the topic.
   * @default no budget
   */
  readonly budget?: AgpatBudget;
  /**
   * Make the API's 401, 403, 429, missing-route (404) and every other 4XX and
   * 5XX gateway response RFC 9457 problems carrying the request id. Turn off
   * if the API defines these responses itself.
   * @default true
   */
  readonly problemGatewayResponses?: boolean;
}

/** DPoP settings of the construct's `dpop` (RFC 9449). */
export interface AgpatDpop {
  /**
   * Where clients send requests besides the stage's default
   * `https://<api>.execute-api.<region>.amazonaws.com/<stage>` URL: custom
   * domains with their base path (`https://api.example.com/v1`). A proof's
   * `htu` must be one of these plus the request's path.
   * @default none
   */
  readonly origins?: readonly string[];
  /**
   * How old a proof may be, in seconds (5–300). The replay store keeps each
   * spent proof this long.
   * @default 60
   */
  readonly proofMaxAgeSeconds?: number;
  /**
   * How far ahead of the authorizer's clock a client's may be, in seconds (0–60).
   * @default 5
   */
  readonly clockSkewSeconds?: number;
  /**
   * Whether the token service binds tokens (`dpopJwk`). Turning `dpop` on
   * over a live stage takes two deployments: first with `false` (the
   * authorizer accepts proofs, the stage's cache goes to 0), then, once
   * that deployment and any canary have finished, with `true`. Otherwise a
   * token bound while the stage still caches could be served from a cached
   * Allow without a proof for up to the old TTL.
   * @default true
   */
  readonly issueBoundTokens?: boolean;
}

/** Per-function sizing. */
const FUNCTIONS: Record<
  AgpatFunctionName,
  { memoryMb: number; timeoutS: number; reservedProd: number }
> = {
  // One vCPU: argon2id is single-threaded and CPU-bound, so 1769 MB runs it
  // in ~13-15 ms instead of ~90-100 ms at 256 MB. The fleet model
  // (BENCHMARKS.md, "A deploy") shows the emergency lever's argon2 wave at
  // 1M req/s then needs ~180-210 concurrent invocations (547-1080 at
  // 256 MB), and 10^6 active PATs need ~230 steady: prod reserves 400, room
  // for a slower CPU. About the same cost per million requests at scale.
  authorizer: { memoryMb: 1769, timeoutS: 5, reservedProd: 400 },
  "token-service": { memoryMb: 512, timeoutS: 10, reservedProd: 20 },
  // 15 minutes: the reconciliation sweep walks every owner with a live token.
  offboarding: { memoryMb: 256, timeoutS: 900, reservedProd: 5 },
  // 15 minutes per invocation; a run that does not finish checkpoints and is
  // invoked again. One at a time (reserved 1, in every environment).
  migrator: { memoryMb: 512, timeoutS: 900, reservedProd: 1 },
  // 5 minutes per run; a run that does not finish leaves its checkpoint and
  // the next scheduled run continues. One at a time (reserved 1, in every
  // environment): runs never need to overlap.
  "expiry-sweeper": { memoryMb: 256, timeoutS: 300, reservedProd: 1 },
};

/** The optional owner-email notifier's sizing: one email per event. */
const EXPIRY_NOTIFIER = { memoryMb: 256, timeoutS: 30, reservedProd: 2 };

/** The directory under `lambdaAssets` holding each function's `bootstrap.zip`. */
const ASSET_OF: Record<AgpatFunctionName | "expiry-notifier", string> = {
  authorizer: "authorizer",
  "token-service": "token-service",
  offboarding: "offboarding",
  migrator: "migrator",
  // One binary, two functions: AGPAT_EXPIRY_MODE selects sweep or notify.
  "expiry-sweeper": "expiry",
  "expiry-notifier": "expiry",
};

/** Alarm defaults and ranges. */
const ALARM_NUMBERS: Record<
  keyof AgpatAlarmOptions,
  { fallback: number; min: number; max: number }
> = {
  minimumDecisions: { fallback: 20, min: 1, max: 1_000_000 },
  failClosedPercent: { fallback: 1, min: 0.01, max: 100 },
  unauthorizedPercent: { fallback: 50, min: 1, max: 100 },
  minimumRequests: { fallback: 20, min: 1, max: 1_000_000 },
  minimumFailures: { fallback: 3, min: 1, max: 1000 },
  api5xxPercent: { fallback: 1, min: 0.01, max: 100 },
  tokenServiceErrorPercent: { fallback: 5, min: 0.01, max: 100 },
  apiP99LatencyMs: { fallback: 1000, min: 50, max: 29_000 },
};

/** Web ACL defaults and ranges (WAF's own bounds for rate-based rules). */
const WAF_NUMBERS = {
  rateLimit: { fallback: 2000, min: 10, max: 2_000_000_000 },
  revokeRateLimit: { fallback: 100, min: 10, max: 2_000_000_000 },
  secretScanningRateLimit: { fallback: 300, min: 10, max: 2_000_000_000 },
} as const;

/** The numeric props, their defaults and their ranges: the only place these limits live. */
const NUMBERS = {
  authorizerCacheTtlSeconds: { fallback: 60, min: 0, max: 3600 },
  patCacheTtlSeconds: { fallback: 30, min: 0, max: 300 },
  tokenMaxLifetimeDays: { fallback: 90, min: 1, max: 365 },
  tokenWriteRateLimit: { fallback: 5, min: 1, max: 1000 },
  tokenWriteBurstLimit: { fallback: 10, min: 1, max: 1000 },
  publicRevokeRateLimit: { fallback: 2, min: 1, max: 100 },
  publicRevokeBurstLimit: { fallback: 5, min: 1, max: 100 },
  secretScanningRateLimit: { fallback: 5, min: 1, max: 100 },
  secretScanningBurstLimit: { fallback: 10, min: 1, max: 100 },
  provisionedAuthorizerConcurrency: { fallback: 0, min: 0, max: 100 },
  offboardingSweepHours: { fallback: 24, min: 0, max: 168 },
  eventRetentionDays: { fallback: 90, min: 1, max: 3650 },
  tokenSchemaWriteVersion: { fallback: 3, min: 2, max: 3 },
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
  /** `MIGRATION#<name>` / `SEGMENT#<i>-OF-<n>`: a migration's per-segment checkpoint. */
  migration: "MIGRATION#*",
  /** `EVENTS#<token id>` / `<at>#<kind>#<nonce>`: one event of a token's history. */
  events: "EVENTS#*",
  /** `SWEEP#expiry` / `STATE`: the expiry sweeper's checkpoint. */
  sweep: "SWEEP#*",
  /** `DPOP#<sha256(jkt, jti)>` / `DPOP`: a spent DPoP proof (replay store), with a TTL. */
  dpop: "DPOP#*",
  /** GSI2's partition key, `EXP#<day>#<shard>`: tokens by expiry day. */
  expiry: "EXP#*",
};

/**
 * What the migrator may write on a token record (`shared/src/migrate.rs`,
 * schema v3: the version, the scope set and the expiry index's keys).
 */
export const MIGRATOR_TOKEN_ATTRIBUTES = ["PK", "SK", "v", "scope_set", "GSI2PK", "GSI2SK"];

/**
 * What the migrator's scan may read of a token record: its key, version, v1
 * scopes and expiry (for the v3 index keys). Never a hash.
 */
export const MIGRATOR_SCAN_ATTRIBUTES = ["PK", "SK", "v", "scopes", "expires_at"];

/**
 * What a history event item holds (`shared/src/history.rs`): the key, the
 * event's JSON, its time and its TTL. Every role that records history may
 * put only these, and only under `EVENTS#`.
 */
export const EVENT_ITEM_ATTRIBUTES = ["PK", "SK", "event", "at", "ttl"];

/**
 * What the authorizer may write on a token record: the throttled last-use
 * time, the recent use sites, and (rehash-on-verify) the hash.
 */
export const AUTHORIZER_TOKEN_ATTRIBUTES = ["PK", "SK", "last_used_at", "hash", "recent_uses"];

/**
 * What the token service's listing enrichment (BatchGetItem on token
 * records) may read: the key and the fields GSI1 does not project (the
 * projection of `TokenStore::details`). Never a hash.
 */
export const TOKEN_SERVICE_BATCH_ATTRIBUTES: readonly string[] = TABLE.detailsProjected;

/**
 * What the expiry sweeper may write on a token record: the marks that a
 * warning or the expiry notice went out, nothing else (no revocation, no
 * expiry, no owner).
 */
export const EXPIRY_SWEEPER_TOKEN_ATTRIBUTES = [
  "PK",
  "SK",
  "notified_30",
  "notified_7",
  "notified_1",
  "notified_expired",
];

/** What the migrator's checkpoint items hold (`shared/src/migrate.rs`: the key and `state`). */
export const MIGRATOR_CHECKPOINT_ATTRIBUTES = ["PK", "SK", "state"];

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
 * It adds the authorizer, token-service, offboarding, migrator and expiry
 * sweeper Lambdas (the manifest reaches the first two through
 * {@link Agpat.manifestLayer}), the `/tokens` routes, the token table and the
 * user pool unless given, least-privilege IAM, offboarding on Cognito events,
 * the agpat event bus ({@link Agpat.eventBus}: expiry warnings and leak
 * reports, see {@link AGPAT_EVENT_DETAIL_TYPES}) with an hourly expiry sweep
 * and optional owner emails ({@link AgpatProps.ownerEmails}), alarms on agpat's own
 * decision metrics with a dashboard, problem+json gateway responses, a web
 * ACL (prod by default) and an optional budget, and tags everything
 * `app=agpat`, `env=<envName>`. At
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
  /** The smoke test's admin-auth-only app client, when `smokeTestClient` is true and this construct created the pool. */
  readonly smokeTestClient?: cognito.UserPoolClient;
  /** The id of {@link Agpat.smokeTestClient}. */
  readonly smokeTestClientId?: string;
  /** The app client ids whose tokens are accepted. */
  readonly clientIds: readonly string[];
  /** agpat's Lambdas. */
  readonly functions: Readonly<Record<AgpatFunctionName, lambda.Function>>;
  /** What API Gateway invokes as the authorizer: its `live` alias. */
  readonly authorizerHandler: lambda.IFunction;
  /**
   * The `live` aliases API Gateway invokes (authorizer, token service), each
   * moved by CodeDeploy and rolled back by {@link Agpat.releaseAlarms}.
   */
  readonly releases: Readonly<Record<"authorizer" | "token-service", LiveAlias>>;
  /** One-minute alarms that stop a release and roll it back (also notified to the topic). */
  readonly releaseAlarms: readonly cw.Alarm[];
  /** The REQUEST authorizer (identity source: the `Authorization` header). */
  readonly authorizer: apigw.RequestAuthorizer;
  /** Where alarms and budget alerts go. */
  readonly alertTopic: sns.ITopic;
  /** The CloudWatch namespace of agpat's EMF metrics. */
  readonly metricsNamespace: string;
  /** `dev` or `prod`. */
  readonly envName: "dev" | "prod";
  /** Whether tokens may be bound to a DPoP key (the `dpop` prop). */
  private readonly dpop: boolean;
  /**
   * The deployment of the stage: the API's own, or the `deployment` prop
   * (`deploy: false`). agpat's changes to methods and to the authorizer are
   * added to its logical id, so that they redeploy the stage.
   */
  private stageDeployment?: apigw.Deployment;
  /** The stage the throttles, alarms and web ACL apply to. */
  readonly stage: apigw.Stage;
  /** Every alarm this construct creates. */
  readonly alarms: readonly cw.Alarm[];
  /** Decisions, latency, cache, tokens, API, DynamoDB and alarm states. */
  readonly dashboard: cw.Dashboard;
  /** The regional web ACL on the stage, when `waf` is on. */
  readonly webAcl?: wafv2.CfnWebACL;
  /** The dead-letter queue of offboarding events and failed offboarding runs. */
  readonly offboardingDeadLetterQueue: sqs.Queue;
  /**
   * The agpat event bus (CloudFormation output `EventBusName` in the example
   * stack). Every event has source {@link AGPAT_EVENT_SOURCE} and one of the
   * detail types {@link AGPAT_EVENT_DETAIL_TYPES} (which lists each one's
   * detail). Add your own rules to it for webhooks or chat, e.g.
   * `new events.Rule(this, "Chat", { eventBus: agpat.eventBus, eventPattern:
   * { source: ["agpat"], detailType: ["agpat.token.leak_reported"] }, targets: [...] })`.
   */
  readonly eventBus: events.EventBus;
  /** The schedule that runs the expiry sweeper (`expirySweepSchedule`). */
  readonly expirySweepRule: events.Rule;
  /**
   * The owner-email notifier (the `expiry` binary in `notify` mode), when
   * `ownerEmails` is set; triggered by {@link Agpat.expiryNotifierRule}.
   */
  readonly expiryNotifier?: lambda.Function;
  /** The rule on {@link Agpat.eventBus} that invokes {@link Agpat.expiryNotifier}. */
  readonly expiryNotifierRule?: events.Rule;
  /** The dead-letter queue of notifier events that could not be delivered or handled. */
  readonly expiryNotifierDeadLetterQueue?: sqs.Queue;
  /** The monthly budget, when `budget` was given. */
  readonly costBudget?: budgets.CfnBudget;
  /** The management-events trail, when `offboardingTrail` is true. */
  readonly managementTrail?: cloudtrail.Trail;

  /** The validated sender of owner emails, when `ownerEmails` is set. */
  private readonly ownerEmailFrom?: string;
  /** The validated interval between expiry sweeps. */
  private readonly sweepEvery: Duration;
  /** The `/tokens` methods this construct created; they are not manifest routes. */
  private readonly ownMethods = new Set<apigw.Method>();
  /** Each rate tier's API key values (empty: no rate tiers). */
  private rateTierKeys = new Map<string, string[]>();
  /** Whether protected methods require the authorizer's key. */
  private rateTiersEnforced = false;
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
      return ranged(key, props[key] ?? fallback, min, max);
    };
    const envName = props.envName ?? "dev";
    this.envName = envName;
    this.dpop = props.dpop !== undefined && props.dpop !== null;
    const prod = envName === "prod";
    const retainInProd = prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    this.api = props.api;
    if (prod && !props.alertEmail && !props.alertTopic) {
      throw new Error(
        `Agpat ${this.node.path}: envName "prod" needs someone to receive alarms: pass alertEmail, or alertTopic with your own subscription`,
      );
    }
    // Cost allocation (the budget filters on these once they are activated
    // as cost allocation tags in the billing console).
    Tags.of(this).add("app", "agpat");
    Tags.of(this).add("env", envName);
    this.metricsNamespace = props.metricsNamespace ?? `agpat/${envName}`;
    if (
      !/^[A-Za-z0-9.\-_/#: ]{1,255}$/.test(this.metricsNamespace) ||
      this.metricsNamespace.startsWith("AWS/")
    ) {
      throw new Error(
        `Agpat ${this.node.path}: metricsNamespace must be 1–255 of A-Z a-z 0-9 . - _ / # : and space, and not start with AWS/ (got ${this.metricsNamespace})`,
      );
    }
    const ranged = (name: string, value: number, min: number, max: number): number => {
      // Whole numbers only: every one of them reaches a Lambda as an integer
      // setting, and a fraction would stop its cold start.
      if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        throw new Error(
          `Agpat ${this.node.path}: ${name} must be a number from ${min} to ${max} (got ${value})`,
        );
      }
      return value;
    };

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
      skipCheckov(table, {
        id: "CKV_AWS_119",
        comment:
          "Encrypted with the AWS-managed DynamoDB KMS key; the table holds argon2 hashes, never a token, and a customer-managed key would add cost and a key that can lock the data away.",
      });
      table.addGlobalSecondaryIndex({
        indexName: TABLE.gsi1.name,
        partitionKey: { name: TABLE.gsi1.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: TABLE.gsi1.sortKey, type: dynamodb.AttributeType.STRING },
        // The hash is never projected: listings cannot read it.
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: [...TABLE.gsi1.projectedAttributes],
      });
      // The expiry index: tokens by expiry day (and shard), for the sweeper.
      // Adding it to a deployed table is an in-place update (DynamoDB
      // backfills it); CloudFormation adds one GSI per deployment.
      table.addGlobalSecondaryIndex({
        indexName: TABLE.gsi2.name,
        partitionKey: { name: TABLE.gsi2.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: TABLE.gsi2.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: [...TABLE.gsi2.projectedAttributes],
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
        // Users and their subs (every token's owner) live only here.
        deletionProtection: prod,
        removalPolicy: retainInProd,
      });
      this.userPoolClient = pool.addClient("PublicClient", {
        generateSecret: false,
        // SRP only: the password never travels. The smoke test logs in
        // through its own admin-auth client instead of USER_PASSWORD_AUTH.
        authFlows: { userSrp: true },
        accessTokenValidity: Duration.hours(1),
        idTokenValidity: Duration.hours(1),
        refreshTokenValidity: Duration.days(30),
        preventUserExistenceErrors: true,
        enableTokenRevocation: true,
      });
      if (props.smokeTestClient) {
        this.smokeTestClient = pool.addClient("SmokeTestClient", {
          generateSecret: false,
          // AdminInitiateAuth needs IAM credentials (cognito-idp:AdminInitiateAuth
          // on this pool), so only a principal such as the deploy role can log in.
          authFlows: { adminUserPassword: true },
          accessTokenValidity: Duration.minutes(15),
          idTokenValidity: Duration.minutes(15),
          refreshTokenValidity: Duration.hours(1),
          preventUserExistenceErrors: true,
          enableTokenRevocation: true,
        });
        this.smokeTestClientId = this.smokeTestClient.userPoolClientId;
      }
      acknowledgeNagFindings(pool, [
        {
          id: "AwsSolutions-COG2",
          reason:
            "MFA is optional so machine users can exist; human users can enrol TOTP. Tighten to required where policy demands.",
        },
        {
          id: "AwsSolutions-COG8",
          reason: "The Plus feature plan is a paid add-on left to the adopter.",
        },
      ]);
      this.userPool = pool;
      this.clientIds = [
        this.userPoolClient.userPoolClientId,
        ...(this.smokeTestClientId ? [this.smokeTestClientId] : []),
      ];
    }

    // ---- The agpat event bus: expiry warnings and leak reports, for the
    // owner-email notifier and for the adopter's own rules (webhooks, chat).
    // No resource policy: only principals of this account that IAM allows
    // can put events on it.
    this.eventBus = new events.EventBus(this, "EventBus", {
      description:
        "agpat token events (source agpat): agpat.token.expiring, agpat.token.expired, agpat.token.leak_reported",
    });
    this.ownerEmailFrom = props.ownerEmails && this.ownerEmailSender(props.ownerEmails.from);
    const ownerEmailFrom = this.ownerEmailFrom;
    this.sweepEvery = this.sweepInterval(props.expirySweepSchedule ?? Duration.hours(1));

    // ---- Lambdas: provided.al2023 on arm64, from cargo-lambda output. The
    // manifest's session rules replace the former JWT_DEFAULT_SCOPES and
    // JWT_SCOPE_PREFIX variables.
    const tokenTable: Record<string, string> = {
      TABLE_NAME: this.table.tableName,
      RUST_LOG: "info",
    };
    const metrics = { AGPAT_METRICS_NAMESPACE: this.metricsNamespace };
    // How long history events live (their TTL), for every function that writes them.
    const history = { TOKEN_EVENT_RETENTION_DAYS: String(n("eventRetentionDays")) };
    const secretScanningKeysUrl = props.secretScanningKeysUrl ?? GITHUB_SECRET_SCANNING_KEYS_URL;
    if (secretScanningKeysUrl !== "" && !/^https:\/\/[^\s/]+\/\S*$/.test(secretScanningKeysUrl)) {
      throw new Error(
        `Agpat ${this.node.path}: secretScanningKeysUrl must be an https:// URL, or "" to turn the endpoint off (got ${secretScanningKeysUrl})`,
      );
    }
    const bus = { AGPAT_EVENT_BUS: this.eventBus.eventBusName };
    const ipAllowLists: Record<string, string> = props.ipAllowLists
      ? { AGPAT_IP_ALLOW_LISTS: "on" }
      : {};
    const dpopEnv = this.dpopEnvironment(props, ranged);
    this.rateTierKeys = this.rateTierKeyValues(props.rateTiers ?? {});
    this.rateTiersEnforced = this.rateTierKeys.size > 0 && (props.rateTiersEnforced ?? true);
    const tierNames = [...this.rateTierKeys.keys()];
    const defaultRateTier = props.defaultRateTier ?? tierNames[0];
    if (defaultRateTier !== undefined && !this.rateTierKeys.has(defaultRateTier)) {
      throw new Error(
        `Agpat ${this.node.path}: defaultRateTier ${defaultRateTier} is not one of rateTiers`,
      );
    }
    const tierEnv: { authorizer: Record<string, string>; service: Record<string, string> } =
      tierNames.length === 0
        ? { authorizer: {}, service: {} }
        : {
            authorizer: {
              RATE_TIER_KEYS: tierNames
                .map((t) => `${t}=${(this.rateTierKeys.get(t) ?? []).join("|")}`)
                .join(","),
              RATE_TIER_DEFAULT: defaultRateTier ?? "",
            },
            service: { RATE_TIERS: tierNames.join(",") },
          };
    // Lambda caps a function's whole environment at 4 KB.
    if ((tierEnv.authorizer.RATE_TIER_KEYS ?? "").length > 2048) {
      throw new Error(
        `Agpat ${this.node.path}: rateTiers have too many keys for the authorizer's environment (at most about 40 in all)`,
      );
    }
    // One client, one kind: a people's client is never a machine's.
    const serviceClientIds = [...(props.serviceClientIds ?? [])];
    const shared = serviceClientIds.filter((id) => this.clientIds.includes(id));
    if (shared.length > 0) {
      throw new Error(
        `Agpat ${this.node.path}: serviceClientIds must not repeat userPool.clientIds (${shared.join(", ")})`,
      );
    }
    const environments: Record<AgpatFunctionName, Record<string, string>> = {
      authorizer: {
        ...tokenTable,
        ...this.manifestEnvironment,
        ...metrics,
        ...history,
        COGNITO_USER_POOL_ID: this.userPool.userPoolId,
        COGNITO_CLIENT_IDS: this.clientIds.join(","),
        ...ipAllowLists,
        ...dpopEnv.authorizer,
        ...tierEnv.authorizer,
        ...(serviceClientIds.length > 0
          ? { COGNITO_SERVICE_CLIENT_IDS: serviceClientIds.join(",") }
          : {}),
        PAT_CACHE_TTL_SECONDS: String(n("patCacheTtlSeconds")),
      },
      "token-service": {
        ...tokenTable,
        ...ipAllowLists,
        ...dpopEnv.service,
        ...tierEnv.service,
        ...this.manifestEnvironment,
        ...metrics,
        ...history,
        ...bus,
        TOKEN_MAX_LIFETIME_DAYS: String(n("tokenMaxLifetimeDays")),
        ...(secretScanningKeysUrl ? { SECRET_SCANNING_KEYS_URL: secretScanningKeysUrl } : {}),
        TOKEN_SCHEMA_WRITE_VERSION: String(n("tokenSchemaWriteVersion")),
      },
      offboarding: {
        ...tokenTable,
        ...history,
        COGNITO_USER_POOL_ID: this.userPool.userPoolId,
      },
      migrator: { ...tokenTable, ...metrics },
      "expiry-sweeper": {
        ...tokenTable,
        ...metrics,
        ...history,
        ...bus,
        AGPAT_EXPIRY_MODE: "sweep",
      },
    };
    const reserved = (name: AgpatFunctionName): number | undefined => {
      if (name === "migrator" || name === "expiry-sweeper") return 1;
      const given = props.reservedConcurrency?.[name];
      if (given === undefined) return prod ? FUNCTIONS[name].reservedProd : undefined;
      return ranged(`reservedConcurrency.${name}`, given, 1, 1000);
    };
    for (const [name, value] of Object.entries(props.reservedConcurrency ?? {})) {
      if (name === "migrator" || name === "expiry-sweeper") {
        throw new Error(
          `Agpat ${this.node.path}: reservedConcurrency.${name} cannot be set: the ${name} always runs alone (reserved concurrency 1)`,
        );
      }
      if (!(name in FUNCTIONS)) {
        throw new Error(
          `Agpat ${this.node.path}: reservedConcurrency.${name} is not an agpat function`,
        );
      }
      ranged(`reservedConcurrency.${name}`, value as number, 1, 1000);
    }
    const make = (
      name: AgpatFunctionName | "expiry-notifier",
      layers: lambda.ILayerVersion[],
      sizing: { memoryMb: number; timeoutS: number },
      reservedConcurrency: number | undefined,
      environment: Record<string, string>,
    ): lambda.Function => {
      const logGroup = new logs.LogGroup(this, `${name}-logs`, {
        retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
        removalPolicy: retainInProd,
      });
      // The zip cargo-lambda's output is packed into: a .zip file asset is
      // uploaded as is, where a directory would be zipped again.
      const zip = path.join(props.lambdaAssets, ASSET_OF[name], "bootstrap.zip");
      if (!fs.existsSync(zip)) {
        throw new Error(
          `Agpat ${this.node.path}: ${zip} does not exist; build it with scripts/build-lambdas.sh`,
        );
      }
      skipCheckov(logGroup, CHECKOV_LOG_GROUP_SKIP);
      const fn = new lambda.Function(this, `${name}-fn`, {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: "bootstrap",
        code: lambda.Code.fromAsset(zip),
        memorySize: sizing.memoryMb,
        timeout: Duration.seconds(sizing.timeoutS),
        reservedConcurrentExecutions: reservedConcurrency,
        tracing: lambda.Tracing.ACTIVE,
        logGroup,
        layers,
        environment,
      });
      skipCheckov(fn, ...checkovFunctionSkips(name, reservedConcurrency));
      return fn;
    };
    const agpatFunction = (name: AgpatFunctionName, layers: lambda.ILayerVersion[]) =>
      make(name, layers, FUNCTIONS[name], reserved(name), environments[name]);
    this.functions = {
      authorizer: agpatFunction("authorizer", [this.manifestLayer]),
      "token-service": agpatFunction("token-service", [this.manifestLayer]),
      offboarding: agpatFunction("offboarding", []),
      // Run by an operator (aws lambda invoke, {"dryRun": true, ...}); no trigger.
      migrator: agpatFunction("migrator", []),
      // Run by its schedule (below).
      "expiry-sweeper": agpatFunction("expiry-sweeper", []),
    };
    if (ownerEmailFrom) {
      this.expiryNotifier = make(
        "expiry-notifier",
        [],
        EXPIRY_NOTIFIER,
        prod ? EXPIRY_NOTIFIER.reservedProd : undefined,
        {
          RUST_LOG: "info",
          AGPAT_EXPIRY_MODE: "notify",
          USER_POOL_ID: this.userPool.userPoolId,
          AGPAT_EMAIL_FROM: ownerEmailFrom,
        },
      );
    }
    // A published version pins its layers, so a new manifest must publish a
    // new version for the alias (layers count towards the version hash only
    // under a feature flag the adopter may not set).
    this.functions.authorizer.invalidateVersionBasedOn(manifestDigest);
    this.functions["token-service"].invalidateVersionBasedOn(manifestDigest);
    // API Gateway invokes the `live` aliases, never the functions: only an
    // alias shifts gradually (CodeDeploy) and holds provisioned concurrency
    // (otherwise the provisioned instances would sit idle while on-demand
    // ones serve every request).
    const shift = props.trafficShift ?? (prod ? "canary10Percent5Minutes" : "allAtOnce");
    // Before any traffic moves, each new version answers one request that
    // carries no credential (the events the Rust tests check): a version
    // that cannot start is rolled back however quiet the stage is.
    this.releases = {
      authorizer: new LiveAlias(this, "AuthorizerRelease", {
        function: this.functions.authorizer,
        shift,
        provisionedConcurrency: n("provisionedAuthorizerConcurrency"),
        preTrafficCheck: {
          payload: preTrafficEvent("authorizer"),
          expect: { errorMessage: "Unauthorized" },
        },
      }),
      "token-service": new LiveAlias(this, "TokenServiceRelease", {
        function: this.functions["token-service"],
        shift,
        preTrafficCheck: {
          payload: preTrafficEvent("token-service"),
          expect: { statusFrom: 400, statusTo: 499 },
        },
      }),
    };
    this.authorizerHandler = this.releases.authorizer.alias;

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
    skipCheckov(offboardingDlq, {
      id: "CKV_AWS_27",
      comment:
        "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); checkov recognises only a KMS key.",
    });
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

    // ---- Expiry: the sweeper on its schedule and, with ownerEmails, the
    // notifier on the agpat bus.
    const sweeper = this.functions["expiry-sweeper"];
    // A failed run is not retried: the next scheduled run redoes its work
    // from the checkpoint, so each run is one invocation, and the errors
    // alarm counts failed runs.
    sweeper.configureAsyncInvoke({ retryAttempts: 0 });
    this.expirySweepRule = new events.Rule(this, "ExpirySweep", {
      description: "Warn owners of tokens about to expire, and record expiries",
      schedule: events.Schedule.rate(this.sweepEvery),
      targets: [new targets.LambdaFunction(sweeper, { retryAttempts: 2 })],
    });
    if (this.expiryNotifier) {
      const notifier = this.expiryNotifier;
      const dlq = new sqs.Queue(this, "ExpiryNotifierDlq", {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      skipCheckov(dlq, {
        id: "CKV_AWS_27",
        comment:
          "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); checkov recognises only a KMS key.",
      });
      // As for offboarding: EventBridge dead-letters what it cannot deliver,
      // the function what still fails after Lambda's own retries.
      (notifier.node.defaultChild as lambda.CfnFunction).deadLetterConfig = {
        targetArn: dlq.queueArn,
      };
      allow(notifier, ["sqs:SendMessage"], [dlq.queueArn]);
      this.expiryNotifierDeadLetterQueue = dlq;
      this.expiryNotifierRule = new events.Rule(this, "ExpiryNotifierRule", {
        description: "Email a token's owner when it is about to expire, expired or leaked",
        eventBus: this.eventBus,
        eventPattern: {
          source: [AGPAT_EVENT_SOURCE],
          detailType: [...AGPAT_EVENT_DETAIL_TYPES],
        },
        targets: [
          new targets.LambdaFunction(notifier, {
            retryAttempts: 8,
            maxEventAge: Duration.hours(2),
            deadLetterQueue: dlq,
          }),
        ],
      });
    }

    // ---- The REQUEST authorizer and the /tokens routes.
    // With DPoP, no cache: a cached Allow would serve a request without its proof.
    const authorizerCacheTtl = this.dpop ? 0 : n("authorizerCacheTtlSeconds");
    // With allow-lists, the client address is part of the cache key: an
    // Allow cached for one address must never serve another.
    const identitySources = [
      apigw.IdentitySource.header("Authorization"),
      ...(props.ipAllowLists ? [apigw.IdentitySource.context("identity.sourceIp")] : []),
    ];
    this.authorizer = new apigw.RequestAuthorizer(this, "Authorizer", {
      // The alias when provisioned concurrency is on; the invoke permission
      // then names the alias too.
      handler: this.authorizerHandler,
      identitySources,
      resultsCacheTtl: Duration.seconds(authorizerCacheTtl),
    });
    // A stage applies authorizer settings only through a new deployment. The
    // app's authorizerChangeDeploymentLogicalId flag would see to it, but an
    // adopter's app may not set it: without a new deployment, turning
    // ipAllowLists on would leave the stage's cache keyed by the token alone
    // while the Lambdas honour allow-lists.
    this.stageDeployment = this.api.latestDeployment ?? props.deployment;
    const deployment = this.stageDeployment;
    if (deployment) {
      deployment.addToLogicalId({
        agpatAuthorizerSettings: { identitySources, ttl: authorizerCacheTtl },
      });
    } else if (this.dpop || props.ipAllowLists) {
      throw new Error(
        `Agpat ${this.node.path}: dpop and ipAllowLists change the authorizer's cache, which API Gateway applies only through a new deployment: with deploy: false, pass the stage's deployment as \`deployment\``,
      );
    }
    this.stage = props.stage ?? deploymentStageOf(this.api, this.node.path);
    this.addRateTiers(props.rateTiers ?? {}, this.stage);
    this.addTokenRoutes(this.stage, {
      tokenWrite: [n("tokenWriteRateLimit"), n("tokenWriteBurstLimit")],
      publicRevoke: [n("publicRevokeRateLimit"), n("publicRevokeBurstLimit")],
      secretScanning: [n("secretScanningRateLimit"), n("secretScanningBurstLimit")],
    });
    if (props.problemGatewayResponses ?? true) {
      addProblemGatewayResponses(this.api, this.dpop);
    }

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
      // enforceSSL gives the topic a policy, which replaces SNS's default
      // one: CloudWatch must then be allowed to publish, for this account's
      // alarms only (confused deputy).
      if (props.alertEmail) {
        new sns.Subscription(this, "AlertEmail", {
          topic: this.alertTopic,
          protocol: sns.SubscriptionProtocol.EMAIL,
          endpoint: props.alertEmail,
        });
      }
    }
    const alarmNumbers = Object.fromEntries(
      Object.entries(ALARM_NUMBERS).map(([key, { fallback, min, max }]) => [
        key,
        ranged(
          `alarms.${key}`,
          props.alarms?.[key as keyof AgpatAlarmOptions] ?? fallback,
          min,
          max,
        ),
      ]),
    ) as Required<AgpatAlarmOptions>;
    this.allowAlarmsToPublish();
    this.alarms = this.addAlarms(alarmNumbers);
    this.releaseAlarms = this.addReleaseAlarms(alarmNumbers);
    this.dashboard = this.addDashboard();
    if (props.budget) this.costBudget = this.createBudget(props.budget, ranged);

    const waf = props.waf ?? prod;
    if (waf) {
      const options = waf === true ? {} : waf;
      this.webAcl = this.addWebAcl(envName, {
        rateLimit: ranged(
          "waf.rateLimit",
          options.rateLimit ?? WAF_NUMBERS.rateLimit.fallback,
          WAF_NUMBERS.rateLimit.min,
          WAF_NUMBERS.rateLimit.max,
        ),
        revokeRateLimit: ranged(
          "waf.revokeRateLimit",
          options.revokeRateLimit ?? WAF_NUMBERS.revokeRateLimit.fallback,
          WAF_NUMBERS.revokeRateLimit.min,
          WAF_NUMBERS.revokeRateLimit.max,
        ),
        secretScanningRateLimit: ranged(
          "waf.secretScanningRateLimit",
          options.secretScanningRateLimit ?? WAF_NUMBERS.secretScanningRateLimit.fallback,
          WAF_NUMBERS.secretScanningRateLimit.min,
          WAF_NUMBERS.secretScanningRateLimit.max,
        ),
        logging: options.logging ?? true,
        retention: prod ? logs.RetentionDays.THREE_MONTHS : logs.RetentionDays.ONE_WEEK,
        removalPolicy: retainInProd,
      });
    }

    // cdk-nag findings on the functions' roles, each with its reason.
    for (const fn of [
      ...Object.values(this.functions),
      ...(this.expiryNotifier ? [this.expiryNotifier] : []),
    ]) {
      acknowledgeNagFindings(fn, LAMBDA_ROLE_SUPPRESSIONS);
    }

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
   * `from` of {@link AgpatOwnerEmails}, checked: a plain address (no display
   * name, no second `@`), since it becomes the `ses:FromAddress` condition
   * and names the SES identity.
   */
  private ownerEmailSender(from: string): string {
    if (
      typeof from !== "string" ||
      !/^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(from) ||
      from.length > 254
    ) {
      throw new Error(
        `Agpat ${this.node.path}: ownerEmails.from must be a plain address such as noreply@example.com, verified in SES (got ${from})`,
      );
    }
    return from;
  }

  /**
   * `expirySweepSchedule`, checked: whole minutes from 5 minutes to 8 hours
   * (the errors alarm looks at three intervals, and CloudWatch evaluates at
   * most one day).
   */
  private sweepInterval(every: Duration): Duration {
    const minutes = every.isUnresolved() ? NaN : every.toMinutes({ integral: false });
    if (!Number.isInteger(minutes) || minutes < 5 || minutes > 8 * 60) {
      throw new Error(
        `Agpat ${this.node.path}: expirySweepSchedule must be whole minutes from 5 minutes to 8 hours (got ${every.toHumanString()})`,
      );
    }
    return every;
  }

  /**
   * IAM least privilege: each function gets only what it calls, and
   * LeadingKeys conditions keep each role to the item kinds it owns. No role
   * but the token service may PutItem on the token table, so nothing else can
   * mint a token record. (TransactWriteItems is authorised per contained
   * Put/Update, so it needs no action of its own.)
   */
  /**
   * The DPoP switch and settings of both Lambdas, checked: `dpop` needs the
   * gateway's authorizer cache off, origins are https:// URLs, windows in range.
   */
  private dpopEnvironment(
    props: AgpatProps,
    ranged: (name: string, value: number, min: number, max: number) => number,
  ): { authorizer: Record<string, string>; service: Record<string, string> } {
    const dpop = props.dpop;
    if (!this.dpop || !dpop) return { authorizer: {}, service: {} };
    if ((props.authorizerCacheTtlSeconds ?? 0) !== 0) {
      throw new Error(
        `Agpat ${this.node.path}: dpop needs authorizerCacheTtlSeconds 0 (a cached Allow would serve a request without its proof; got ${props.authorizerCacheTtlSeconds})`,
      );
    }
    const origins = [...(dpop.origins ?? [])];
    const bad = origins.filter((o) => !/^https:\/\/[^\s/?#@]+(\/[^\s?#]*)?$/.test(o));
    if (bad.length > 0) {
      throw new Error(
        `Agpat ${this.node.path}: dpop.origins must be https:// URLs without query, fragment or credentials (got ${bad.join(", ")})`,
      );
    }
    return {
      authorizer: {
        AGPAT_DPOP: "on",
        ...(origins.length > 0 ? { DPOP_ORIGINS: origins.join(",") } : {}),
        DPOP_PROOF_MAX_AGE_SECONDS: String(
          ranged("dpop.proofMaxAgeSeconds", dpop.proofMaxAgeSeconds ?? 60, 5, 300),
        ),
        DPOP_CLOCK_SKEW_SECONDS: String(
          ranged("dpop.clockSkewSeconds", dpop.clockSkewSeconds ?? 5, 0, 60),
        ),
      },
      // Turning dpop on over a live stage: the new authorizer versions run
      // while the stage still caches (until the aliases have moved and the
      // new deployment is live), so tokens are bound only from a second
      // deployment (issueBoundTokens false, then true).
      service: (dpop.issueBoundTokens ?? true) ? { AGPAT_DPOP: "on" } : {},
    };
  }

  private grantLeastPrivilege(): void {
    const tableArn = this.table.tableArn;
    const gsiArn = `${tableArn}/index/${TABLE.gsi1.name}`;
    const expiryIndexArn = `${tableArn}/index/${TABLE.gsi2.name}`;
    const { authorizer, offboarding, migrator } = this.functions;
    const tokenService = this.functions["token-service"];
    const sweeper = this.functions["expiry-sweeper"];
    // History events: put whole (key, event, time, TTL) and only under
    // EVENTS#, so a role that records history cannot put any other item.
    const putEvents = {
      ...leadingKeys(KEY.events),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": EVENT_ITEM_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    };

    // Authorizer: reads token records, and may update only the use-tracking
    // attributes (last use, recent use sites) and the hash (rehash-on-verify:
    // a conditional write replacing an argon2 hash made with older
    // parameters by one made with the current ones), without reading
    // anything back. A use from a new IP address is recorded as a history
    // event in the same transaction.
    allow(authorizer, ["dynamodb:GetItem"], [tableArn], leadingKeys(KEY.token));
    allow(authorizer, ["dynamodb:UpdateItem"], [tableArn], {
      ...leadingKeys(KEY.token),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": AUTHORIZER_TOKEN_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });
    allow(authorizer, ["dynamodb:PutItem"], [tableArn], putEvents);
    // DPoP: the replay store. A spent proof is a key and a TTL under DPOP#,
    // put only if absent; nothing else (no token record) can be written so.
    if (this.dpop) {
      allow(authorizer, ["dynamodb:PutItem"], [tableArn], {
        ...leadingKeys(KEY.dpop),
        "ForAllValues:StringEquals": { "dynamodb:Attributes": ["PK", "SK", TABLE.ttlAttribute] },
        StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
      });
    }

    // Token service: token records, active sets and aliases; listing via
    // GSI1, enriched with each listed token's description and recent uses
    // (BatchGetItem, never the hash); history events, recorded and listed.
    allow(
      tokenService,
      ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
      [tableArn],
      leadingKeys(KEY.token, KEY.user, KEY.alias),
    );
    allow(tokenService, ["dynamodb:Query"], [gsiArn], leadingKeys(KEY.user));
    allow(tokenService, ["dynamodb:BatchGetItem"], [tableArn], {
      ...leadingKeys(KEY.token),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": [...TOKEN_SERVICE_BATCH_ATTRIBUTES] },
      StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
    });
    allow(tokenService, ["dynamodb:PutItem"], [tableArn], putEvents);
    allow(tokenService, ["dynamodb:Query"], [tableArn], leadingKeys(KEY.events));
    // It publishes agpat.token.leak_reported.
    allow(tokenService, ["events:PutEvents"], [this.eventBus.eventBusArn]);

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
    // The `revoked` history event, in each revocation's transaction.
    allow(offboarding, ["dynamodb:PutItem"], [tableArn], putEvents);
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

    // Migrator (shared/src/migrate.rs): scans token records for their key,
    // version, v1 scopes and expiry only (never a hash; Scan takes no
    // LeadingKeys condition), rewrites only their version, scope set and
    // expiry-index keys, and keeps per-segment checkpoints under MIGRATION#.
    // It never creates or deletes a token.
    allow(migrator, ["dynamodb:Scan"], [tableArn], {
      "ForAllValues:StringEquals": { "dynamodb:Attributes": MIGRATOR_SCAN_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"] },
    });
    allow(migrator, ["dynamodb:UpdateItem"], [tableArn], {
      ...leadingKeys(KEY.token),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": MIGRATOR_TOKEN_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });
    // Checkpoints: read whole (no projection, so no attribute condition),
    // written with only the key and `state`.
    allow(migrator, ["dynamodb:GetItem"], [tableArn], leadingKeys(KEY.migration));
    allow(migrator, ["dynamodb:PutItem"], [tableArn], {
      ...leadingKeys(KEY.migration),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": MIGRATOR_CHECKPOINT_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });

    // Expiry sweeper: finds tokens by expiry day on GSI2 (which projects no
    // hash), marks on each token which notice went out (nothing else: it
    // cannot revoke, extend or re-own a token), records `expiring` and
    // `expired` history events, keeps its checkpoint under SWEEP#, and
    // publishes the events on the agpat bus.
    allow(sweeper, ["dynamodb:Query"], [expiryIndexArn], leadingKeys(KEY.expiry));
    allow(
      sweeper,
      ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
      [tableArn],
      leadingKeys(KEY.sweep),
    );
    allow(sweeper, ["dynamodb:UpdateItem"], [tableArn], {
      ...leadingKeys(KEY.token),
      "ForAllValues:StringEquals": { "dynamodb:Attributes": EXPIRY_SWEEPER_TOKEN_ATTRIBUTES },
      StringEqualsIfExists: { "dynamodb:ReturnValues": ["NONE"] },
    });
    allow(sweeper, ["dynamodb:PutItem"], [tableArn], putEvents);
    allow(sweeper, ["events:PutEvents"], [this.eventBus.eventBusArn]);

    // Owner-email notifier: looks the owner's address up in the pool (by
    // sub), and sends only from the configured address. It never touches the
    // token table.
    const notifier = this.expiryNotifier;
    if (notifier && this.ownerEmailFrom) {
      const from = this.ownerEmailFrom;
      const stack = Stack.of(this);
      const identity = (name: string) =>
        stack.formatArn({ service: "ses", resource: "identity", resourceName: name });
      allow(notifier, ["cognito-idp:ListUsers"], [this.userPool.userPoolArn]);
      // The address's own identity, or its domain's: SES authorises the
      // send against whichever identity verified the address.
      allow(
        notifier,
        ["ses:SendEmail"],
        [identity(from), identity(from.slice(from.indexOf("@") + 1))],
        { StringEquals: { "ses:FromAddress": [from] } },
      );
    }
  }

  /**
   * The token service's routes on the API, from the generated route table,
   * with tight method throttles on the writes and on the public revocation.
   */
  /**
   * Each tier's API key values, fixed for this construct and tier: usage
   * plans meter by key value, and the authorizer must know it. They are no
   * secret with the key source `AUTHORIZER`: a client's `x-api-key` header
   * is ignored, only the authorizer's choice counts.
   */
  private rateTierKeyValues(tiers: Readonly<Record<string, AgpatRateTier>>): Map<string, string[]> {
    const keys = new Map<string, string[]>();
    for (const [name, tier] of Object.entries(tiers)) {
      const where = `Agpat ${this.node.path}: rateTiers.${name}`;
      if (!/^[a-z0-9-]{1,32}$/.test(name)) {
        throw new Error(`${where}: a tier name is 1 to 32 of a-z 0-9 -`);
      }
      const count = tier.keys ?? 1;
      for (const [field, value, max] of [
        ["rateLimit", tier.rateLimit, 10_000],
        ["burstLimit", tier.burstLimit, 5_000],
        ["keys", count, 16],
        ...(tier.quota ? [["quota.limit", tier.quota.limit, 2_000_000_000] as const] : []),
      ] as const) {
        if (!Number.isInteger(value) || value < 1 || value > max) {
          throw new Error(`${where}: ${field} must be an integer from 1 to ${max}`);
        }
      }
      keys.set(
        name,
        Array.from({ length: count }, (_, i) => {
          const digest = crypto
            .createHash("sha256")
            .update(`${this.node.addr}/${name}/${i}`)
            .digest("hex");
          return `agpat-${name}-${digest.slice(0, 32)}`;
        }),
      );
    }
    return keys;
  }

  /** One usage plan per rate tier, on `stage`, holding the tier's API keys. */
  private addRateTiers(tiers: Readonly<Record<string, AgpatRateTier>>, stage: apigw.Stage): void {
    if (this.rateTierKeys.size === 0) return;
    const cfnApi = this.api.node.defaultChild as apigw.CfnRestApi;
    if (cfnApi.apiKeySourceType !== undefined && cfnApi.apiKeySourceType !== "AUTHORIZER") {
      throw new Error(
        `Agpat ${this.node.path}: rateTiers need the API key source AUTHORIZER, but the API uses ${cfnApi.apiKeySourceType}`,
      );
    }
    cfnApi.apiKeySourceType = "AUTHORIZER";
    for (const [name, tier] of Object.entries(tiers)) {
      const plan = new apigw.UsagePlan(this, `RateTier-${name}`, {
        name: `${Names.uniqueId(this)}-${name}`.slice(0, 128),
        description: `agpat rate tier ${name}`,
        throttle: { rateLimit: tier.rateLimit, burstLimit: tier.burstLimit },
        ...(tier.quota
          ? { quota: { limit: tier.quota.limit, period: apigw.Period[tier.quota.period] } }
          : {}),
        apiStages: [{ api: this.api, stage }],
      });
      (this.rateTierKeys.get(name) ?? []).forEach((value, i) => {
        const key = new apigw.ApiKey(this, `RateTierKey-${name}-${i}`, {
          value,
          description: `agpat rate tier ${name}, key ${i}: named by the authorizer, never by clients`,
        });
        plan.addApiKey(key);
      });
    }
  }

  private addTokenRoutes(
    stage: apigw.Stage,
    throttles: {
      tokenWrite: [number, number];
      publicRevoke: [number, number];
      secretScanning: [number, number];
    },
  ): void {
    const integration = new apigw.LambdaIntegration(this.releases["token-service"].alias);
    const methodSettings: apigw.CfnStage.MethodSettingProperty[] = [];
    for (const route of TOKEN_ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      this.ownResources.add(resource);
      const method = resource.addMethod(
        route.method,
        integration,
        isPublic(route)
          ? { authorizationType: apigw.AuthorizationType.NONE }
          : {
              authorizer: this.authorizer,
              authorizationType: apigw.AuthorizationType.CUSTOM,
              ...(this.rateTiersEnforced ? { apiKeyRequired: true } : {}),
            },
      );
      this.ownMethods.add(method);
      if (isPublic(route)) {
        const why =
          route.path === SECRET_SCANNING_PATH
            ? "The secret-scanning partner endpoint is called by the scanner (GitHub), which cannot hold a Cognito or agpat credential; every report must carry the scanner's ECDSA signature, checked against its published keys, and the method is throttled."
            : "Leaked-token revocation must work for anyone holding the token (like GitHub's credential revocation API); throttled tightly, rate-limited by the web ACL, and it verifies the secret.";
        skipCheckov(method, { id: "CKV_AWS_59", comment: `Public by design: ${why}` });
        acknowledgeNagFindings(method, [
          { id: "AwsSolutions-APIG4", reason: why },
          { id: "AwsSolutions-COG4", reason: why },
        ]);
      } else {
        acknowledgeNagFindings(method, [CUSTOM_AUTHORIZER_SUPPRESSION]);
      }
      const limits =
        route.path === SECRET_SCANNING_PATH
          ? throttles.secretScanning
          : isPublic(route)
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
        acknowledgeNagFindings(method, [
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
      // With rate tiers every protected method requires the key the
      // authorizer names (usage plans meter only methods that require one).
      const apiKeyRequired = this.rateTiersEnforced;
      if (apiKeyRequired) cfn.apiKeyRequired = true;
      if (current !== apigw.AuthorizationType.NONE || cfn.authorizerId !== undefined) {
        // Already agpat's authorizer, or another one the check will refuse.
        acknowledgeNagFindings(method, [CUSTOM_AUTHORIZER_SUPPRESSION]);
        this.stageDeployment?.addToLogicalId({ agpatApiKey: { method: key, apiKeyRequired } });
        continue;
      }
      cfn.authorizationType = apigw.AuthorizationType.CUSTOM;
      cfn.authorizerId = this.authorizer.authorizerId;
      acknowledgeNagFindings(method, [CUSTOM_AUTHORIZER_SUPPRESSION]);
      // The deployment's logical id covers each method's properties as they
      // were when it was added; without this, a changed authorization would
      // not redeploy the stage.
      this.stageDeployment?.addToLogicalId({
        agpatAuthorizer: { method: key, authorizerId: cfn.authorizerId, apiKeyRequired },
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
        // A CORS preflight as Resource.addCorsPreflight renders it: answered by
        // API Gateway itself (MOCK), reaching no backend, carrying no
        // credential. It needs no manifest route and must get no authorizer.
        if (isCorsPreflight(props)) continue;
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

  /**
   * Alarms on real trouble, to the alert topic (ALARM and OK). Rates are
   * guarded by a minimum volume, `IF(volume >= N, 100 * part / volume, 0)`,
   * so two requests at night with one failure cannot page; each alarm needs
   * M of N 5-minute periods, except a leaked-token report. The authorizer's
   * Lambda `Errors` metric is not used: every 401 is an error to Lambda.
   */
  /**
   * Lets this account's CloudWatch alarms publish to the alert topic. A
   * topic policy (enforceSSL, the budget's statement) replaces SNS's default
   * policy, which is what otherwise lets alarms publish. An imported topic's
   * policy cannot be changed here: it must grant this itself.
   */
  private allowAlarmsToPublish(): void {
    const stack = Stack.of(this);
    this.alertTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        actions: ["sns:Publish"],
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        resources: [this.alertTopic.topicArn],
        conditions: {
          StringEquals: { "aws:SourceAccount": stack.account },
          ArnLike: {
            "aws:SourceArn": `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*`,
          },
        },
      }),
    );
  }

  /**
   * Alarms CodeDeploy watches while a release shifts traffic: one-minute
   * periods, 2 of 3, so a canary of a few minutes can still be stopped; the
   * same volume guard as the operational alarms, so a quiet stage cannot
   * roll back a good release on one failure.
   */
  private addReleaseAlarms(t: Required<AgpatAlarmOptions>): cw.Alarm[] {
    const period = Duration.minutes(1);
    const shape = {
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    };
    const { outcomes, total } = decisionMetrics(this.metricsNamespace, period);
    const failClosed = new cw.Alarm(this, "ReleaseFailClosed", {
      ...shape,
      metric: guardedShare({
        part: "error",
        volume: "total",
        usingMetrics: { ...outcomes, total },
        minimum: t.minimumDecisions,
        failures: t.minimumFailures,
        period,
        label: "fail-closed decisions (%), per minute",
      }),
      threshold: t.failClosedPercent,
      alarmDescription: `Release guard: the authorizer failed closed on at least ${t.failClosedPercent}% of a minute's decisions`,
    });
    // The stage by its literal name: a Ref to the stage would make the
    // deployment group (which the stage's authorizer depends on through the
    // alias) depend on the stage, a cycle.
    const stageName = (this.stage.node.defaultChild as apigw.CfnStage).stageName;
    if (!stageName || Token.isUnresolved(stageName)) {
      throw new Error(
        `Agpat ${this.node.path}: the stage needs a literal stageName for the release alarms`,
      );
    }
    const stageMetric = (metricName: string) =>
      new cw.Metric({
        namespace: "AWS/ApiGateway",
        metricName,
        dimensionsMap: { ApiName: this.api.restApiName, Stage: stageName },
        statistic: "Sum",
        period,
      });
    const api5xx = new cw.Alarm(this, "ReleaseApi5xx", {
      ...shape,
      metric: guardedShare({
        part: "errors",
        volume: "requests",
        usingMetrics: { errors: stageMetric("5XXError"), requests: stageMetric("Count") },
        minimum: t.minimumRequests,
        failures: t.minimumFailures,
        period,
        label: "5XX (%), per minute",
      }),
      threshold: t.api5xxPercent,
      alarmDescription: `Release guard: at least ${t.api5xxPercent}% of a minute's requests got a 5XX (a crashing authorizer included)`,
    });
    // The token service answers its own errors as HTTP responses: a Lambda
    // error of the live alias is a crash or a timeout of the new code.
    const tokenServiceCrashes = new cw.Alarm(this, "ReleaseTokenServiceErrors", {
      ...shape,
      metric: guardedShare({
        part: "errors",
        volume: "invocations",
        usingMetrics: {
          errors: this.releases["token-service"].alias.metricErrors({ period, statistic: "Sum" }),
          invocations: this.releases["token-service"].alias.metricInvocations({
            period,
            statistic: "Sum",
          }),
        },
        minimum: t.minimumRequests,
        failures: t.minimumFailures,
        period,
        label: "token-service crashes (%), per minute",
      }),
      threshold: t.tokenServiceErrorPercent,
      alarmDescription: `Release guard: the token service's live alias crashed or timed out on at least ${t.tokenServiceErrorPercent}% of a minute's invocations`,
    });
    const alarms = [failClosed, api5xx, tokenServiceCrashes];
    for (const a of alarms) {
      a.addAlarmAction(new cwActions.SnsAction(this.alertTopic));
      a.addOkAction(new cwActions.SnsAction(this.alertTopic));
    }
    this.releases.authorizer.addAlarm(failClosed);
    this.releases.authorizer.addAlarm(api5xx);
    this.releases["token-service"].addAlarm(tokenServiceCrashes);
    this.releases["token-service"].addAlarm(api5xx);
    return alarms;
  }

  private addAlarms(t: Required<AgpatAlarmOptions>): cw.Alarm[] {
    const period = Duration.minutes(5);
    const alarms: cw.Alarm[] = [];
    const alarm = (
      id: string,
      metric: cw.IMetric,
      threshold: number,
      description: string,
      shape: {
        evaluationPeriods: number;
        datapointsToAlarm: number;
        treatMissingData: cw.TreatMissingData;
      },
    ) => {
      const created = new cw.Alarm(this, id, {
        metric,
        threshold,
        ...shape,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        alarmDescription: description,
      });
      created.addAlarmAction(new cwActions.SnsAction(this.alertTopic));
      created.addOkAction(new cwActions.SnsAction(this.alertTopic));
      alarms.push(created);
      return created;
    };
    // Rates: 3 of 5 periods (15 of 25 minutes) rides out a blip. No data
    // means no traffic, which is healthy.
    const sustained = {
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    };
    // Counts that should be zero: 2 of 3 periods.
    const repeated = {
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    };
    const ns = this.metricsNamespace;
    const { outcomes, total } = decisionMetrics(ns, period);
    const decisionShare = (outcome: keyof typeof outcomes, label: string, failures: boolean) =>
      guardedShare({
        part: outcome,
        volume: "total",
        usingMetrics: { ...outcomes, total },
        minimum: t.minimumDecisions,
        failures: failures ? t.minimumFailures : undefined,
        period,
        label,
      });
    // The ids below become the math's variable names (and the alarms' logical ids).
    const rate = (part: cw.IMetric, volume: cw.IMetric, names: [string, string], minimum: number) =>
      guardedShare({
        part: names[0],
        volume: names[1],
        usingMetrics: { [names[0]]: part, [names[1]]: volume },
        minimum,
        failures: t.minimumFailures,
        period,
      });

    alarm(
      "FailClosedRate",
      decisionShare("error", "fail-closed decisions (%)", true),
      t.failClosedPercent,
      `The authorizer failed closed (Outcome=error: store or JWKS unreachable, bad config) on at least ${t.failClosedPercent}% of decisions`,
      sustained,
    );
    alarm(
      "UnauthorizedSpike",
      decisionShare("unauthorized", "unauthorized decisions (%)", false),
      t.unauthorizedPercent,
      `At least ${t.unauthorizedPercent}% of decisions were unauthorized: credential stuffing, a leaked token's revocation, or a broken client`,
      sustained,
    );
    // One event must page: a token was reported leaked (and revoked); its
    // owner and whoever leaked it need to act now, and nothing repeats it.
    alarm(
      "LeakedTokenReported",
      new cw.Metric({
        namespace: ns,
        metricName: "TokenOperations",
        dimensionsMap: { Operation: "token.leaked_revoke", Outcome: "success" },
        statistic: "Sum",
        period,
      }),
      1,
      "A personal access token was reported leaked and revoked: tell its owner, find where it leaked",
      {
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      },
    );
    const tokenService = this.functions["token-service"];
    alarm(
      "TokenServiceErrorRate",
      rate(
        tokenService.metricErrors({ period, statistic: "Sum" }),
        tokenService.metricInvocations({ period, statistic: "Sum" }),
        ["errors", "invocations"],
        t.minimumRequests,
      ),
      t.tokenServiceErrorPercent,
      `The token service crashed or timed out on at least ${t.tokenServiceErrorPercent}% of invocations`,
      sustained,
    );
    const throttleIds: Record<AgpatFunctionName, string> = {
      authorizer: "AuthorizerThrottles",
      "token-service": "TokenServiceThrottles",
      offboarding: "OffboardingThrottles",
      migrator: "MigratorThrottles",
      "expiry-sweeper": "ExpirySweeperThrottles",
    };
    for (const [name, fn] of Object.entries(this.functions) as [
      AgpatFunctionName,
      lambda.Function,
    ][]) {
      alarm(
        throttleIds[name],
        fn.metricThrottles({ period, statistic: "Sum" }),
        1,
        `${name} was throttled: its reserved concurrency or the account's quota is exhausted`,
        repeated,
      );
    }
    alarm(
      "Api5xxRate",
      rate(
        this.stage.metricServerError({ period, statistic: "Sum" }),
        this.stage.metricCount({ period, statistic: "Sum" }),
        ["errors", "requests"],
        t.minimumRequests,
      ),
      t.api5xxPercent,
      `At least ${t.api5xxPercent}% of the stage's requests got a 5XX (a failed authorizer included)`,
      sustained,
    );
    alarm(
      "ApiP99Latency",
      new cw.MathExpression({
        expression: `IF(requests >= ${t.minimumRequests}, p99, 0)`,
        usingMetrics: {
          p99: this.stage.metricLatency({ period, statistic: "p99" }),
          requests: this.stage.metricCount({ period, statistic: "Sum" }),
        },
        period,
      }),
      t.apiP99LatencyMs,
      `The stage's p99 latency reached ${t.apiP99LatencyMs} ms`,
      sustained,
    );
    alarm(
      "TableThrottles",
      new cw.MathExpression({
        expression: "FILL(reads, 0) + FILL(writes, 0)",
        usingMetrics: {
          reads: this.table.metric("ReadThrottleEvents", { period, statistic: "Sum" }),
          writes: this.table.metric("WriteThrottleEvents", { period, statistic: "Sum" }),
        },
        label: "throttle events",
        period,
      }),
      1,
      "The token table throttled reads or writes",
      repeated,
    );
    alarm(
      "TableSystemErrors",
      this.table.metricSystemErrorsForOperations({
        operations: [
          dynamodb.Operation.GET_ITEM,
          dynamodb.Operation.PUT_ITEM,
          dynamodb.Operation.UPDATE_ITEM,
          dynamodb.Operation.QUERY,
          dynamodb.Operation.SCAN,
        ],
        period,
        statistic: "Sum",
      }),
      1,
      "DynamoDB returned internal errors on the token table",
      repeated,
    );
    // A dead letter stays until redriven, so 2 of 3 periods only delays the
    // page by one period; without metrics the queue is empty and idle.
    alarm(
      "OffboardingDlqMessages",
      this.offboardingDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period,
        statistic: "Maximum",
      }),
      1,
      "Offboarding events dead-lettered: a user's tokens may still be active; redrive the queue",
      repeated,
    );
    // Failed runs are retried (and dead-lettered, alarmed above); errors in 2
    // of 3 periods mean offboarding keeps failing.
    alarm(
      "OffboardingErrors",
      this.functions.offboarding.metricErrors({ period, statistic: "Sum" }),
      1,
      "Offboarding function returned errors",
      repeated,
    );
    // The sweeper runs once per schedule interval and is never retried, so
    // its errors are counted per interval: two failed runs of the last three
    // mean expiry warnings are not going out (one failure is caught up by
    // the next run).
    alarm(
      "ExpirySweeperErrors",
      this.functions["expiry-sweeper"].metricErrors({
        period: this.sweepEvery,
        statistic: "Sum",
      }),
      1,
      "The expiry sweeper failed two of its last three runs: expiry warnings and expired notices are not going out",
      repeated,
    );
    if (this.expiryNotifier && this.expiryNotifierDeadLetterQueue) {
      alarm(
        "ExpiryNotifierDlqMessages",
        this.expiryNotifierDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period,
          statistic: "Maximum",
        }),
        1,
        "Owner emails dead-lettered: owners were not told of an expiring, expired or leaked token; fix the cause (SES identity, quota) and redrive the queue",
        repeated,
      );
      alarm(
        "ExpiryNotifierErrors",
        this.expiryNotifier.metricErrors({ period, statistic: "Sum" }),
        1,
        "The owner-email notifier returned errors",
        repeated,
      );
      alarm(
        "ExpiryNotifierThrottles",
        this.expiryNotifier.metricThrottles({ period, statistic: "Sum" }),
        1,
        "expiry-notifier was throttled: its reserved concurrency or the account's quota is exhausted",
        repeated,
      );
    }
    return alarms;
  }

  /** One dashboard: decisions, latency, cache, tokens, the API, the table, and every alarm. */
  private addDashboard(): cw.Dashboard {
    const period = Duration.minutes(5);
    const ns = this.metricsNamespace;
    const emf = (metricName: string, dimensionsMap: Record<string, string>, statistic = "Sum") =>
      new cw.Metric({ namespace: ns, metricName, dimensionsMap, statistic, period });
    const outcomes = ["allow", "deny", "unauthorized", "error"];
    const methods = ["jwt", "pat", "none"];
    const dashboard = new cw.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.hours(3),
    });
    dashboard.addWidgets(
      new cw.AlarmStatusWidget({
        title: "agpat alarms",
        alarms: [...this.alarms, ...this.releaseAlarms],
        width: 24,
        height: 4,
      }),
    );
    dashboard.addWidgets(
      new cw.GraphWidget({
        title: "Decisions by outcome",
        left: outcomes.map((o) => emf("Decisions", { Outcome: o }).with({ label: o })),
        stacked: true,
        width: 12,
      }),
      new cw.GraphWidget({
        title: "Decisions by method and outcome",
        left: methods.flatMap((m) =>
          outcomes.map((o) =>
            emf("Decisions", { Method: m, Outcome: o }).with({ label: `${m} ${o}` }),
          ),
        ),
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cw.GraphWidget({
        title: "Decision latency (ms)",
        left: methods.flatMap((m) =>
          ["p50", "p99"].map((p) =>
            emf("DecisionLatency", { Method: m, Outcome: "allow" }, p).with({
              label: `${m} allow ${p}`,
            }),
          ),
        ),
        width: 12,
      }),
      // The authorizer emits these counters without dimensions
      // (authorizer/src/metrics.rs: process-wide counters, attributed to
      // whichever decision observes them first).
      new cw.GraphWidget({
        title: "Positive-cache hits and misses vs argon2 evaluations; JWKS fetches",
        left: [
          emf("CacheHits", {}).with({ label: "cache hits" }),
          emf("CacheMisses", {}).with({ label: "cache misses" }),
          emf("Argon2Evaluations", {}).with({ label: "argon2 evaluations" }),
        ],
        right: [emf("JwksFetches", {}).with({ label: "JWKS fetches" })],
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cw.GraphWidget({
        title: "Token operations",
        // token-service/src/handlers.rs and audit.rs: the audited operations and outcomes.
        left: [
          "token.create",
          "token.update",
          "token.revoke",
          "token.revoke_self",
          "token.revoke_all",
          "token.rotate",
          "token.leaked_revoke",
          "token.secret_scanning_revoke",
        ].flatMap((op) =>
          ["success", "no_change", "denied", "refused"].map((o) =>
            emf("TokenOperations", { Operation: op, Outcome: o }).with({ label: `${op} ${o}` }),
          ),
        ),
        width: 12,
      }),
      new cw.GraphWidget({
        title: "API requests, 4XX, 5XX",
        left: [
          this.stage.metricCount({ period, statistic: "Sum" }),
          this.stage.metricClientError({ period, statistic: "Sum" }),
          this.stage.metricServerError({ period, statistic: "Sum" }),
        ],
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cw.GraphWidget({
        title: "API latency (ms)",
        left: ["p50", "p99"].map((p) => this.stage.metricLatency({ period, statistic: p })),
        width: 12,
      }),
      new cw.GraphWidget({
        title: "Token table throttles",
        left: [
          this.table.metric("ReadThrottleEvents", { period, statistic: "Sum" }),
          this.table.metric("WriteThrottleEvents", { period, statistic: "Sum" }),
        ],
        width: 12,
      }),
    );
    // Expiry: one sweep per interval; owner emails, when on.
    const expiry = [
      ["sweeper", this.functions["expiry-sweeper"]],
      ...(this.expiryNotifier ? [["notifier", this.expiryNotifier] as const] : []),
    ] as const;
    dashboard.addWidgets(
      new cw.GraphWidget({
        title: "Expiry sweeps and owner emails: invocations and errors",
        left: expiry.flatMap(([label, fn]) => [
          fn
            .metricInvocations({ period, statistic: "Sum" })
            .with({ label: `${label} invocations` }),
          fn.metricErrors({ period, statistic: "Sum" }).with({ label: `${label} errors` }),
        ]),
        width: 12,
      }),
    );
    return dashboard;
  }

  /**
   * A regional web ACL on the stage. Rules in order: the per-IP limit on the
   * public revocation route (scoped down to `POST` on any path containing
   * `/tokens/revoke` once URL-decoded and lower-cased, so encodings and a
   * trailing slash do not escape it), the
   * general per-IP limit, then the AWS common and known-bad-inputs rule sets.
   */
  private addWebAcl(
    envName: string,
    o: {
      rateLimit: number;
      revokeRateLimit: number;
      secretScanningRateLimit: number;
      logging: boolean;
      retention: logs.RetentionDays;
      removalPolicy: RemovalPolicy;
    },
  ): wafv2.CfnWebACL {
    const visibility = (name: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      // Sampled requests keep whole requests, headers included, for hours,
      // and logging's redaction does not apply to them: they would hold
      // live bearer tokens for anyone allowed wafv2:GetSampledRequests.
      sampledRequestsEnabled: false,
      metricName: `agpat-${envName}-${name}`,
    });
    const revoke = TOKEN_ROUTES.find((route) => isPublic(route) && route.path === "/tokens/revoke");
    if (!revoke) throw new Error(`Agpat ${this.node.path}: the route table has no /tokens/revoke`);
    const match = (
      fieldToMatch: wafv2.CfnWebACL.FieldToMatchProperty,
      searchString: string,
      positionalConstraint: string,
      textTransformations: wafv2.CfnWebACL.TextTransformationProperty[] = [
        { priority: 0, type: "NONE" },
      ],
    ): wafv2.CfnWebACL.StatementProperty => ({
      byteMatchStatement: { fieldToMatch, searchString, positionalConstraint, textTransformations },
    });
    const rateRule = (
      name: string,
      priority: number,
      limit: number,
      scopeDownStatement?: wafv2.CfnWebACL.StatementProperty,
    ): wafv2.CfnWebACL.RuleProperty => ({
      name,
      priority,
      action: { block: {} },
      statement: {
        rateBasedStatement: {
          limit,
          aggregateKeyType: "IP",
          evaluationWindowSec: 300,
          scopeDownStatement,
        },
      },
      visibilityConfig: visibility(name),
    });
    // The partner route, decoded and lower-cased anywhere in the path.
    const partnerPath = match({ uriPath: {} }, SECRET_SCANNING_PATH, "CONTAINS", [
      { priority: 0, type: "URL_DECODE" },
      { priority: 1, type: "LOWERCASE" },
    ]);
    const managed = (
      name: string,
      priority: number,
      group: string,
    ): wafv2.CfnWebACL.RuleProperty => ({
      name,
      priority,
      overrideAction: { none: {} },
      statement: {
        managedRuleGroupStatement: {
          vendorName: "AWS",
          name: group,
          // Scripts and CLIs calling with a PAT often send no User-Agent.
          ruleActionOverrides:
            group === "AWSManagedRulesCommonRuleSet"
              ? [{ name: "NoUserAgent_HEADER", actionToUse: { count: {} } }]
              : undefined,
          // The common set blocks bodies over 8 KB and inspects them for
          // XSS and path traversal: a partner's batch report is larger, and
          // its `url` fields are chosen by whoever committed the leak. The
          // report's signature is that route's control.
          scopeDownStatement:
            group === "AWSManagedRulesCommonRuleSet"
              ? { notStatement: { statement: partnerPath } }
              : undefined,
        },
      },
      visibilityConfig: visibility(name),
    });
    const acl = new wafv2.CfnWebACL(this, "WebAcl", {
      scope: "REGIONAL",
      defaultAction: { allow: {} },
      visibilityConfig: visibility("web-acl"),
      rules: [
        rateRule("revoke-rate-per-ip", 0, o.revokeRateLimit, {
          andStatement: {
            statements: [
              match({ method: {} }, revoke.method, "EXACTLY"),
              // Decoded and lower-cased, and anywhere in the path, so that
              // `/tokens/revok%65`, a trailing slash or another stage prefix
              // still counts against the tight limit.
              match({ uriPath: {} }, revoke.path, "CONTAINS", [
                { priority: 0, type: "URL_DECODE" },
                { priority: 1, type: "LOWERCASE" },
              ]),
            ],
          },
        }),
        rateRule("rate-per-ip", 1, o.rateLimit),
        managed("aws-common", 2, "AWSManagedRulesCommonRuleSet"),
        managed("aws-known-bad-inputs", 3, "AWSManagedRulesKnownBadInputsRuleSet"),
        rateRule("secret-scanning-rate-per-ip", 4, o.secretScanningRateLimit, {
          andStatement: {
            statements: [match({ method: {} }, "POST", "EXACTLY"), partnerPath],
          },
        }),
      ],
    });
    new wafv2.CfnWebACLAssociation(this, "WebAclAssociation", {
      resourceArn: this.stage.stageArn,
      webAclArn: acl.attrArn,
    });
    if (o.logging) {
      const stack = Stack.of(this);
      // WAF requires the aws-waf-logs- prefix, and the ARN without ":*".
      const logGroupName = `aws-waf-logs-agpat-${envName}-${stack.stackName}`.slice(0, 512);
      const group = new logs.LogGroup(this, "WafLogs", {
        logGroupName,
        retention: o.retention,
        removalPolicy: o.removalPolicy,
      });
      skipCheckov(group, CHECKOV_LOG_GROUP_SKIP);
      const logging = new wafv2.CfnLoggingConfiguration(this, "WafLogging", {
        resourceArn: acl.attrArn,
        logDestinationConfigs: [
          stack.formatArn({
            service: "logs",
            resource: "log-group",
            resourceName: logGroupName,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
        // Credentials never reach a log.
        redactedFields: [
          { singleHeader: { Name: "authorization" } },
          { singleHeader: { Name: "cookie" } },
        ],
      });
      logging.node.addDependency(group);
    }
    return acl;
  }

  /**
   * A monthly cost budget of this application in this environment (resources
   * tagged `app=agpat` and `env=<envName>`, both required), alerting the topic
   * at each actual threshold and when the forecast passes `forecastPercent`.
   */
  private createBudget(
    budget: AgpatBudget,
    ranged: (name: string, value: number, min: number, max: number) => number,
  ): budgets.CfnBudget {
    if (!(budget.monthlyUsd >= 1 && budget.monthlyUsd <= 1_000_000)) {
      throw new Error(`Agpat ${this.node.path}: budget.monthlyUsd must be from 1 to 1000000`);
    }
    if (budget.thresholdsPercent.some((t) => !(t > 0))) {
      throw new Error(`Agpat ${this.node.path}: budget.thresholdsPercent must be positive`);
    }
    const forecast = ranged("budget.forecastPercent", budget.forecastPercent ?? 100, 1, 1000);
    const stack = Stack.of(this);
    // Only AWS Budgets acting for this account may publish (confused deputy).
    this.alertTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        actions: ["sns:Publish"],
        principals: [new iam.ServicePrincipal("budgets.amazonaws.com")],
        resources: [this.alertTopic.topicArn],
        conditions: {
          StringEquals: { "aws:SourceAccount": stack.account },
          ArnLike: { "aws:SourceArn": `arn:${stack.partition}:budgets::${stack.account}:*` },
        },
      }),
    );
    const tag = (key: string, value: string): budgets.CfnBudget.ExpressionProperty => ({
      tags: { key, values: [value], matchOptions: ["EQUALS"] },
    });
    const subscribers = [{ subscriptionType: "SNS", address: this.alertTopic.topicArn }];
    return new budgets.CfnBudget(this, "Budget", {
      budget: {
        budgetName: budget.name,
        budgetType: "COST",
        timeUnit: "MONTHLY",
        budgetLimit: { amount: budget.monthlyUsd, unit: "USD" },
        // Both tags (And): CostFilters would OR values of the same key, and
        // so count every application's cost in the environment.
        filterExpression: { and: [tag("app", "agpat"), tag("env", this.envName)] },
      },
      notificationsWithSubscribers: [
        ...budget.thresholdsPercent.map((threshold) => ({
          notification: {
            notificationType: "ACTUAL",
            comparisonOperator: "GREATER_THAN",
            threshold,
            thresholdType: "PERCENTAGE",
          },
          subscribers,
        })),
        {
          notification: {
            notificationType: "FORECASTED",
            comparisonOperator: "GREATER_THAN",
            threshold: forecast,
            thresholdType: "PERCENTAGE",
          },
          subscribers,
        },
      ],
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

/** Checkov on agpat's log groups: accepted, as no credential is ever logged. */
const CHECKOV_LOG_GROUP_SKIP: CheckovSkip = {
  id: "CKV_AWS_158",
  comment:
    "CloudWatch Logs encrypts every log group at rest; agpat never logs a credential (WAF logs redact Authorization), so a customer-managed key adds cost and key-policy risk only.",
};

/** Checkov on agpat's functions: the findings that do not apply, and why. */
function checkovFunctionSkips(
  name: AgpatFunctionName | "expiry-notifier",
  reserved: number | undefined,
): CheckovSkip[] {
  const skips: CheckovSkip[] = [
    {
      id: "CKV_AWS_117",
      comment:
        "Calls only AWS public endpoints (DynamoDB, Cognito and its JWKS URL, EventBridge, SES, CloudWatch, X-Ray); a VPC would need NAT or endpoints and add cold-start latency, protecting nothing.",
    },
    {
      id: "CKV_AWS_173",
      comment:
        "The environment holds resource names and settings, never a secret; Lambda encrypts it at rest with its service key.",
    },
  ];
  // Offboarding and the notifier are invoked asynchronously and dead-letter
  // (DeadLetterConfig).
  if (name !== "offboarding" && name !== "expiry-notifier") {
    skips.push({
      id: "CKV_AWS_116",
      comment:
        name === "migrator"
          ? "Invoked synchronously by an operator (aws lambda invoke), who sees the error; a dead-letter queue applies only to asynchronous invocations."
          : name === "expiry-sweeper"
            ? "Invoked by its schedule and never retried: the next scheduled run redoes a failed run's work from its checkpoint, so a dead letter would hold nothing to redrive; failed runs alarm."
            : "Invoked synchronously by API Gateway, which answers the caller; a dead-letter queue applies only to asynchronous invocations.",
    });
  }
  if (reserved === undefined) {
    skips.push({
      id: "CKV_AWS_115",
      comment:
        name === "expiry-notifier"
          ? "No reserved concurrency in dev: a fresh account's limit of 10 leaves nothing to reserve. Prod reserves 2, which also paces SES sends."
          : "No reserved concurrency in dev unless reservedConcurrency sets it: a fresh account's limit of 10 leaves nothing to reserve. Prod reserves.",
    });
  }
  return skips;
}

/**
 * cdk-nag findings accepted on every Lambda role, scoped so that any other
 * managed policy or wildcard still fails the check. Exported for adopters'
 * own Lambdas built the same way: `acknowledgeNagFindings(fn, LAMBDA_ROLE_SUPPRESSIONS)`.
 */
export const LAMBDA_ROLE_SUPPRESSIONS: NagAcknowledgment[] = [
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

const CUSTOM_AUTHORIZER_SUPPRESSION: NagAcknowledgment = {
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

/**
 * Whether a rendered method is a CORS preflight: `OPTIONS`, a MOCK
 * integration, no authorization, no authorizer and no API key.
 */
function isCorsPreflight(props: Record<string, unknown>): boolean {
  const integration = props.Integration as { Type?: unknown } | undefined;
  return (
    props.HttpMethod === "OPTIONS" &&
    (props.AuthorizationType ?? apigw.AuthorizationType.NONE) === apigw.AuthorizationType.NONE &&
    props.AuthorizerId === undefined &&
    props.ApiKeyRequired !== true &&
    integration?.Type === "MOCK"
  );
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

/**
 * The pre-traffic check's event for `name` (`hooks/pre-traffic/events/`),
 * the same file the authorizer's and the token service's tests send.
 */
function preTrafficEvent(name: "authorizer" | "token-service"): unknown {
  const file = path.join(__dirname, "hooks", "pre-traffic", "events", `${name}.json`);
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

/**
 * The authorizer's `Decisions` per outcome and their total, summed over
 * `period` (the ids become the metric math's variable names).
 */
function decisionMetrics(namespace: string, period: Duration) {
  const decisions = (outcome: string) =>
    new cw.Metric({
      namespace,
      metricName: "Decisions",
      dimensionsMap: { Outcome: outcome },
      statistic: "Sum",
      period,
    });
  const outcomes = {
    allow: decisions("allow"),
    deny: decisions("deny"),
    unauthorized: decisions("unauthorized"),
    error: decisions("error"),
  };
  const total = new cw.MathExpression({
    expression: "FILL(allow, 0) + FILL(deny, 0) + FILL(unauthorized, 0) + FILL(error, 0)",
    usingMetrics: outcomes,
    period,
  });
  return { outcomes, total };
}

/**
 * `part` as a percentage of `volume`, once `volume` reaches `minimum`; below
 * it a share means little, but `failures` or more parts (when given) still
 * count as 100 %: a quiet stage failing every request is an outage. The
 * record's keys become the metric math's variable names.
 */
function guardedShare(o: {
  part: string;
  volume: string;
  usingMetrics: Record<string, cw.IMetric>;
  minimum: number;
  failures?: number;
  period: Duration;
  label?: string;
}): cw.MathExpression {
  const below = o.failures === undefined ? "0" : `IF(FILL(${o.part}, 0) >= ${o.failures}, 100, 0)`;
  return new cw.MathExpression({
    expression: `IF(${o.volume} >= ${o.minimum}, 100 * FILL(${o.part}, 0) / ${o.volume}, ${below})`,
    usingMetrics: o.usingMetrics,
    label: o.label,
    period: o.period,
  });
}

/**
 * The API's gateway responses as RFC 9457 problems (`urn:agpat:problem:<slug>`),
 * each with the request id for support. The 401, 403, 429 and 404 keep their
 * fixed status; `DEFAULT_4XX` and `DEFAULT_5XX` keep whatever status API
 * Gateway chose. A 4XX names its response type (a fixed enum such as
 * `BAD_REQUEST_BODY`, never request data); a 5XX says nothing more than
 * that it failed: `$context.error.message` can carry integration or
 * authorizer internals, and is never rendered.
 */
function addProblemGatewayResponses(api: apigw.RestApi, dpop: boolean): void {
  // The bodies are the local gateway's too: both come from
  // shared/src/gateway.rs through generated/routes.json.
  for (const g of GATEWAY_RESPONSES) {
    const fields: Record<string, string | number> = {
      type: `urn:agpat:problem:${g.slug}`,
      title: g.title,
      ...(g.status === null ? {} : { status: g.status }),
      ...(g.code ? { code: "$context.error.responseType" } : {}),
      requestId: "$context.requestId",
    };
    const type = (apigw.ResponseType as unknown as Record<string, apigw.ResponseType>)[
      g.responseType
    ];
    if (!type) throw new Error(`unknown gateway response type ${g.responseType}`);
    api.addGatewayResponse(GATEWAY_RESPONSE_IDS[g.responseType] ?? g.responseType, {
      type,
      ...(g.status === null ? {} : { statusCode: String(g.status) }),
      responseHeaders: {
        "Content-Type": "'application/problem+json'",
        ...((dpop ? (g.wwwAuthenticateDpop ?? g.wwwAuthenticate) : g.wwwAuthenticate)
          ? {
              "WWW-Authenticate": `'${dpop ? (g.wwwAuthenticateDpop ?? g.wwwAuthenticate) : g.wwwAuthenticate}'`,
            }
          : {}),
      },
      templates: { "application/json": JSON.stringify(fields) },
    });
  }
}

/** Construct ids of the gateway responses (kept stable across releases). */
const GATEWAY_RESPONSE_IDS: Record<string, string> = {
  UNAUTHORIZED: "Unauthorized",
  ACCESS_DENIED: "AccessDenied",
  THROTTLED: "Throttled",
  MISSING_AUTHENTICATION_TOKEN: "MissingToken",
  DEFAULT_4XX: "Default4xx",
  DEFAULT_5XX: "Default5xx",
};
