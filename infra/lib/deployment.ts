import {
  Validations,
  aws_cloudwatch as cw,
  aws_codedeploy as codedeploy,
  aws_lambda as lambda,
} from "aws-cdk-lib";
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

  /** Creates the alias and its deployment group. */
  constructor(scope: Construct, id: string, props: LiveAliasProps) {
    super(scope, id);
    this.alias = new lambda.Alias(this, "Alias", {
      aliasName: "live",
      version: props.function.currentVersion,
      provisionedConcurrentExecutions: props.provisionedConcurrency || undefined,
    });
    this.deploymentGroup = new codedeploy.LambdaDeploymentGroup(this, "Deployment", {
      alias: this.alias,
      deploymentConfig: TRAFFIC_SHIFTS[props.shift],
      alarms: props.alarms ?? [],
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: true },
    });
    Validations.of(this.deploymentGroup).acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
      reason:
        "CodeDeploy's own service-role policy for Lambda releases: alias updates and hook invocations, nothing else.",
    });
  }

  /** Adds an alarm that stops a release and moves the alias back. */
  addAlarm(alarm: cw.IAlarm): void {
    this.deploymentGroup.addAlarm(alarm);
  }
}
