import * as path from "path";
import { App, Stack, aws_apigateway as apigw } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Agpat, AgpatProps, loadManifest } from "../lib";

/** The fixture adopter's manifest (12 scopes, 47 routes). */
export const FIXTURE = path.join(__dirname, "..", "..", "testdata", "manifests", "adopter.toml");
/** Stub Lambda packages (`<function>/bootstrap.zip`). */
export const STUB_ASSETS = path.join(__dirname, "stub-assets");
const routes = loadManifest(FIXTURE).routes;

/** A synthesized stack of the fixture with agpat on it. */
export interface Built {
  app: App;
  stack: Stack;
  agpat: Agpat;
  template: Template;
  assemblyDir: string;
}

/**
 * A stack named `<prefix>-<name>` with an API declaring every route of the
 * fixture manifest, and agpat on it (prod gets an alert address unless the
 * props bring a topic).
 */
export function buildOnFixture(
  prefix: string,
  envName: "dev" | "prod",
  props: Partial<AgpatProps> = {},
  name: string = envName,
): Built {
  const app = new App();
  const stack = new Stack(app, `${prefix}-${name}`);
  const api = new apigw.RestApi(stack, "Api", {
    cloudWatchRole: false,
    deployOptions: { stageName: "live" },
  });
  for (const route of routes) api.root.resourceForPath(route.path).addMethod(route.method);
  const agpat = new Agpat(stack, "Agpat", {
    api,
    manifestPath: FIXTURE,
    lambdaAssets: STUB_ASSETS,
    envName,
    ...(envName === "prod" && !props.alertTopic ? { alertEmail: "ops@example.com" } : {}),
    ...props,
  });
  const assembly = app.synth();
  return {
    app,
    stack,
    agpat,
    template: Template.fromStack(stack),
    assemblyDir: assembly.directory,
  };
}

/** A method of a template: `METHOD /path`, and its rendered properties. */
export interface RenderedMethod {
  key: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  properties: Record<string, any>;
}

/** Every method of `template`, its path rebuilt from its resources. */
export function renderedMethods(template: Template): RenderedMethod[] {
  const resources = template.findResources("AWS::ApiGateway::Resource");
  const pathOf = (ref: unknown): string => {
    // Walk parents up to the root (a GetAtt, not a Ref) to rebuild the path.
    const parts: string[] = [];
    let current = ref as { Ref?: string };
    while (current && current.Ref && resources[current.Ref]) {
      const r = resources[current.Ref].Properties;
      parts.unshift(r.PathPart);
      current = r.ParentId;
    }
    return "/" + parts.join("/");
  };
  return Object.values(template.findResources("AWS::ApiGateway::Method")).map((m) => ({
    key: `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId)}`,
    properties: m.Properties,
  }));
}
