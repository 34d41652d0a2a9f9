/**
 * CodeDeploy BeforeAllowTraffic hook: invokes the new version once with a
 * request a healthy version refuses in a known way, and reports Succeeded or
 * Failed. A version that cannot start (a bad manifest, a bad configuration)
 * is rolled back before any traffic reaches it, however quiet the stage.
 * Environment: TARGET (the version's ARN), CHECK (JSON: { payload, expect }).
 */
import { LambdaClient, InvokeCommand } from "@aws-sdk/client-lambda";
import {
  CodeDeployClient,
  PutLifecycleEventHookExecutionStatusCommand,
} from "@aws-sdk/client-codedeploy";
import { verdict } from "./verdict.mjs";

const lambda = new LambdaClient({});
const codedeploy = new CodeDeployClient({});

export const handler = async (event) => {
  let outcome;
  try {
    const check = JSON.parse(process.env.CHECK);
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: process.env.TARGET,
        Payload: new TextEncoder().encode(JSON.stringify(check.payload)),
      }),
    );
    outcome = verdict(
      {
        FunctionError: out.FunctionError,
        Payload: new TextDecoder().decode(out.Payload ?? new Uint8Array()),
      },
      check.expect,
    );
  } catch (e) {
    outcome = { ok: false, reason: `the check could not run: ${e?.name ?? "error"}` };
  }
  console.log(JSON.stringify({ target: process.env.TARGET, ...outcome }));
  await codedeploy.send(
    new PutLifecycleEventHookExecutionStatusCommand({
      deploymentId: event.DeploymentId,
      lifecycleEventHookExecutionId: event.LifecycleEventHookExecutionId,
      status: outcome.ok ? "Succeeded" : "Failed",
    }),
  );
};
