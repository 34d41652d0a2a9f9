"""The delivery pipeline's promises, checked on the workflow files themselves.

Run by scripts/lint-workflows.sh (make test) with the venv's Python:
    .venv/bin/python -m unittest scripts/test_pipeline.py -v

What must hold: deploy.yml runs only after a green `ci` push run and deploys
that run's commit with that run's `lambda-zips` (never a rebuild), in the
order release -> diff -> staging -> smoke -> load -> production, production
only from a release tag and behind its environment; every action is pinned
to a commit; no job holds more permissions than it declares; no `${{ }}`
reaches a shell; the migration runs for real only after a dry run and an
approval. Each check is also run against a broken copy of the workflows, so
a check that can no longer fail is itself a failure.
"""

import copy
import pathlib
import re
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
FUNCTIONS = ["authorizer", "token-service", "offboarding", "migrator", "expiry", "api"]
PIPELINE = ["release", "diff", "staging", "smoke", "load", "production"]
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def load(path: pathlib.Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflows() -> dict:
    return {p.name: load(p) for p in sorted((GITHUB / "workflows").glob("*.yml"))}


def composite() -> dict:
    return load(GITHUB / "actions" / "prepare-deploy" / "action.yml")


def steps_of(job: dict) -> list:
    return job.get("steps", [])


def runs(doc: dict) -> list:
    """Every `run:` script of a workflow, a job or a composite action."""
    out = []
    if "jobs" in doc:
        jobs = doc["jobs"].values()
    elif "runs" in doc:
        jobs = [doc["runs"]]
    else:
        jobs = [doc]
    for job in jobs:
        out += [s["run"] for s in steps_of(job) if "run" in s]
    return out


def needs(job: dict) -> list:
    n = job.get("needs", [])
    return [n] if isinstance(n, str) else list(n)


def ancestors(jobs: dict, name: str) -> set:
    seen, todo = set(), list(needs(jobs[name]))
    while todo:
        j = todo.pop()
        if j not in seen:
            seen.add(j)
            todo += needs(jobs[j])
    return seen


# ---- the checks: each takes the parsed files and raises AssertionError ----


def check_deploy_waits_for_green_ci(wf: dict, action: dict) -> None:
    deploy = wf["deploy.yml"]
    assert set(deploy["on"]) == {"workflow_run"}, "deploy.yml must run only from ci's workflow_run"
    trigger = deploy["on"]["workflow_run"]
    assert trigger["workflows"] == [wf["ci.yml"]["name"]] and trigger["types"] == ["completed"]
    guard = deploy["jobs"]["release"]["if"]
    for must in (
        "github.event.workflow_run.conclusion == 'success'",
        "github.event.workflow_run.event == 'push'",
        "github.event.workflow_run.path == '.github/workflows/ci.yml'",
        "github.event.workflow_run.head_repository.full_name == github.repository",
    ):
        assert must in guard, f"release job must require {must}"
    for name in PIPELINE[1:]:
        assert "release" in ancestors(deploy["jobs"], name), f"{name} must come after release"


def check_exact_commit_and_ci_artifacts(wf: dict, action: dict) -> None:
    deploy = wf["deploy.yml"]
    release = deploy["jobs"]["release"]
    checkout = steps_of(release)[0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
    resolve = next(s for s in steps_of(release) if s.get("id") == "resolve")
    assert 'git rev-parse HEAD)" = "$HEAD_SHA"' in resolve["run"]
    assert resolve["run"].count("merge-base --is-ancestor") == 2, "main and release tags must be commits of main"
    assert "refs/tags/main" in resolve["run"], "a tag named main must not pass as the branch"
    assert deploy["concurrency"] == {"group": "deploy", "cancel-in-progress": False}, "one release at a time"
    for name in PIPELINE[1:]:
        job = deploy["jobs"][name]
        co = [s for s in steps_of(job) if str(s.get("uses", "")).startswith("actions/checkout@")]
        assert co and co[0]["with"]["ref"] == "${{ needs.release.outputs.sha }}", f"{name} checks out the release sha"
        prep = [s for s in steps_of(job) if s.get("uses") == "./.github/actions/prepare-deploy"]
        assert prep and prep[0]["with"]["run-id"] == "${{ github.event.workflow_run.id }}", f"{name}: CI run's artifacts"
    download = [s for s in steps_of(action["runs"]) if "download-artifact@" in str(s.get("uses", ""))]
    assert len(download) == 1, "prepare-deploy downloads exactly one artifact"
    w = download[0]["with"]
    assert w["name"] == "lambda-zips" and w["run-id"] == "${{ inputs.run-id }}" and "github-token" in w
    assert w["path"] == "target/lambda", "CDK reads target/lambda/<fn>/bootstrap.zip"
    verify = "\n".join(runs(action))
    assert "sha256sum --check" in verify
    for f in FUNCTIONS:
        assert f in verify
    everything = "\n".join(runs(deploy) + runs(action))
    for builder in ("cargo", "build-lambdas", "cargo-lambda", "zig"):
        assert builder not in everything, f"deploy must not build ({builder})"


def check_ci_builds_and_gates(wf: dict, action: dict) -> None:
    ci = wf["ci.yml"]
    push = ci["on"]["push"]
    assert push["branches"] == ["main"] and "v*" in push["tags"], "ci runs on main and release tags"
    jobs = ci["jobs"]
    for job in jobs.values():
        assert not job.get("continue-on-error"), "a gate that cannot fail is no gate"
        for s in steps_of(job):
            assert not s.get("continue-on-error"), "a gate that cannot fail is no gate"
    assert any(s.get("run") == "make test" for s in steps_of(jobs["test"])), "make test (schemathesis) gates"
    sc = steps_of(jobs["supply-chain"])
    assert any("cargo-deny-action@" in str(s.get("uses", "")) for s in sc)
    assert any("pnpm audit" in s.get("run", "") for s in sc)
    zips = jobs["lambda-zips"]
    upload = [s for s in steps_of(zips) if "upload-artifact@" in str(s.get("uses", ""))]
    assert upload and upload[0]["with"]["name"] == "lambda-zips"
    assert "target/lambda/*/bootstrap.zip" in upload[0]["with"]["path"]
    assert upload[0]["with"]["if-no-files-found"] == "error"
    script = "\n".join(runs(zips))
    assert "scripts/build-lambdas.sh" in script, "CI is where the zips are built"
    for f in FUNCTIONS:
        assert f in script, f"ci must check that {f} was packaged"


def check_order_and_environments(wf: dict, action: dict) -> None:
    jobs = wf["deploy.yml"]["jobs"]
    assert set(PIPELINE) <= set(jobs), f"deploy.yml must have jobs {PIPELINE}"
    for before, after in zip(PIPELINE, PIPELINE[1:]):
        assert before in needs(jobs[after]), f"{after} must need {before}"
    assert "diff" in needs(jobs["production"]), "reviewers approve production after seeing the diff"
    assert jobs["production"]["if"] == "needs.release.outputs.production == 'true'"
    assert jobs["production"]["environment"] == "production"
    for name in ("staging", "smoke", "load"):
        assert jobs[name]["environment"] == "staging", f"{name} runs against staging"
    deploys = {n: s["run"] for n, j in jobs.items() for s in steps_of(j) if "cdk deploy" in s.get("run", "")}
    assert set(deploys) == {"staging", "production"}
    # Staging runs prod's settings under its own name (and metrics namespace).
    assert "-c env=prod -c deployment=staging" in deploys["staging"] and "agpat-staging" in deploys["staging"]
    assert "-c env=prod" in deploys["production"] and "agpat-prod" in deploys["production"]
    assert "deployment=" not in deploys["production"]
    for name in ("staging", "production"):
        assert '-c "account=$ACCOUNT_ID" -c "region=$REGION"' in deploys[name], f"{name} pins its account"
    smoke = "\n".join(runs(jobs["smoke"]))
    assert "scripts/smoke_test.py --stack agpat-staging" in smoke
    load_ = jobs["load"]
    assert "scripts/load-test.sh" in "\n".join(runs(load_))
    env = next(s["env"] for s in steps_of(load_) if "load-test.sh" in s.get("run", ""))
    assert {"LOAD_USERS", "LOAD_SECONDS", "LOAD_P99_MS", "LOAD_MAX_ERROR_RATE"} <= set(env)
    assert "scripts/smoke_test.py --stack agpat-prod --no-public-revoke" in "\n".join(runs(jobs["production"])), (
        "production's smoke test must not page as a leak report"
    )


def check_migration_needs_dry_run_and_approval(wf: dict, action: dict) -> None:
    mig = wf["migrate.yml"]
    assert set(mig["on"]) == {"workflow_dispatch"}
    dry, real = mig["jobs"]["dry-run"], mig["jobs"]["migrate"]
    assert "dry-run" in needs(real)
    assert """--payload '{"dryRun":true}'""" in "\n".join(runs(dry))
    assert "dryRun" not in "\n".join(runs(real))
    assert dry["environment"] != real["environment"]
    assert real["environment"].endswith("-migration"), "the real run waits for its environment's reviewers"


def check_pins_permissions_and_injection(wf: dict, action: dict) -> None:
    for path in sorted(GITHUB.rglob("*.yml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^\s*-?\s*uses:\s*(.+?)\s*$", line)
            if m and not m.group(1).startswith("./"):
                ref = re.sub(r"\s+# zizmor:.*$", "", m.group(1))
                assert PINNED.match(ref), f"{path.name}: not pinned to a commit with a version comment: {ref}"
    docs = dict(wf, **{"prepare-deploy/action.yml": action})
    for name, doc in docs.items():
        if "jobs" in doc:
            assert doc.get("permissions") == {}, f"{name}: top-level permissions must be {{}}"
        for jname, job in doc.get("jobs", {"": doc.get("runs", {})}).items():
            if "jobs" in doc:
                assert "permissions" in job, f"{name}/{jname}: permissions must be explicit"
                perms = job["permissions"] or {}
                assert all(v in ("read", "none") for k, v in perms.items() if k != "id-token"), f"{name}/{jname} writes"
            holds_credentials = (job.get("permissions") or {}).get("id-token") == "write" or "environment" in job
            for s in steps_of(job):
                uses = str(s.get("uses", ""))
                if uses.startswith("actions/checkout@"):
                    assert s["with"]["persist-credentials"] is False, f"{name}/{jname}: persist-credentials: false"
                if uses.startswith("actions/setup-node@"):
                    assert str(s["with"]["node-version"]) in ("22", "24"), f"{name}/{jname}: Node.js 22 or 24"
                    assert s["with"].get("package-manager-cache") is False, f"{name}/{jname}: no npm cache"
                assert "rust-cache" not in uses, f"{name}/{jname}: no third-party cache"
                if holds_credentials:
                    assert "actions/cache" not in uses, f"{name}/{jname}: no cache where credentials live"
                assert "${{" not in s.get("run", ""), f"{name}/{jname}: ${{{{ }}}} in a run script"


INSTALLERS = re.compile(r"\b(pip|npm|pnpm) install\b|ensure-venv\.sh|apt-get install")


def check_installs_before_credentials(wf: dict, action: dict) -> None:
    """Package installs (their scripts run code) happen before a job holds AWS credentials."""
    for name in ("deploy.yml", "migrate.yml"):
        for jname, job in wf[name]["jobs"].items():
            creds_at = None
            for i, s in enumerate(steps_of(job)):
                uses = str(s.get("uses", ""))
                if "configure-aws-credentials@" in uses and creds_at is None:
                    creds_at = i
                installs = uses == "./.github/actions/prepare-deploy" or INSTALLERS.search(s.get("run", ""))
                if installs:
                    assert creds_at is None, f"{name}/{jname}: step {i} installs packages after AWS credentials"


CHECKS = [
    check_installs_before_credentials,
    check_deploy_waits_for_green_ci,
    check_exact_commit_and_ci_artifacts,
    check_ci_builds_and_gates,
    check_order_and_environments,
    check_migration_needs_dry_run_and_approval,
    check_pins_permissions_and_injection,
]


def breakages(wf: dict, action: dict):
    """Broken copies of the real files, each of which some check must reject."""

    def edit(fn):
        w, a = copy.deepcopy(wf), copy.deepcopy(action)
        fn(w, a)
        return w, a

    d = lambda w: w["deploy.yml"]["jobs"]  # noqa: E731
    yield "production no longer waits for the load test", edit(lambda w, a: d(w)["production"].update(needs=["release", "diff"]))
    yield "smoke test before the staging deploy", edit(lambda w, a: d(w)["smoke"].update(needs=["release", "diff"]))
    yield "deploy on a failed CI run", edit(lambda w, a: d(w)["release"].update({"if": "true"}))
    yield "deploy rebuilds the Lambdas", edit(lambda w, a: d(w)["staging"]["steps"].append({"run": "scripts/build-lambdas.sh"}))
    yield "artifacts from the latest run, not CI's", edit(lambda w, a: a["runs"]["steps"][0]["with"].pop("run-id"))
    zips = lambda w: w["ci.yml"]["jobs"]["lambda-zips"]["steps"]  # noqa: E731
    yield "CI no longer builds the zips", edit(lambda w, a: zips(w)[2].update(run="true"))
    yield "migrator missing from the CI zips", edit(
        lambda w, a: [s.update(run=s["run"].replace("migrator ", "")) for s in zips(w) if "run" in s]
    )
    yield "expiry missing from the CI zips", edit(
        lambda w, a: [s.update(run=s["run"].replace("expiry ", "")) for s in zips(w) if "run" in s]
    )
    yield "expiry missing from the deploy's zip check", edit(
        lambda w, a: [s.update(run=s["run"].replace("expiry ", "")) for s in a["runs"]["steps"] if "run" in s]
    )
    yield "a security gate that cannot fail", edit(lambda w, a: w["ci.yml"]["jobs"]["supply-chain"].update({"continue-on-error": True}))
    yield "production without reviewers", edit(lambda w, a: d(w)["production"].pop("environment"))
    yield "template injection in a script", edit(lambda w, a: d(w)["staging"]["steps"].append({"run": "echo ${{ github.event.workflow_run.head_branch }}"}))
    yield "credentials left in .git/config", edit(lambda w, a: d(w)["smoke"]["steps"][0]["with"].update({"persist-credentials": True}))
    yield "migration without a dry run", edit(lambda w, a: w["migrate.yml"]["jobs"]["migrate"].update(needs=[]))
    yield "an install after the credentials", edit(
        lambda w, a: d(w)["load"]["steps"].append({"run": "pip install something"})
    )
    yield "deploy on another workflow's success", edit(
        lambda w, a: d(w)["release"].update({"if": d(w)["release"]["if"].replace(".path ==", ".path !=")})
    )
    yield "Node.js 20", edit(lambda w, a: a["runs"]["steps"][2]["with"].update({"node-version": "20"}))


class Pipeline(unittest.TestCase):
    """One test per promise, plus the proof that each broken copy is caught."""

    @classmethod
    def setUpClass(cls):
        cls.wf, cls.action = workflows(), composite()

    def test_deploy_runs_only_after_a_green_ci_push_run(self):
        check_deploy_waits_for_green_ci(self.wf, self.action)

    def test_deploy_uses_the_exact_commit_and_ci_artifacts_and_never_builds(self):
        check_exact_commit_and_ci_artifacts(self.wf, self.action)

    def test_ci_builds_all_five_zips_and_its_security_gates_can_fail(self):
        check_ci_builds_and_gates(self.wf, self.action)

    def test_diff_staging_smoke_load_then_production_behind_reviewers(self):
        check_order_and_environments(self.wf, self.action)

    def test_migration_runs_for_real_only_after_a_dry_run_and_approval(self):
        check_migration_needs_dry_run_and_approval(self.wf, self.action)

    def test_actions_pinned_permissions_minimal_and_no_template_injection(self):
        check_pins_permissions_and_injection(self.wf, self.action)

    def test_packages_install_before_any_aws_credentials(self):
        check_installs_before_credentials(self.wf, self.action)

    def test_every_broken_copy_of_the_pipeline_is_rejected(self):
        for what, (wf, action) in breakages(self.wf, self.action):
            with self.subTest(what):
                caught = []
                for check in CHECKS:
                    try:
                        check(wf, action)
                    except (AssertionError, KeyError, StopIteration):
                        caught.append(check.__name__)
                self.assertTrue(caught, f"no check rejects: {what}")


if __name__ == "__main__":
    unittest.main()
