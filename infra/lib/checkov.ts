/**
 * Checkov findings accepted on one resource, written where checkov reads
 * them: the resource's `Metadata.checkov.skip` in the synthesized template.
 * `scripts/check-iac.sh` fails on every finding not skipped this way.
 */
import { CfnResource } from "aws-cdk-lib";
import { IConstruct } from "constructs";

/** One accepted checkov finding: the check and why it does not apply here. */
export interface CheckovSkip {
  /** The check, e.g. `CKV_AWS_117`. */
  readonly id: string;
  /** Why the finding is accepted; shown by checkov next to the skip. */
  readonly comment: string;
}

/**
 * Adds `skips` to the checkov metadata of `construct`'s CloudFormation
 * resource (its default child for an L2), keeping skips already there.
 */
export function skipCheckov(construct: IConstruct, ...skips: CheckovSkip[]): void {
  const resource = construct.node.defaultChild ?? construct;
  if (!CfnResource.isCfnResource(resource)) {
    throw new Error(`${construct.node.path}: no CloudFormation resource to put checkov skips on`);
  }
  for (const skip of skips) {
    if (!/^CKV2?_[A-Z0-9]+_[0-9]+$/.test(skip.id) || skip.comment.trim().length < 20) {
      throw new Error(`${construct.node.path}: a checkov skip needs a check id and a real reason`);
    }
  }
  const existing = (resource.getMetadata("checkov") as { skip?: CheckovSkip[] } | undefined)?.skip;
  resource.addMetadata("checkov", { skip: [...(existing ?? []), ...skips] });
}
