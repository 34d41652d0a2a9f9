import * as path from "path";
import {
  CfnElement,
  Duration,
  RemovalPolicy,
  Stack,
  Validations,
  aws_cloudwatch as cw,
  aws_codedeploy as codedeploy,
  aws_lambda as lambda,
  aws_logs as logs,
} from "aws-cdk-lib";
import { skipCheckov } from "./checkov";
import { Construct } from "constructs";

/**
 * How a new version of a function takes its traffic, by CodeDeploy's
 * predefined Lambda configurations.
 */
export const TRAFFIC_SHIFTS = {
  /** Everything at once (dev): a failed deployment still rolls back. */
  allAtOnce: codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
  /** 10 % of invocations for 5 minutes, then the rest (prod default). */
  canary10Percent5Minutes: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
  /** 10 % more every minute, for 10 minutes. */
  linear10PercentEvery1Minute: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_1MINUTE,
} as const;

/** A name of {@link TRAFFIC_SHIFTS}. */
export type TrafficShift = keyof typeof TRAFFIC_SHIFTS;

/**
 * A request the new version must answer in a known way before it gets any
 * traffic, and the answer expected: `{ errorMessage }` for a REQUEST
 * authorizer (a request without a credential fails with exactly
 * "Unauthorized"), or `{ statusFrom, statusTo }` for an HTTP function.
 */
export interface PreTrafficCheck {
  /** The event the new version is invoked with. It must carry no credential. */
  readonly payload: unknown;
  /** What a healthy version answers. */
  readonly expect:
    { readonly errorMessage: string } | { readonly statusFrom: number; readonly statusTo: number };
}

/** What {@link LiveAlias} releases and what stops a release. */
export interface LiveAliasProps {
  /** The function; its `currentVersion` is what a deployment releases. */
  readonly function: lambda.Function;
  /** How traffic moves to a new version. */
  readonly shift: TrafficShift;
  /**
   * Alarms watched while traffic shifts: any of them in ALARM stops the
   * deployment and moves the alias back. More can be added with
   * {@link LiveAlias.addAlarm}; synthesis fails (CodeDeploy's own check) if
   * there are none by then, or a broken version could never be rolled back.
   * @default none yet
   */
  readonly alarms?: cw.IAlarm[];
  /** Provisioned concurrency on the alias, which is what callers invoke. @default none */
  readonly provisionedConcurrency?: number;
  /**
   * Invoke the new version once before any traffic moves (a CodeDeploy
   * BeforeAllowTraffic hook); a version that cannot start, or answers
   * otherwise, is rolled back however quiet the stage is.
   * @default no check
   */
  readonly preTrafficCheck?: PreTrafficCheck;
}

/**
 * A function's `live` alias, moved to each new version by CodeDeploy and
 * rolled back automatically on alarm, failure or stop. Callers (API Gateway)
 * must invoke {@link LiveAlias.alias}, never the function: only the alias
 * shifts gradually and holds provisioned concurrency.
 */
export class LiveAlias extends Construct {
  /** The alias callers invoke. */
  readonly alias: lambda.Alias;
  /** The CodeDeploy deployment group that moves the alias. */
  readonly deploymentGroup: codedeploy.LambdaDeploymentGroup;
  /** The BeforeAllowTraffic hook, when `preTrafficCheck` is given. */
  readonly preTrafficHook?: lambda.Function;

  /** Creates the alias and its deployment group. */
  constructor(scope: Construct, id: string, props: LiveAliasProps) {
    super(scope, id);
    this.alias = new lambda.Alias(this, "Alias", {
      aliasName: "live",
      version: props.function.currentVersion,
      provisionedConcurrentExecutions: props.provisionedConcurrency || undefined,
    });
    if (props.preTrafficCheck) {
      this.preTrafficHook = this.createHook(props.function, props.preTrafficCheck);
    }
    this.deploymentGroup = new codedeploy.LambdaDeploymentGroup(this, "Deployment", {
      alias: this.alias,
      preHook: this.preTrafficHook,
      deploymentConfig: TRAFFIC_SHIFTS[props.shift],
      alarms: props.alarms ?? [],
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: true },
    });
    if (this.preTrafficHook) {
      // CodeDeploy's role may invoke the hook (any version of it, as CDK grants).
      const hookId = Stack.of(this).getLogicalId(
        this.preTrafficHook.node.defaultChild as CfnElement,
      );
      Validations.of(this.deploymentGroup).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${hookId}.Arn>:*]`,
        reason: "CodeDeploy invokes its own pre-traffic hook; the grant names that one function.",
      });
    }
    Validations.of(this.deploymentGroup).acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
      reason:
        "CodeDeploy's own service-role policy for Lambda releases: alias updates and hook invocations, nothing else.",
    });
  }

  /** The hook: `hooks/pre-traffic` (Node.js, the runtime's AWS SDK), allowed to invoke only the new version. */
  private createHook(fn: lambda.Function, check: PreTrafficCheck): lambda.Function {
    const version = fn.currentVersion;
    const hook = new lambda.Function(this, "PreTrafficCheck", {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: "index.handler",
      code: lambda.Code.fromAsset(path.join(__dirname, "hooks", "pre-traffic")),
      timeout: Duration.seconds(60),
      memorySize: 256,
      environment: { TARGET: version.functionArn, CHECK: JSON.stringify(check) },
      logGroup: new logs.LogGroup(this, "PreTrafficCheckLogs", {
        retention: logs.RetentionDays.THREE_MONTHS,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    version.grantInvoke(hook);
    Validations.of(hook).acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
      reason: "The hook writes its own log lines; the managed policy grants only that.",
    });
    skipCheckov(
      hook,
      {
        id: "CKV_AWS_115",
        comment:
          "Runs once per release, called by CodeDeploy only; reserving concurrency would take it from the functions that serve.",
      },
      {
        id: "CKV_AWS_116",
        comment:
          "Invoked by CodeDeploy, which records a failure as a failed release and rolls back; nothing to dead-letter.",
      },
      {
        id: "CKV_AWS_117",
        comment:
          "Calls only the Lambda and CodeDeploy public endpoints; a VPC would need endpoints and protect nothing.",
      },
      {
        id: "CKV_AWS_173",
        comment:
          "The environment holds a version ARN and the check's non-secret request, nothing else.",
      },
      {
        id: "CKV_AWS_45",
        comment:
          "The check's request carries no credential by design (a healthy version must refuse it); checkov's pattern matches its sample account id.",
      },
    );
    skipCheckov(hook.logGroup, {
      id: "CKV_AWS_158",
      comment:
        "CloudWatch Logs encrypts every log group at rest; the hook logs only its verdict, so a customer-managed key adds cost and key-policy risk only.",
    });
    return hook;
  }

  /** Adds an alarm that stops a release and moves the alias back. */
  addAlarm(alarm: cw.IAlarm): void {
    this.deploymentGroup.addAlarm(alarm);
  }
}
