#!/usr/bin/env python3
"""Emergency revocation lever: make every revoked PAT fail at its next use.

A revoked PAT normally lives until the API Gateway authorizer cache TTL plus
the authorizer's in-process cache TTL have passed. This clears both caches,
in this order:

1. Replace the authorizer's instances (their in-process caches go with them):
   UpdateFunctionConfiguration sets AGPAT_CACHE_EPOCH=<UTC timestamp>,
   keeping every other variable, and waits until LastUpdateStatus is
   Successful. With --alias (API Gateway invokes an alias, e.g. `live` with
   provisioned concurrency), changing $LATEST does not touch the alias, so it
   then publishes a version, points the alias at it (all traffic, no weighted
   routing) and waits until the alias's provisioned concurrency is READY.
2. Flush the stage's authorizer cache (FlushStageAuthorizersCache).

Instances go first: flushing first would let an old instance re-fill the
gateway cache with a stale Allow before it is replaced.

Prints each step; exits non-zero on any failure. Needs boto3 (the project's
.venv has it). Locally, point it at the local gateway's control plane:
  --apigateway-endpoint-url http://127.0.0.1:3000/_aws/apigateway
  --lambda-endpoint-url http://127.0.0.1:3000/_aws/lambda
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

EPOCH_VARIABLE = "AGPAT_CACHE_EPOCH"


class LeverError(Exception):
    """A step failed; the message says which and why."""


def say(message: str) -> None:
    print(f"emergency-revoke: {message}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Clear the API Gateway authorizer cache and the authorizer's "
        "in-process caches, so that revoked PATs fail at their next use."
    )
    p.add_argument("--rest-api-id", required=True, help="the REST API's id")
    p.add_argument("--stage", required=True, help="the stage name, e.g. prod")
    p.add_argument("--function-name", required=True, help="the authorizer function (name or ARN)")
    p.add_argument(
        "--alias",
        help="the alias API Gateway invokes (e.g. live); omit when it invokes the function itself",
    )
    p.add_argument("--region", help="AWS region (default: the SDK's)")
    p.add_argument("--apigateway-endpoint-url", help="override the API Gateway endpoint (local tests)")
    p.add_argument("--lambda-endpoint-url", help="override the Lambda endpoint (local tests)")
    p.add_argument(
        "--timeout-seconds",
        type=float,
        default=600.0,
        help="how long to wait for the update and for provisioned concurrency (default 600)",
    )
    p.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often to poll while waiting (default 2)"
    )
    return p.parse_args(argv)


def wait_until(describe, done, what: str, timeout: float, poll: float):
    """Polls `describe()` until `done(result)` is True, False (failed) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = describe()
        verdict = done(result)
        if verdict is True:
            return result
        if verdict is False:
            status = {k: result.get(k) for k in ("LastUpdateStatus", "LastUpdateStatusReason", "Status", "StatusReason") if k in result}
            raise LeverError(f"{what} failed: {status}")
        if time.monotonic() >= deadline:
            raise LeverError(f"{what}: still not done after {timeout:.0f}s")
        time.sleep(poll)


def update_status(config: dict):
    status = config.get("LastUpdateStatus", "Successful")
    if status == "Successful":
        return True
    if status == "Failed":
        return False
    return None


def check_alias_is_settled(lam, args: argparse.Namespace) -> dict:
    """The lever must not change which code runs: refuse while a release is
    shifting the alias's traffic, or when $LATEST (which the lever publishes)
    holds other code than the version the alias serves."""
    alias = lam.get_alias(FunctionName=args.function_name, Name=args.alias)
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if weights:
        raise LeverError(
            f"alias {args.alias} is shifting traffic (a release is in progress: {weights}); "
            "stop or finish the release first, then run the lever"
        )
    serving = lam.get_function_configuration(FunctionName=args.function_name, Qualifier=alias["FunctionVersion"])
    latest = lam.get_function_configuration(FunctionName=args.function_name)
    if serving.get("CodeSha256") != latest.get("CodeSha256"):
        raise LeverError(
            f"$LATEST holds other code than version {alias['FunctionVersion']}, which alias {args.alias} serves; "
            "publishing it would release that code: deploy or roll back first"
        )
    return alias


def replace_instances(lam, args: argparse.Namespace, epoch: str) -> None:
    alias_before = check_alias_is_settled(lam, args) if args.alias else None
    current = lam.get_function_configuration(FunctionName=args.function_name)
    if current.get("LastUpdateStatus") == "InProgress":
        say("an update is already in progress; waiting for it first")
        current = wait_until(
            lambda: lam.get_function_configuration(FunctionName=args.function_name),
            update_status,
            "the update in progress",
            args.timeout_seconds,
            args.poll_seconds,
        )
    variables = dict((current.get("Environment") or {}).get("Variables") or {})
    previous = variables.get(EPOCH_VARIABLE)
    variables[EPOCH_VARIABLE] = epoch
    # UpdateFunctionConfiguration replaces the whole environment: send every
    # existing variable back. RevisionId refuses the update if the function
    # changed since we read it (nothing is lost; run the lever again).
    updated = lam.update_function_configuration(
        FunctionName=args.function_name,
        Environment={"Variables": variables},
        RevisionId=current["RevisionId"],
    )
    say(
        f"updated {updated['FunctionName']} $LATEST: {EPOCH_VARIABLE}={epoch} "
        f"(was {previous or 'unset'}; {len(variables) - 1} other variables kept)"
    )
    config = wait_until(
        lambda: lam.get_function_configuration(FunctionName=args.function_name),
        update_status,
        "the configuration update",
        args.timeout_seconds,
        args.poll_seconds,
    )
    say("configuration update Successful: new $LATEST instances")
    if not args.alias:
        return
    version = lam.publish_version(
        FunctionName=args.function_name,
        RevisionId=config["RevisionId"],
        Description=f"emergency revocation {epoch}",
    )["Version"]
    say(f"published version {version}")
    # Every request to the fresh version; refused if the alias moved since
    # it was checked (a release started meanwhile).
    guard = {"RevisionId": alias_before["RevisionId"]} if alias_before and alias_before.get("RevisionId") else {}
    alias = lam.update_alias(
        FunctionName=args.function_name,
        Name=args.alias,
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": {}},
        **guard,
    )
    say(f"alias {alias['Name']} now points to version {alias['FunctionVersion']}")
    try:
        lam.get_provisioned_concurrency_config(FunctionName=args.function_name, Qualifier=args.alias)
    except lam.exceptions.ProvisionedConcurrencyConfigNotFoundException:
        say(f"alias {args.alias} has no provisioned concurrency: nothing to wait for")
        return

    def pc_status(pc: dict):
        if pc["Status"] == "READY":
            return True
        if pc["Status"] == "FAILED":
            return False
        return None

    pc = wait_until(
        lambda: lam.get_provisioned_concurrency_config(
            FunctionName=args.function_name, Qualifier=args.alias
        ),
        pc_status,
        f"provisioned concurrency on {args.alias}",
        args.timeout_seconds,
        args.poll_seconds,
    )
    say(
        f"provisioned concurrency on {args.alias} READY "
        f"({pc.get('AvailableProvisionedConcurrentExecutions')} instances)"
    )


def flush(apigw, args: argparse.Namespace) -> None:
    apigw.flush_stage_authorizers_cache(restApiId=args.rest_api_id, stageName=args.stage)
    say(f"flushed the authorizer cache of stage {args.stage} of REST API {args.rest_api_id}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5})
    session = boto3.session.Session(region_name=args.region)
    lam = session.client("lambda", endpoint_url=args.lambda_endpoint_url, config=config)
    apigw = session.client("apigateway", endpoint_url=args.apigateway_endpoint_url, config=config)
    epoch = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        # 1. Replace the instances, 2. then flush: never the other way round.
        replace_instances(lam, args, epoch)
        flush(apigw, args)
    except (LeverError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        say(f"FAILED: {e}")
        say("revoked tokens may still be accepted until the cache bound has passed")
        return 1
    say("done: revoked tokens are refused from their next request")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
