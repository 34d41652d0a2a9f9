import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  App,
  Aspects,
  CfnResource,
  IAspect,
  Stack,
  Validations,
  aws_apigateway as apigw,
  aws_cognito as cognito,
  aws_dynamodb as dynamodb,
  aws_logs as logs,
} from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import {
  Agpat,
  AgpatProps,
  MANIFEST_MOUNT_PATH,
  ManifestRoute,
  TOKEN_ROUTES,
  loadManifest,
  parseManifest,
} from "../lib";
import { renderedMethods } from "./fixture";

// An imaginary adopter ("a document platform", testdata/manifests/adopter.toml:
// 12 scopes, 47 routes, greedy paths, literal siblings of parameters, the
// root) whose REST API is built outside the construct, half of it before
// agpat is adopted and half after.
const FIXTURE = path.join(__dirname, "..", "..", "testdata", "manifests", "adopter.toml");
const STUB_ASSETS = path.join(__dirname, "stub-assets");
const routes = loadManifest(FIXTURE).routes;
const keyOf = (r: { method: string; path: string }) => `${r.method} ${r.path}`;

/** A fresh directory for variant manifests, removed after the suite. */
const scratch: string[] = [];
function scratchDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agpat-test-"));
  scratch.push(dir);
  return dir;
}
afterAll(() => scratch.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

interface Fixture {
  app: App;
  stack: Stack;
  api: apigw.RestApi;
  agpat: Agpat;
}

interface FixtureOptions {
  /** Construct props beyond the API, the manifest and the assets. */
  props?: Partial<AgpatProps>;
  /** Manifest routes the API leaves out. */
  skip?: string[];
  /** Method options per route key, instead of none (`agpat` is set for the later half). */
  options?: Record<string, (f: Omit<Fixture, "agpat"> & { agpat?: Agpat }) => apigw.MethodOptions>;
  /** Runs after the construct, before synthesis. */
  after?: (f: Fixture) => void;
  /** The app's context (feature flags). */
  context?: Record<string, unknown>;
}

/** The adopter's stack: its own REST API, then agpat adopted on it. */
function adopt(options: FixtureOptions = {}): Fixture {
  const app = new App({ context: options.context });
  const stack = new Stack(app, "docs-platform");
  const api = new apigw.RestApi(stack, "DocsApi", {
    cloudWatchRole: false,
    deployOptions: {
      stageName: "live",
      tracingEnabled: true,
      loggingLevel: apigw.MethodLoggingLevel.ERROR,
      accessLogDestination: new apigw.LogGroupLogDestination(
        new logs.LogGroup(stack, "AccessLogs", { retention: logs.RetentionDays.ONE_WEEK }),
      ),
      accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
    },
  });
  Validations.of(api).acknowledge(
    { id: "AwsSolutions-APIG2", reason: "Fixture: validation is the handlers' concern." },
    { id: "AwsSolutions-APIG3", reason: "Fixture: no WAF in a test stack." },
  );
  const integration = new apigw.MockIntegration();
  const late: { agpat?: Agpat } = {};
  const addRoute = (route: ManifestRoute) => {
    if (options.skip?.includes(keyOf(route))) return;
    const methodOptions = options.options?.[keyOf(route)]?.({ app, stack, api, ...late });
    api.root.resourceForPath(route.path).addMethod(route.method, integration, methodOptions);
  };
  const half = Math.floor(routes.length / 2);
  routes.slice(0, half).forEach(addRoute);
  const agpat = new Agpat(stack, "Agpat", {
    api,
    manifestPath: FIXTURE,
    lambdaAssets: STUB_ASSETS,
    ...options.props,
  });
  late.agpat = agpat;
  // Methods added after the construct are attached all the same.
  routes.slice(half).forEach(addRoute);
  options.after?.({ app, stack, api, agpat });
  return { app, stack, api, agpat };
}

function synth(fixture: Fixture): Template {
  fixture.app.synth();
  return Template.fromStack(fixture.stack);
}

/** The method the API has for `key` (`METHOD /path`), and its CfnMethod. */
function methodOf(api: apigw.RestApi, key: string) {
  const method = api.methods.find((m) => `${m.httpMethod} ${m.resource.path}` === key);
  if (!method) throw new Error(`the fixture has no method ${key}`);
  return { method, cfn: method.node.defaultChild as apigw.CfnMethod };
}

/**
 * An adopter aspect of default priority, so it runs after agpat's (MUTATING):
 * it adds a method when it first visits the stack (a second synthesis runs
 * aspects again).
 */
function lateMethod(add: (api: apigw.RestApi) => void) {
  return ({ app, stack, api }: Fixture) => {
    let added = false;
    const aspect: IAspect = {
      visit: (node) => {
        if (node !== stack || added) return;
        added = true;
        add(api);
      },
    };
    Aspects.of(app).add(aspect);
  };
}

/** Every method of the template as `METHOD /path`, with its authorization. */
function methodsOf(template: Template) {
  return renderedMethods(template).map(({ key, properties }) => ({
    key,
    auth: properties.AuthorizationType as string,
    authorizer: properties.AuthorizerId?.Ref as string | undefined,
  }));
}

const adopted = adopt({
  // A method (added after the construct) that names agpat's authorizer
  // itself is accepted as it is.
  options: {
    "GET /reports/{reportId}": ({ agpat }) => {
      if (!agpat) throw new Error("GET /reports/{reportId} must be added after the construct");
      return { authorizer: agpat.authorizer, authorizationType: apigw.AuthorizationType.CUSTOM };
    },
  },
});
const template = synth(adopted);
const authorizerId = Object.keys(template.findResources("AWS::ApiGateway::Authorizer"))[0];

describe("adopting agpat on an external REST API", () => {
  test("every protected route of the manifest gets agpat's authorizer and every public one none, whenever its method was added", () => {
    expect(routes).toHaveLength(47);
    const byKey = new Map(methodsOf(template).map((m) => [m.key, m]));
    for (const route of routes) {
      const expected =
        route.access.kind === "public"
          ? { key: keyOf(route), auth: "NONE", authorizer: undefined }
          : { key: keyOf(route), auth: "CUSTOM", authorizer: authorizerId };
      expect(byKey.get(keyOf(route))).toEqual(expected);
    }
    const publicOnes = routes.filter((r) => r.access.kind === "public").map(keyOf);
    expect(publicOnes.sort()).toEqual([
      "GET /assets/{asset+}",
      "GET /health",
      "OPTIONS /docs",
      "POST /hooks/inbound/{source+}",
    ]);
  });

  test("the built-in /tokens routes are added, throttled on the adopter's stage", () => {
    const methods = methodsOf(template);
    expect(methods).toHaveLength(routes.length + TOKEN_ROUTES.length);
    const byKey = new Map(methods.map((m) => [m.key, m]));
    for (const route of TOKEN_ROUTES) {
      expect(byKey.get(keyOf(route))).toEqual({
        key: keyOf(route),
        auth: route.access.kind === "public" ? "NONE" : "CUSTOM",
        authorizer: route.access.kind === "public" ? undefined : authorizerId,
      });
    }
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      StageName: "live",
      MethodSettings: Match.arrayWith([
        Match.objectLike({ HttpMethod: "POST", ResourcePath: "/~1tokens", ThrottlingRateLimit: 5 }),
        Match.objectLike({
          HttpMethod: "POST",
          ResourcePath: "/~1tokens~1revoke",
          ThrottlingRateLimit: 2,
          ThrottlingBurstLimit: 5,
        }),
      ]),
    });
  });

  test("cdk-nag AwsSolutions reports no unacknowledged error or warning on the adopter's stack, every option on", () => {
    const violations = (app: App) =>
      new AwsSolutionsChecks(app)
        .validateScope(app)
        .violations.map(
          (v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath)}`,
        );
    expect(violations(adopted.app)).toEqual([]);
    const everything = adopt({
      props: {
        envName: "prod",
        alertEmail: "ops@example.com",
        waf: true,
        smokeTestClient: true,
        offboardingTrail: true,
        provisionedAuthorizerConcurrency: 2,
        budget: { monthlyUsd: 10, thresholdsPercent: [100] },
        ownerEmails: { from: "noreply@example.com" },
        eventRetentionDays: 365,
      },
      // The trail's bucket logs to another bucket, through a bucket policy.
      context: { "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true },
    });
    everything.app.synth();
    expect(violations(everything.app)).toEqual([]);
    // Registered the way an adopter's app does it, synthesis passes.
    const registered = adopt();
    Validations.of(registered.app).addPlugins(new AwsSolutionsChecks(registered.app));
    expect(() => registered.app.synth()).not.toThrow();
  });

  test("every IAM4 and IAM5 acknowledgment names the exact finding it accepts", () => {
    const acknowledged = adopted.app.node
      .findAll()
      .flatMap((c) => c.node.metadata)
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.keys(m.data as object));
    const iam = acknowledged.filter((id) => /AwsSolutions-IAM[45]/.test(id));
    expect(iam.length).toBeGreaterThan(0);
    for (const id of iam)
      expect(id).toMatch(/AwsSolutions-IAM[45]\[(Policy|Resource|Action)::.+\]$/);
    // The only wildcard resource accepted is X-Ray's, which has no resource ARN.
    expect(iam.filter((id) => id.includes("[Resource::*]"))).toEqual(
      iam.filter((id) => id.endsWith("AwsSolutions-IAM5[Resource::*]")),
    );
  });

  test("a CORS preflight (OPTIONS, MOCK, no authorization) needs no manifest route; an OPTIONS that reaches a backend does", () => {
    const preflight = adopt({
      after: ({ api }) => {
        api.root
          .resourceForPath("/docs/{docId}")
          .addCorsPreflight({ allowOrigins: ["https://app.example.com"] });
      },
    });
    const t = synth(preflight);
    const options = Object.values(t.findResources("AWS::ApiGateway::Method")).filter(
      (m) =>
        m.Properties.HttpMethod === "OPTIONS" &&
        m.Properties.ResourceId.Ref.startsWith("DocsApidocsdocId"),
    );
    expect(options).toHaveLength(1);
    expect(options[0].Properties).toMatchObject({
      AuthorizationType: "NONE",
      Integration: { Type: "MOCK" },
    });
    const backend = adopt({
      after: ({ api }) => {
        api.root
          .resourceForPath("/docs/{docId}")
          .addMethod("OPTIONS", new apigw.HttpIntegration("https://backend.example.com"));
      },
    });
    expect(() => backend.app.synth()).toThrow(
      /OPTIONS \S+ is a method of the API but not a route of the manifest/,
    );
  });

  test("synthesis fails for a method the manifest does not declare", () => {
    const undeclared = adopt({
      after: ({ api }) => {
        api.root.resourceForPath("/docs/{docId}/secret").addMethod("GET");
      },
    });
    expect(() => undeclared.app.synth()).toThrow(
      /adopter\.toml does not match[\s\S]*GET \/docs\/\{docId\}\/secret is a method of the API but not a route of the manifest/,
    );
    // A catch-all would otherwise route around every declared path.
    const proxy = adopt({ after: ({ api }) => void api.root.addProxy({ anyMethod: true }) });
    expect(() => proxy.app.synth()).toThrow(/ANY \/\{proxy\+\} is a method of the API/);
  });

  test("synthesis fails for a manifest route without a method", () => {
    const missing = adopt({ skip: ["DELETE /webhooks/{hookId}", "GET /"] });
    const error = () => missing.app.synth();
    expect(error).toThrow(
      /DELETE \/webhooks\/\{hookId\} is a route of the manifest but the API has no such method/,
    );
    // Every disagreement is listed, and a second synthesis fails just the same.
    expect(error).toThrow(/GET \/ is a route of the manifest but the API has no such method/);
  });

  test("synthesis fails when a public route already has an authorizer or a protected one has another", () => {
    const publicWithAuth = adopt({
      options: { "GET /health": () => ({ authorizationType: apigw.AuthorizationType.IAM }) },
    });
    expect(() => publicWithAuth.app.synth()).toThrow(
      /GET \/health is public in the manifest but the API gives it authorization AWS_IAM/,
    );
    const otherAuthorizer = adopt({
      options: {
        "GET /docs": ({ stack }) => ({
          authorizer: new apigw.CognitoUserPoolsAuthorizer(stack, "Other", {
            cognitoUserPools: [
              cognito.UserPool.fromUserPoolId(stack, "OtherPool", "eu-west-1_other"),
            ],
          }),
        }),
      },
    });
    expect(() => otherAuthorizer.app.synth()).toThrow(
      /GET \/docs is protected by the manifest but already has another authorizer \(COGNITO_USER_POOLS\)/,
    );
  });

  test("synthesis fails for a method a later aspect adds, declared or not", () => {
    // Undeclared: agpat's aspect ran before the method existed.
    const undeclared = adopt({
      after: lateMethod((api) => {
        api.root.addResource("secret").addMethod("GET", new apigw.MockIntegration());
      }),
    });
    expect(() => undeclared.app.synth()).toThrow(
      /GET \/secret is a method of the API but not a route of the manifest; declare it .* \(it was added after agpat's aspect \(priority MUTATING\) attached the authorizer, e\.g\. by a later aspect; add methods before synthesis\)/,
    );
    // Declared and protected: it would deploy without the authorizer.
    const declared = adopt({
      skip: ["DELETE /webhooks/{hookId}"],
      after: lateMethod((api) => {
        api.root.resourceForPath("/webhooks/{hookId}").addMethod("DELETE");
      }),
    });
    const error = () => declared.app.synth();
    expect(error).toThrow(
      /DELETE \/webhooks\/\{hookId\} is protected by the manifest but would deploy with authorization NONE; it was added after agpat's aspect/,
    );
    expect(() => Template.fromStack(declared.stack)).toThrow(
      /would deploy with authorization NONE/,
    );
  });

  test("synthesis fails when a property override takes agpat's authorizer off a protected method", () => {
    const overridden = adopt({
      after: ({ api }) => {
        methodOf(api, "GET /docs").cfn.addPropertyOverride("AuthorizationType", "NONE");
        // agpat's own /tokens methods are held to its route table the same way.
        methodOf(api, "GET /tokens").cfn.addOverride("Properties.AuthorizationType", "NONE");
        methodOf(api, "POST /docs").cfn.addPropertyDeletionOverride("AuthorizerId");
      },
    });
    const error = () => overridden.app.synth();
    expect(error).toThrow(
      /GET \/docs is protected by the manifest but would deploy with authorization NONE; an override of AuthorizationType or AuthorizerId removed agpat's authorizer/,
    );
    expect(error).toThrow(
      /GET \/tokens is protected by agpat's route table but would deploy with authorization NONE/,
    );
    expect(error).toThrow(
      /POST \/docs is protected by the manifest but already has another authorizer \(CUSTOM\)/,
    );
    // The L1 properties still say CUSTOM: only the rendered template does not.
    expect(methodOf(overridden.api, "GET /docs").cfn.authorizationType).toBe("CUSTOM");
  });

  test("synthesis reads each method's path from the template, and refuses methods agpat cannot match", () => {
    const moved = adopt({
      after: ({ stack, api }) => {
        // A public method moved by override to an undeclared HTTP method.
        methodOf(api, "GET /health").cfn.addPropertyOverride("HttpMethod", "DELETE");
        // A method written as a raw resource, not a CfnMethod.
        new CfnResource(stack, "RawMethod", {
          type: "AWS::ApiGateway::Method",
          properties: {
            RestApiId: api.restApiId,
            ResourceId: api.root.resourceId,
            HttpMethod: "PATCH",
            AuthorizationType: "NONE",
          },
        });
        // An OpenAPI body defines methods no resource of the template shows.
        (api.node.defaultChild as apigw.CfnRestApi).addPropertyOverride("Body", {
          openapi: "3.0.1",
          paths: { "/admin": { get: {} } },
        });
      },
    });
    const error = () => moved.app.synth();
    expect(error).toThrow(/DELETE \/health is a method of the API but not a route of the manifest/);
    expect(error).toThrow(/GET \/health is a route of the manifest but the API has no such method/);
    expect(error).toThrow(
      /docs-platform\/RawMethod \(RawMethod\) is a method of the API but not one of its Method constructs/,
    );
    expect(error).toThrow(/the REST API renders Body, which defines methods agpat cannot check/);
  });

  test("with provisioned concurrency API Gateway invokes the live alias, which holds it", () => {
    const f = adopt({ props: { provisionedAuthorizerConcurrency: 3 } });
    const t = synth(f);
    const aliases = t.findResources("AWS::Lambda::Alias");
    const fnId = Object.keys(t.findResources("AWS::Lambda::Function")).find((id) =>
      id.startsWith("Agpatauthorizerfn"),
    );
    const [aliasId] = Object.keys(aliases).filter(
      (id) => JSON.stringify(aliases[id].Properties.FunctionName) === JSON.stringify({ Ref: fnId }),
    );
    expect(aliases[aliasId].Properties).toMatchObject({
      Name: "live",
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 3 },
    });
    // Only the authorizer's alias holds provisioned concurrency.
    const provisioned = Object.values(aliases).filter(
      (a) => a.Properties.ProvisionedConcurrencyConfig,
    );
    expect(provisioned).toHaveLength(1);
    const [authorizer] = Object.values(t.findResources("AWS::ApiGateway::Authorizer"));
    const uri = JSON.stringify(authorizer.Properties.AuthorizerUri);
    expect(uri).toContain(JSON.stringify({ Ref: aliasId }));
    expect(uri).not.toContain(fnId);
    t.hasResourceProperties("AWS::Lambda::Permission", {
      FunctionName: { Ref: aliasId },
      Principal: "apigateway.amazonaws.com",
    });
  });

  test("a changed manifest publishes a new authorizer version for the live alias", () => {
    const changed = path.join(scratchDir(), "agpat.toml");
    fs.writeFileSync(changed, fs.readFileSync(FIXTURE, "utf8") + "\n# changed\n");
    const versionOf = (manifestPath: string) => {
      const t = synth(adopt({ props: { manifestPath, provisionedAuthorizerConcurrency: 1 } }));
      return Object.keys(t.findResources("AWS::Lambda::Version")).filter((id) =>
        id.startsWith("Agpatauthorizerfn"),
      );
    };
    const [before] = versionOf(FIXTURE);
    const [after] = versionOf(changed);
    expect(before).toBeDefined();
    expect(after).not.toEqual(before);
  });

  test("a route whose access changes redeploys the stage", () => {
    const fixture = fs.readFileSync(FIXTURE, "utf8");
    const health = 'path = "/health"\naccess = "public"';
    expect(fixture).toContain(health);
    const changed = path.join(scratchDir(), "agpat.toml");
    fs.writeFileSync(
      changed,
      fixture.replace(health, 'path = "/health"\naccess = "authenticated"'),
    );
    const deploymentOf = (manifestPath: string) =>
      Object.keys(
        synth(adopt({ props: { manifestPath } })).findResources("AWS::ApiGateway::Deployment"),
      );
    const before = deploymentOf(FIXTURE);
    const after = deploymentOf(changed);
    expect(before).toHaveLength(1);
    expect(after).toHaveLength(1);
    expect(after).not.toEqual(before);
  });
});

describe("the manifest and its layer", () => {
  test("the authorizer and token service get a layer holding only agpat.toml, and AGPAT_MANIFEST", () => {
    const layers = template.findResources("AWS::Lambda::LayerVersion");
    const [layerId] = Object.keys(layers);
    expect(Object.keys(layers)).toHaveLength(1);
    const fns = template.findResources("AWS::Lambda::Function");
    const fn = (prefix: string) => {
      const ids = Object.keys(fns).filter((id) => id.startsWith(prefix));
      expect(ids).toHaveLength(1);
      return fns[ids[0]];
    };
    for (const name of ["Agpatauthorizerfn", "Agpattokenservicefn"]) {
      const props = fn(name).Properties;
      expect(props.Layers).toEqual([{ Ref: layerId }]);
      expect(props.Environment.Variables.AGPAT_MANIFEST).toBe(MANIFEST_MOUNT_PATH);
      expect(MANIFEST_MOUNT_PATH).toBe("/opt/agpat/agpat.toml");
      // The manifest's [sessions] replaced these.
      expect(props.Environment.Variables.JWT_DEFAULT_SCOPES).toBeUndefined();
      expect(props.Environment.Variables.JWT_SCOPE_PREFIX).toBeUndefined();
    }
    expect(fn("Agpatoffboardingfn").Properties.Layers).toBeUndefined();
    expect(adopted.agpat.manifestEnvironment).toEqual({ AGPAT_MANIFEST: MANIFEST_MOUNT_PATH });

    // The staged asset: exactly agpat/agpat.toml, byte for byte the manifest.
    const assembly = adopted.app.synth();
    const s3Key: string = layers[layerId].Properties.Content.S3Key;
    const assetDir = path.join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, "")}`);
    const files = (fs.readdirSync(assetDir, { recursive: true }) as string[]).filter((f) =>
      fs.statSync(path.join(assetDir, f)).isFile(),
    );
    expect(files).toEqual([path.join("agpat", "agpat.toml")]);
    expect(fs.readFileSync(path.join(assetDir, "agpat", "agpat.toml"), "utf8")).toBe(
      fs.readFileSync(FIXTURE, "utf8"),
    );
  });

  test("an existing user pool and token table are used as given", () => {
    const app = new App();
    const stack = new Stack(app, "existing");
    const api = new apigw.RestApi(stack, "Api", { cloudWatchRole: false });
    for (const route of routes) api.root.resourceForPath(route.path).addMethod(route.method);
    new Agpat(stack, "Agpat", {
      api,
      manifestPath: FIXTURE,
      lambdaAssets: STUB_ASSETS,
      userPool: {
        userPool: cognito.UserPool.fromUserPoolId(stack, "Pool", "eu-west-1_Adopter1"),
        clientIds: ["client-a", "client-b"],
      },
      table: dynamodb.Table.fromTableName(stack, "Tokens", "adopter-tokens"),
    });
    app.synth();
    const t = Template.fromStack(stack);
    t.resourceCountIs("AWS::Cognito::UserPool", 0);
    t.resourceCountIs("AWS::Cognito::UserPoolClient", 0);
    t.resourceCountIs("AWS::DynamoDB::Table", 0);
    t.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          TABLE_NAME: "adopter-tokens",
          COGNITO_USER_POOL_ID: "eu-west-1_Adopter1",
          COGNITO_CLIENT_IDS: "client-a,client-b",
        }),
      },
    });
    const statements = Object.values(t.findResources("AWS::IAM::Policy")).flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    const dynamo = statements.filter((st) => JSON.stringify(st.Action).includes("dynamodb:"));
    expect(dynamo.length).toBeGreaterThan(0);
    for (const st of dynamo) expect(JSON.stringify(st.Resource)).toContain(":table/adopter-tokens");
  });

  test("a malformed manifest fails synthesis, naming the file and the entry", () => {
    const dir = scratchDir();
    const bad = path.join(dir, "bad.toml");
    fs.writeFileSync(bad, 'version = 1\n[[route]]\nmethod = "TRACE"\npath = "/x"\nscope = "a:b"\n');
    expect(() => adopt({ props: { manifestPath: bad } })).toThrow(
      /agpat manifest .*bad\.toml: \[\[route\]\] #1 \(TRACE \/x\): `method` must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS/,
    );
    const cases: [string, RegExp][] = [
      ['[[route]]\nmethod = "GET"\npath = "/x"\nscope = "a:b"\n', /`version = 1` is required/],
      ['version = 1\n[[route]]\nmethod = "GET"\npath = "x"\nscope = "a:b"\n', /`path` must be/],
      [
        'version = 1\n[[route]]\nmethod = "GET"\npath = "/x"\nscope = "a:b"\naccess = "public"\n',
        /either `scope` or `access`, not both/,
      ],
      [
        'version = 1\n[[route]]\nmethod = "GET"\npath = "/x"\naccess = "everyone"\n',
        /needs `scope = "<name>"` or `access = "public" \| "authenticated"`/,
      ],
      ['version = 1\n[sessions]\ndefault_scopes = "a:b"\n', /default_scopes must be a list/],
      ["version = 1\n[[route]\n", /is not valid TOML/],
      [
        'version = 1\n[[route]]\nmethod = "GET"\npath = "/x"\naccess = "public"\n[[route]]\nmethod = "GET"\npath = "/x"\naccess = "public"\n',
        /route GET \/x is declared twice/,
      ],
    ];
    for (const [text, message] of cases) {
      expect(() => parseManifest("inline.toml", text)).toThrow(/^agpat manifest inline\.toml: /);
      expect(() => parseManifest("inline.toml", text)).toThrow(message);
    }
    expect(() => loadManifest(path.join(dir, "absent.toml"))).toThrow(
      /absent\.toml: cannot be read/,
    );
  });

  test("the construct refuses an API in another stack, and out-of-range settings by name", () => {
    const app = new App();
    const apiStack = new Stack(app, "api");
    const api = new apigw.RestApi(apiStack, "Api");
    api.root.addMethod("GET");
    expect(
      () =>
        new Agpat(new Stack(app, "auth"), "Agpat", {
          api,
          manifestPath: FIXTURE,
          lambdaAssets: STUB_ASSETS,
        }),
    ).toThrow(/must be in the same stack/);
    expect(() => adopt({ props: { patCacheTtlSeconds: 301 } })).toThrow(
      /patCacheTtlSeconds must be a number from 0 to 300 \(got 301\)/,
    );
    expect(() => adopt({ props: { userPool: { userPool: api as never, clientIds: [] } } })).toThrow(
      /clientIds must name at least one client/,
    );
    expect(() =>
      adopt({ props: { alertTopic: adopted.agpat.alertTopic, alertEmail: "ops@example.com" } }),
    ).toThrow(/with alertTopic, subscribe to your topic yourself/);
  });
});
