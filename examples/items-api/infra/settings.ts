/**
 * The demo app's settings, read from CDK context (defaults in infra/cdk.json,
 * override with `-c key=value`; see the README).
 */
import { Node } from "constructs";

/** Everything configurable in the demo. */
export interface Settings {
  /** `dev` (destroyable) or `prod` (retained, deletion-protected, reserved concurrency). */
  env: "dev" | "prod";
  /**
   * This deployment's name (default: `env`): the stack `agpat-<deployment>`,
   * the API, stage and budget names and the metrics namespace
   * `agpat/<deployment>`. A staging deployment is `-c env=prod
   * -c deployment=staging`: prod's settings under its own names, so its
   * metrics never mix with production's.
   */
  deployment: string;
  /** Directory holding `<function>/bootstrap` built by cargo-lambda. */
  lambdaAssets: string;
  /** API Gateway authorizer result cache; part of the revocation bound. */
  authorizerCacheTtlSeconds: number;
  /** The authorizer's in-process PAT cache; the other part of the bound. */
  patCacheTtlSeconds: number;
  /** The longest lifetime a token may be given. */
  tokenMaxLifetimeDays: number;
  /** Stage-wide throttle (requests per second). */
  stageRateLimit: number;
  /** Stage-wide burst. */
  stageBurstLimit: number;
  /** Throttle of the /tokens routes that write. */
  tokenWriteRateLimit: number;
  /** Burst of the /tokens routes that write. */
  tokenWriteBurstLimit: number;
  /** Throttle of the public POST /tokens/revoke. */
  publicRevokeRateLimit: number;
  /** Burst of the public POST /tokens/revoke. */
  publicRevokeBurstLimit: number;
  /** Monthly cost budget in USD. */
  budgetMonthlyUsd: number;
  /** Budget alert thresholds, in percent of the budget. */
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
  /**
   * Sender of agpat's owner emails (a token about to expire, expired, or
   * reported leaked), an address verified in SES (context `ownerEmailFrom`).
   * Unset, the default: no emails; the events still reach agpat's bus.
   */
  ownerEmailFrom?: string;
  /** Where alarms and budget alerts go; required in prod, where an unwatched alarm is no alarm. */
  alertEmail?: string;
  /**
   * The account and region the stack is pinned to (context `account`,
   * `region`); required in prod so that a prod synth can never deploy into
   * whatever account the caller's credentials happen to point at.
   */
  deployTo?: { account: string; region: string };
  /**
   * Reserved concurrency per function (context `reservedConcurrency`, an
   * object; each key overrides its default). Reserving caps what one
   * function can take from the account's pool, and guarantees it that much.
   * Defaults: see {@link RESERVED_CONCURRENCY_DEFAULTS}.
   */
  reservedConcurrency: ReservedConcurrency;
  /** Put a WAF web ACL in front of the stage (context `waf`); on by default in prod. */
  waf: boolean;
  /**
   * Browser origins allowed to call the API (context `corsAllowedOrigins`, a
   * list of `https://host[:port]` origins; `http://localhost[:port]` too in
   * dev). Empty, the default, means no CORS at all: no preflight methods, no
   * CORS headers.
   */
  corsAllowedOrigins: string[];
}

/** Reserved concurrency of each function; `undefined` leaves it unreserved. */
export interface ReservedConcurrency {
  /** The business Lambda (this example's). */
  api?: number;
  /** agpat's authorizer: every protected request goes through it. */
  authorizer?: number;
  /** agpat's token service (the /tokens routes). */
  tokenService?: number;
  /** agpat's offboarding function. */
  offboarding?: number;
}

/**
 * What each function reserves unless context overrides it. Prod sizes the
 * authorizer for every request and the rest well below it, so a flood on one
 * route cannot starve the authorizer. Dev reserves nothing: fresh accounts
 * have a concurrency limit of 10, and Lambda refuses any reservation that
 * leaves fewer than 100 unreserved.
 */
export const RESERVED_CONCURRENCY_DEFAULTS: Record<Settings["env"], ReservedConcurrency> = {
  prod: { api: 100, authorizer: 400, tokenService: 20, offboarding: 5 },
  dev: {},
};

/**
 * A number from context. Ranges are checked here only for the demo's own
 * knobs (the stage); agpat's, the budget's included, are checked and named
 * by the Agpat construct.
 */
function num(node: Node, key: string, range?: [number, number]): number {
  const value = Number(node.tryGetContext(key));
  const [min, max] = range ?? [-Infinity, Infinity];
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(
      range
        ? `context ${key}: expected a number from ${min} to ${max}`
        : `context ${key}: expected a number`,
    );
  }
  return value;
}

function reservedConcurrency(node: Node, env: Settings["env"]): ReservedConcurrency {
  const given = node.tryGetContext("reservedConcurrency") ?? {};
  const raw = typeof given === "string" ? parseJson("reservedConcurrency", given) : given;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error('context reservedConcurrency: expected an object such as {"api": 100}');
  }
  const known = Object.keys(RESERVED_CONCURRENCY_DEFAULTS.prod);
  const result: ReservedConcurrency = { ...RESERVED_CONCURRENCY_DEFAULTS[env] };
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!known.includes(name)) {
      throw new Error(
        `context reservedConcurrency.${name}: unknown function; expected one of ${known.join(", ")}`,
      );
    }
    // 0 would throttle every invocation: never what a deployment wants.
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1000) {
      throw new Error(
        `context reservedConcurrency.${name}: expected a whole number from 1 to 1000`,
      );
    }
    result[name as keyof ReservedConcurrency] = value;
  }
  return result;
}

function parseJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`context ${key}: expected JSON`);
  }
}

/**
 * `https://host[:port]`, or in dev also `http://localhost[:port]`: an exact
 * origin, never `*` (a wildcard would let any site read what a signed-in
 * user's browser fetches) and never a path.
 */
function corsAllowedOrigins(node: Node, env: Settings["env"]): string[] {
  const given = node.tryGetContext("corsAllowedOrigins") ?? [];
  const raw = typeof given === "string" ? parseJson("corsAllowedOrigins", given) : given;
  if (!Array.isArray(raw)) {
    throw new Error("context corsAllowedOrigins: expected a list of origins");
  }
  const pattern =
    env === "dev"
      ? /^(https:\/\/[a-z0-9.-]+|http:\/\/localhost)(:[0-9]{1,5})?$/
      : /^https:\/\/[a-z0-9.-]+(:[0-9]{1,5})?$/;
  for (const origin of raw) {
    if (typeof origin !== "string" || !pattern.test(origin)) {
      throw new Error(
        `context corsAllowedOrigins: ${JSON.stringify(origin)} is not an origin such as https://app.example.com` +
          (env === "dev" ? " or http://localhost:3000" : "") +
          " (lower case, no path, no wildcard)",
      );
    }
  }
  return [...new Set(raw as string[])];
}

function bool(node: Node, key: string, fallback: boolean): boolean {
  const value = node.tryGetContext(key);
  if (value === undefined) return fallback;
  // `-c key=true` on the command line arrives as a string.
  if (value === true || value === "true") return true;
  if (value === false || value === "false") return false;
  throw new Error(`context ${key}: expected true or false`);
}

/** Reads the settings; a bad value names the context key. */
export function settingsFromContext(node: Node): Settings {
  const env = node.tryGetContext("env");
  if (env !== "dev" && env !== "prod") throw new Error("context env: expected dev or prod");
  const thresholds = node.tryGetContext("budgetThresholdsPercent");
  if (!Array.isArray(thresholds) || thresholds.some((t) => typeof t !== "number" || t <= 0)) {
    throw new Error("context budgetThresholdsPercent: expected a list of positive numbers");
  }
  const prod = env === "prod";
  const deployment = node.tryGetContext("deployment") ?? env;
  if (typeof deployment !== "string" || !/^[a-z][a-z0-9-]{0,19}$/.test(deployment)) {
    throw new Error("context deployment: expected a short lower-case name such as staging");
  }
  const alertEmail = node.tryGetContext("alertEmail");
  if (
    alertEmail !== undefined &&
    (typeof alertEmail !== "string" || !/^[^@\s]+@[^@\s]+$/.test(alertEmail))
  ) {
    throw new Error("context alertEmail: expected an email address");
  }
  if (prod && !alertEmail) {
    throw new Error(
      "context alertEmail: required when env=prod (alarms and budget alerts must reach someone); pass -c alertEmail=ops@example.com",
    );
  }
  const ownerEmailFrom = node.tryGetContext("ownerEmailFrom");
  if (
    ownerEmailFrom !== undefined &&
    (typeof ownerEmailFrom !== "string" || !/^[^@\s]+@[^@\s]+$/.test(ownerEmailFrom))
  ) {
    throw new Error("context ownerEmailFrom: expected an email address verified in SES");
  }
  const account = node.tryGetContext("account");
  const region = node.tryGetContext("region");
  if (account !== undefined && !/^[0-9]{12}$/.test(String(account))) {
    throw new Error("context account: expected a 12-digit AWS account id");
  }
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-[0-9]$/.test(String(region))) {
    throw new Error("context region: expected an AWS region such as eu-west-1");
  }
  if ((account === undefined) !== (region === undefined)) {
    throw new Error("context account and region: give both or neither");
  }
  if (prod && account === undefined) {
    throw new Error(
      "context account and region: required when env=prod, so that prod deploys only where it is meant to; pass -c account=123456789012 -c region=eu-west-1",
    );
  }
  return {
    env,
    deployment,
    lambdaAssets: String(node.tryGetContext("lambdaAssets") ?? "../target/lambda"),
    authorizerCacheTtlSeconds: num(node, "authorizerCacheTtlSeconds"),
    patCacheTtlSeconds: num(node, "patCacheTtlSeconds"),
    tokenMaxLifetimeDays: num(node, "tokenMaxLifetimeDays"),
    stageRateLimit: num(node, "stageRateLimit", [1, 10000]),
    stageBurstLimit: num(node, "stageBurstLimit", [1, 5000]),
    tokenWriteRateLimit: num(node, "tokenWriteRateLimit"),
    tokenWriteBurstLimit: num(node, "tokenWriteBurstLimit"),
    publicRevokeRateLimit: num(node, "publicRevokeRateLimit"),
    publicRevokeBurstLimit: num(node, "publicRevokeBurstLimit"),
    budgetMonthlyUsd: num(node, "budgetMonthlyUsd"),
    budgetThresholdsPercent: thresholds,
    provisionedAuthorizerConcurrency: num(node, "provisionedAuthorizerConcurrency"),
    offboardingTrail: bool(node, "offboardingTrail", false),
    offboardingSweepHours: num(node, "offboardingSweepHours"),
    ownerEmailFrom,
    alertEmail,
    deployTo:
      account === undefined ? undefined : { account: String(account), region: String(region) },
    reservedConcurrency: reservedConcurrency(node, env),
    waf: bool(node, "waf", prod),
    corsAllowedOrigins: corsAllowedOrigins(node, env),
  };
}
