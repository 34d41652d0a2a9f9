/**
 * agpat for AWS CDK: attach Cognito JWT and personal-access-token
 * authentication to an existing API Gateway REST API.
 *
 * ```ts
 * const agpat = new Agpat(this, "Agpat", {
 *   api, // your apigw.RestApi, with one method per manifest route
 *   manifestPath: "agpat.toml",
 *   lambdaAssets: "target/lambda",
 * });
 * myFunction.addLayers(agpat.manifestLayer);
 * for (const [k, v] of Object.entries(agpat.manifestEnvironment)) myFunction.addEnvironment(k, v);
 * ```
 *
 * This module is the public entry: adopters import from here only.
 */
export {
  AGPAT_EVENT_DETAIL_TYPES,
  AGPAT_EVENT_SOURCE,
  AUTHORIZER_TOKEN_ATTRIBUTES,
  Agpat,
  AgpatAlarmOptions,
  AgpatBudget,
  AgpatDpop,
  AgpatFunctionName,
  AgpatOwnerEmails,
  AgpatProps,
  AgpatRateTier,
  AgpatReservableFunctionName,
  AgpatUserPool,
  AgpatWafOptions,
  EVENT_ITEM_ATTRIBUTES,
  EXPIRY_SWEEPER_TOKEN_ATTRIBUTES,
  GITHUB_SECRET_SCANNING_KEYS_URL,
  LAMBDA_ROLE_SUPPRESSIONS,
  MANIFEST_MOUNT_PATH,
  MIGRATOR_CHECKPOINT_ATTRIBUTES,
  MIGRATOR_SCAN_ATTRIBUTES,
  MIGRATOR_TOKEN_ATTRIBUTES,
  NagAcknowledgment,
  OFFBOARDING_EVENTS,
  OFFBOARDING_OWNER_ATTRIBUTES,
  OFFBOARDING_TOKEN_ATTRIBUTES,
  SECRET_SCANNING_PATH,
  TOKEN_SERVICE_BATCH_ATTRIBUTES,
  acknowledgeNagFindings,
} from "./agpat";
export {
  Access,
  AgpatManifest,
  HTTP_METHODS,
  HttpMethod,
  ManifestError,
  ManifestRoute,
  ManifestScope,
  ManifestSessions,
  loadManifest,
  parseManifest,
} from "./manifest";
export { IndexLayout, TABLE, TOKEN_ROUTES, TableLayout, TokenRoute } from "./routes";
export {
  LiveAlias,
  LiveAliasProps,
  PreTrafficCheck,
  TRAFFIC_SHIFTS,
  TrafficShift,
} from "./deployment";
export { CheckovSkip, skipCheckov } from "./checkov";
