#!/usr/bin/env python3
"""Fails when threat-model.md cites a test that does not exist.

Every backticked token that looks like a Rust test name (lower snake_case with
at least two underscores) must be defined as `fn <name>` in the Rust sources.
Prints how many names it checked, so the check can be seen to have run.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
text = (root / "threat-model.md").read_text(encoding="utf-8")
cited = sorted(set(re.findall(r"`([a-z][a-z0-9_]{5,})`", text)))
cited = [name for name in cited if name.count("_") >= 2]
defined = set()
for path in root.rglob("*.rs"):
    if any(part in ("target", "node_modules", ".venv") for part in path.parts):
        continue
    defined.update(re.findall(r"\bfn\s+([a-z][a-z0-9_]*)", path.read_text(encoding="utf-8")))
missing = [name for name in cited if name not in defined]
for name in missing:
    print(f"threat-model.md cites `{name}`, which is not a function in the code", file=sys.stderr)
print(f"threat-model: {len(cited) - len(missing)} passed, {len(missing)} failed")
sys.exit(1 if missing else 0)
