import { App, Duration, Stack, aws_cloudwatch as cw, aws_lambda as lambda } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { LiveAlias, PreTrafficCheck, TRAFFIC_SHIFTS, TrafficShift } from "../lib/deployment";

/** A stack with a function to release, and an alarm named `id`. */
function parts() {
  const stack = new Stack(new App(), "S");
  const fn = new lambda.Function(stack, "Fn", {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: "index.handler",
    code: lambda.Code.fromInline("x"),
  });
  const alarm = (id: string) =>
    new cw.Alarm(stack, id, {
      metric: new cw.Metric({
        namespace: "agpat/test",
        metricName: id,
        period: Duration.minutes(1),
      }),
      threshold: 1,
      evaluationPeriods: 1,
    });
  return { stack, fn, alarm };
}

// A function released through a `live` alias that CodeDeploy moves, rolled
// back by the alarms it is given (plus one added later, with `late`).
function synth(
  shift: TrafficShift,
  provisioned?: number,
  late?: boolean,
  preTrafficCheck?: PreTrafficCheck,
) {
  const { stack, fn, alarm } = parts();
  const live = new LiveAlias(stack, "Live", {
    function: fn,
    shift,
    alarms: [alarm("Broken")],
    provisionedConcurrency: provisioned,
    preTrafficCheck,
  });
  if (late) live.addAlarm(alarm("Late"));
  return { template: Template.fromStack(stack), live, stack };
}

describe("gradual deployment", () => {
  test("a canary release shifts 10 % for 5 minutes and rolls back on alarm, failure or stop", () => {
    const { template } = synth("canary10Percent5Minutes");
    template.hasResourceProperties("AWS::CodeDeploy::DeploymentGroup", {
      DeploymentConfigName: "CodeDeployDefault.LambdaCanary10Percent5Minutes",
      AlarmConfiguration: {
        Enabled: true,
        Alarms: [{ Name: { Ref: Match.stringLikeRegexp("Broken") } }],
      },
      AutoRollbackConfiguration: { Enabled: true },
    });
    const [group] = Object.values(template.findResources("AWS::CodeDeploy::DeploymentGroup"));
    expect([...group.Properties.AutoRollbackConfiguration.Events].sort()).toEqual([
      "DEPLOYMENT_FAILURE",
      "DEPLOYMENT_STOP_ON_ALARM",
      "DEPLOYMENT_STOP_ON_REQUEST",
    ]);
    // CloudFormation hands the alias update to CodeDeploy.
    const aliases = template.findResources("AWS::Lambda::Alias");
    const [alias] = Object.values(aliases);
    expect(alias.Properties.Name).toBe("live");
    expect(alias.UpdatePolicy.CodeDeployLambdaAliasUpdate).toBeDefined();
  });

  test("each shift names its CodeDeploy configuration", () => {
    const names = Object.keys(TRAFFIC_SHIFTS).map((s) =>
      synth(s as TrafficShift).template.findResources("AWS::CodeDeploy::DeploymentGroup"),
    );
    const configs = names.map((groups) => Object.values(groups)[0].Properties.DeploymentConfigName);
    expect(configs).toEqual([
      "CodeDeployDefault.LambdaAllAtOnce",
      "CodeDeployDefault.LambdaCanary10Percent5Minutes",
      "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    ]);
  });

  test("provisioned concurrency sits on the alias that is released", () => {
    const { template } = synth("linear10PercentEvery1Minute", 3);
    template.hasResourceProperties("AWS::Lambda::Alias", {
      Name: "live",
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 3 },
    });
  });

  test("a pre-traffic check invokes only the new version, before CodeDeploy moves any traffic", () => {
    const { template: t } = synth("canary10Percent5Minutes", undefined, false, {
      payload: { type: "REQUEST" },
      expect: { errorMessage: "Unauthorized" },
    });
    const [alias] = Object.values(t.findResources("AWS::Lambda::Alias"));
    const hookRef = alias.UpdatePolicy.CodeDeployLambdaAliasUpdate.BeforeAllowTrafficHook;
    expect(hookRef).toEqual({ Ref: expect.stringMatching(/^LivePreTrafficCheck/) });
    const hook = t.findResources("AWS::Lambda::Function")[hookRef.Ref].Properties;
    const [versionId] = Object.keys(t.findResources("AWS::Lambda::Version"));
    expect(hook.Environment.Variables.TARGET).toEqual({ Ref: versionId });
    expect(JSON.parse(hook.Environment.Variables.CHECK)).toEqual({
      payload: { type: "REQUEST" },
      expect: { errorMessage: "Unauthorized" },
    });
    // Its role may invoke the new version (nothing else) and report to CodeDeploy.
    const statements = Object.values(t.findResources("AWS::IAM::Policy"))
      .filter((p) => JSON.stringify(p.Properties.Roles).includes("LivePreTrafficCheck"))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    const invoke = statements.filter((st) =>
      JSON.stringify(st.Action).includes("lambda:InvokeFunction"),
    );
    expect(invoke).toHaveLength(1);
    expect(JSON.stringify(invoke[0].Resource)).toContain(versionId);
    expect(JSON.stringify(invoke[0].Resource)).not.toContain('"Fn::GetAtt":["Fn');
    expect(JSON.stringify(statements)).toContain("codedeploy:PutLifecycleEventHookExecutionStatus");
  });

  test("a release without alarms to roll back on is refused", () => {
    const { stack, fn } = parts();
    new LiveAlias(stack, "Live", { function: fn, shift: "canary10Percent5Minutes" });
    expect(() => Template.fromStack(stack)).toThrow(/at least one CloudWatch alarm/);
  });

  test("alarms added after construction stop a release too", () => {
    const { template } = synth("canary10Percent5Minutes", undefined, true);
    const [group] = Object.values(template.findResources("AWS::CodeDeploy::DeploymentGroup"));
    expect(group.Properties.AlarmConfiguration.Alarms).toHaveLength(2);
  });
});
