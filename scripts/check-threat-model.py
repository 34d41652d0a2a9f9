#!/usr/bin/env python3
"""Fails when threat-model.md cites a test that does not exist.

Every backticked token that looks like a test name (lower snake_case with at
least two underscores) must be defined as `fn <name>` in the Rust sources or
`def <name>` in the Python scripts (scripts/).
Every Jest title cited as `Jest "title"` must be the title of an infrastructure
test. Prints how many names it checked, so the check can be seen to have run.
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
# Python tests (the pipeline test, the smoke test) count as well.
for path in (root / "scripts").rglob("*.py"):
    defined.update(re.findall(r"\bdef\s+([a-z][a-z0-9_]*)", path.read_text(encoding="utf-8")))
missing = [name for name in cited if name not in defined]
for name in missing:
    print(f"threat-model.md cites `{name}`, which is not a function in the code", file=sys.stderr)

# Jest tests are cited as: Jest "title", "title" (in one table cell or paragraph).
# Each title must appear verbatim in an infrastructure test file.
jest_cited = set()
for cell in re.split(r"\||\n\s*\n", text):
    for match in re.finditer(r'Jest\s+((?:"[^"]+"\s*(?:,|and|or)?\s*)+)', cell):
        jest_cited.update(" ".join(t.split()) for t in re.findall(r'"([^"]+)"', match.group(1)))
jest_sources = "".join(
    p.read_text(encoding="utf-8")
    for pattern in ("infra/test/*.ts", "examples/*/infra/*.test.ts")
    for p in root.glob(pattern)
)
jest_missing = sorted(t for t in jest_cited if t not in jest_sources)
for title in jest_missing:
    print(f'threat-model.md cites Jest "{title}", which no infrastructure test is named', file=sys.stderr)

checked = len(cited) + len(jest_cited)
failed = len(missing) + len(jest_missing)
print(f"threat-model: {checked - failed} passed, {failed} failed ({len(jest_cited)} Jest titles)")
sys.exit(1 if failed else 0)
