/**
 * The demo app's settings, read from CDK context (defaults in infra/cdk.json,
 * override with `-c key=value`; see the README).
 */
import { Node } from "constructs";

/** Everything configurable in the demo. */
export interface Settings {
  /** `dev` (destroyable) or `prod` (retained, deletion-protected, reserved concurrency). */
  env: "dev" | "prod";
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
  /** Where alarms and budget alerts go, if set. */
  alertEmail?: string;
}

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
  return {
    env,
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
    alertEmail: node.tryGetContext("alertEmail"),
  };
}
