"""Turns the raw outputs of scripts/bench.sh (target/bench/) into the tables of
BENCHMARKS.md.

Usage:
  summarize.py OUT                      print every generated block (summary.md)
  summarize.py OUT --write BENCHMARKS.md  also replace each marked block in the file
  summarize.py OUT --record-machine     write OUT/machine.json (start of a run)

A block of BENCHMARKS.md is the text between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`; only that text is replaced, the prose around it is
left alone. Blocks: machine, targets, criterion, peer, coldstart, sizes,
gateway, fleet. A block whose inputs are missing says "not measured in this
run"; the summarizer never fails on a missing or partial run.

Inputs in OUT (each optional):
  machine.json        cores, CPU, RAM, OS, rustc, node, date (--record-machine)
  steps.tsv           step, exit status, seconds (scripts/bench.sh)
  criterion.txt       `cargo bench` output; every `NAME time: [low est high]` row
  peer-rust.json, peer-node.json    side by side with aws-jwt-verify
  coldstart-rust.json, coldstart-node.json    bench/coldstart.py
  sizes.json          x86_64_bytes, arm64_bytes (stripped), arm64_error
  gateway-wrk.txt     `wrk --latency` output, after a `pinned: ...` line
  p8.json             {"argon2_per_genuine_token_per_instance": N, ...}
  fleet.md, fleet-validation.md    the fleet model's tables, verbatim
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

NOT_MEASURED = "_not measured in this run_"
MB = 1e6  # sizes in MB are 10^6 bytes, as in earlier rounds

# Known criterion rows, in the order the table shows them; rows not named
# here follow in the order of criterion.txt, labelled by their name alone.
CRITERION_LABELS = [
    ("bare_rs256_verify_floor", "bare RS256 verify, jsonwebtoken + aws-lc-rs: **the floor**"),
    ("jwt_first_seen_decision", "JWT decision, token not seen before"),
    ("jwt_seen_decision", "JWT decision, token seen (verified cache)"),
    ("jwt_cache_key_hmac_sha256", "the seen JWT's cache key: HMAC-SHA256 of the whole token"),
    ("pat_warm_decision", "PAT decision, warm (cache hit)"),
    ("argon2/pat_cold_decision_argon2", "PAT decision, cold: a fresh instance, argon2id"),
    ("pat_junk_rejection", "PAT junk rejection, bad checksum"),
    ("allow_list_check_16_networks", "IP allow-list check, 16 networks, address in the last"),
    ("policy_build_fixture_all_scopes", "all-scopes policy of the fixture, built"),
    ("policy_cached_fixture_all_scopes", "all-scopes policy of the fixture, from the per-scope-set cache"),
    ("policy_for_all_scopes", "policy building, largest scope set"),
    ("manifest_load_fixture_47_routes", "manifest load, fixture, 47 routes"),
    ("manifest_load_synthetic_500_routes", "manifest load, synthetic, 500 routes"),
    ("jwt_decision_warm_jwks_event_to_json", "JWT decision, first seen, event JSON to response JSON"),
    ("jwt_seen_decision_event_to_json", "JWT decision, seen, event JSON to response JSON"),
    ("pat_decision_warm_cache_event_to_json", "PAT decision, warm, event JSON to response JSON"),
    ("pat_dpop_decision_warm_cache_event_to_json", "DPoP-bound PAT decision, warm, event JSON to response JSON (proof checks + in-memory replay set)"),
    ("dpop_proof_check_es256", "DPoP proof check alone, ES256 (signature, claims, thumbprint)"),
    ("metrics_record_handoff", "metrics: EMF record hand-off (writer busy, no wake)"),
    ("metrics_record_handoff_idle_writer", "metrics: EMF record hand-off waking an idle writer (Lambda case)"),
    ("metrics_record_dropped_full_channel", "metrics: record dropped on a full channel"),
    ("jwt_seen_decision_metrics_off", "JWT decision, seen, metrics off"),
    ("jwt_seen_decision_metrics_on", "JWT decision, seen, metrics on"),
    ("metrics_render_line_writer_thread", "metrics: rendering one EMF line (writer thread)"),
]

UNIT_TO_US = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}

# A criterion result: the name at the start of a line, then (on the same or
# the next line) `time: [low unit estimate unit high unit]`.
CRITERION_ROW = re.compile(
    r"^(?P<name>[^\s:]+)\s+time:\s+\["
    r"(?P<lo>[\d.]+) (?P<lou>\S+) (?P<est>[\d.]+) (?P<estu>\S+) (?P<hi>[\d.]+) (?P<hiu>\S+)\]",
    re.MULTILINE,
)


# ---------------------------------------------------------------- inputs


def read_text(out, name):
    """The file's text, or None when the run did not produce it."""
    try:
        with open(os.path.join(out, name), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def read_json(out, name):
    """The file's JSON value, or None when missing or not JSON."""
    text = read_text(out, name)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        print(f"summarize: {name} is not JSON; treated as missing", file=sys.stderr)
        return None


def parse_criterion(text):
    """{name: (low, estimate, high)} in µs, in the order of the output (last run wins)."""
    rows = {}
    for m in CRITERION_ROW.finditer(text or ""):
        try:
            values = tuple(float(m.group(g)) * UNIT_TO_US[m.group(g + "u")] for g in ("lo", "est", "hi"))
        except KeyError:
            continue
        rows.pop(m.group("name"), None)
        rows[m.group("name")] = values
    return rows


def wrk_duration_ms(text):
    """wrk's `589.00us`, `1.60ms`, `1.02s`, `2.00m` in ms."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def parse_wrk(text):
    """The figures of one `wrk --latency` run, or None when it has no result."""
    if not text:
        return None
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        return None
    result = {"rps": float(rps.group(1)), "latency_ms": {}}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", text, re.MULTILINE)
        if m:
            result["latency_ms"][pct] = wrk_duration_ms(m.group(1))
    m = re.search(r"^\s*Latency\s+\S+\s+\S+\s+(\S+)", text, re.MULTILINE)
    result["max_ms"] = wrk_duration_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) threads and (\d+) connections", text)
    result["threads"], result["connections"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    result["requests"] = int(m.group(1)) if m else None
    result["duration"] = m.group(2) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    result["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", text)
    result["socket_errors"] = m.group(1).strip() if m else None
    m = re.search(r"^pinned:\s*(.*)$", text, re.MULTILINE)
    result["pinned"] = m.group(1).strip() if m else None
    return result


# ---------------------------------------------------------------- formatting


def fmt_us(v):
    """A µs figure with the precision criterion's interval deserves."""
    if v < 1:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:,.0f}".replace(",", " ")


def fmt_int(v):
    return f"{v:,.0f}".replace(",", " ")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- blocks


def block_machine(out):
    m = read_json(out, "machine.json")
    if not m:
        return NOT_MEASURED
    rows = [
        ("date of the run (UTC)", m.get("date", "?")),
        ("cores", m.get("cores", "?")),
        ("CPU", m.get("cpu", "?")),
        ("RAM", m.get("ram", "?")),
        ("OS", m.get("os", "?")),
        ("kernel", m.get("kernel", "?")),
        ("rustc", m.get("rustc", "?")),
        ("Node.js", m.get("node", "?")),
    ]
    text = table(["machine", "this run"], rows)
    steps = read_text(out, "steps.tsv")
    if steps:
        step_rows = []
        for line in steps.splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                name, rc, secs = parts
                status = "ok" if rc == "0" else ("timed out" if rc == "124" else f"failed (exit {rc})")
                step_rows.append((name, status, secs))
        if step_rows:
            text += "\n\n" + table(["step of this run", "status", "seconds"], step_rows)
    return text


INCOMPLETE = (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError)


def target_rows(out):
    """The P1–P8 rows of issue 17: (id, what, target, measured, verdict).

    Each row is computed on its own: a missing or partial input makes that
    row "n/a, not measured" and leaves the others alone."""
    est = {k: v[1] for k, v in parse_criterion(read_text(out, "criterion.txt")).items()}
    floor = est.get("bare_rs256_verify_floor")
    rust, node = read_json(out, "coldstart-rust.json"), read_json(out, "coldstart-node.json")
    sizes = read_json(out, "sizes.json")
    wrk = parse_wrk(read_text(out, "gateway-wrk.txt"))
    p8 = read_json(out, "p8.json")

    def ratio(key, limit):
        r = est[key] / floor
        return f"{r:.2f}× ({fmt_us(est[key])} / {fmt_us(floor)} µs)", r <= limit

    def micros(key, limit):
        return f"{fmt_us(est[key])} µs", est[key] <= limit

    def p3():
        warm, as_json = est["pat_warm_decision"], est["pat_decision_warm_cache_event_to_json"]
        return f"{fmt_us(warm)} / {fmt_us(as_json)} µs", warm <= 1.0 and as_json <= 3.0

    def p4():
        r = rust["cold_start_ms"]["median"]
        if not node:
            return f"{r:.1f} ms; Node peer not measured", False
        n = node["cold_start_ms"]["median"]
        return f"{r:.1f} ms; Node {n:.1f} ms = {n / r:.1f}×", r <= 5.0 and n / r >= 15.0

    def p5():
        arm = sizes["arm64_bytes"]
        return f"{arm / MB:.2f} MB ({fmt_int(arm)} bytes)", arm <= 6 * MB

    def p6():
        rss = rust["peak_rss_mb"]
        return f"{rss:.1f} MB after {fmt_int(rust['decisions_for_rss'])} decisions", rss <= 12.0

    def p7():
        p99 = wrk["latency_ms"]["99"]
        notes = []
        if not wrk["pinned"]:
            notes.append("not pinned")
        if wrk["non_2xx"]:
            notes.append(f"{fmt_int(wrk['non_2xx'])} of {fmt_int(wrk['requests'] or 0)} answers not 2xx")
        measured = f"{wrk['rps'] / 1000:.1f}k rps, p99 {p99:.2f} ms" + (f" ({'; '.join(notes)})" if notes else "")
        return measured, wrk["rps"] >= 40000 and p99 <= 5.0 and not notes

    def p8_row():
        value = p8["argon2_per_genuine_token_per_instance"]
        return f"{value:g}", value == 1

    specs = [
        ("P1", "JWT first seen, decision / bare RS256 floor", "≤ 1.10×",
         lambda: ratio("jwt_first_seen_decision", 1.10)),
        ("P1e", "JWT first seen, event JSON → response JSON / floor", "≤ 1.25×",
         lambda: ratio("jwt_decision_warm_jwks_event_to_json", 1.25)),
        ("P2", "JWT seen (verified cache), decision", "≤ 1.0 µs", lambda: micros("jwt_seen_decision", 1.0)),
        ("P2e", "JWT seen, event JSON → response JSON", "≤ 3 µs",
         lambda: micros("jwt_seen_decision_event_to_json", 3.0)),
        ("P3", "PAT warm, decision / event → JSON", "≤ 1.0 / ≤ 3 µs", p3),
        ("P4", "cold start, exec → first decision, median of 10", "≤ 5 ms, and ≥ 15× the Node peer", p4),
        ("P5", "authorizer binary, arm64, stripped", "≤ 6 MB", p5),
        ("P6", "peak RSS after 10⁴ decisions", "≤ 12 MB", p6),
        ("P7", "local gateway, cached authorizer, wrk and gateway pinned to separate cores",
         "≥ 40k rps, p99 ≤ 5 ms", p7),
        ("P8", "argon2 evaluations per genuine token per instance", "exactly 1 per instance lifetime", p8_row),
    ]
    rows = []
    for pid, what, goal, compute in specs:
        try:
            measured, ok = compute()
            rows.append((pid, what, goal, measured, "met" if ok else "missed"))
        except INCOMPLETE:
            rows.append((pid, what, goal, "n/a", "not measured"))
    return rows


def block_targets(out):
    rows = target_rows(out)
    text = table(["id", "what", "target", "measured", "verdict"], rows)
    return text + (
        "\n\nµs figures are criterion's estimate (the middle of its 95 % interval); "
        "MB are 10⁶ bytes for sizes and MiB (VmHWM / 1024) for RSS."
    )


def block_criterion(out):
    crit = parse_criterion(read_text(out, "criterion.txt"))
    if not crit:
        return NOT_MEASURED
    labels = dict(CRITERION_LABELS)
    order = [k for k, _ in CRITERION_LABELS if k in crit] + [k for k in crit if k not in labels]
    rows = []
    for key in order:
        lo, mid, hi = crit[key]
        label = f"{labels[key]} (`{key}`)" if key in labels else f"`{key}`"
        rows.append((label, fmt_us(lo), fmt_us(mid), fmt_us(hi)))
    text = table(["benchmark", "CI low", "estimate", "CI high (µs)"], rows)
    floor = crit.get("bare_rs256_verify_floor")
    ratios = []
    for key, name in (("jwt_first_seen_decision", "first-seen JWT"),
                      ("jwt_decision_warm_jwks_event_to_json", "event-to-JSON JWT")):
        if floor and key in crit:
            ratios.append(f"{name} / floor = **{crit[key][1] / floor[1]:.2f}×**")
    if ratios:
        text += "\n\nRatios: " + "; ".join(ratios) + "."
    return text


def block_peer(out):
    rust, node = read_json(out, "peer-rust.json"), read_json(out, "peer-node.json")
    if not rust or not node:
        return NOT_MEASURED
    base = node["first_seen_per_s"]
    rows = [
        ("aws-jwt-verify (Node)", fmt_int(base), "1.0×"),
        ("agpat, token not seen before", fmt_int(rust["first_seen_per_s"]), f"{rust['first_seen_per_s'] / base:.1f}×"),
        ("agpat, token seen again (verified cache)", fmt_int(rust["seen_per_s"]), f"{rust['seen_per_s'] / base:.1f}×"),
    ]
    return table(["implementation", "decisions/s (one core)", "vs aws-jwt-verify"], rows)


def block_coldstart(out):
    runs = [c for c in (read_json(out, "coldstart-rust.json"), read_json(out, "coldstart-node.json")) if c]
    if not runs:
        return NOT_MEASURED
    rows = []
    for c in runs:
        s = c["cold_start_ms"]
        rss = f"{c['peak_rss_mb']} MB" if c.get("peak_rss_mb") is not None else "?"
        rows.append((c["implementation"], s["min"], s["median"], s["max"], rss))
    text = table(["authorizer", "min", "median", "max (ms)", "peak RSS after 10⁴ decisions"], rows)
    if len(runs) == 2:
        r, n = runs[0]["cold_start_ms"]["median"], runs[1]["cold_start_ms"]["median"]
        text += f"\n\nCold-start ratio (Node median / Rust median): **{n / r:.1f}×**."
    return text


def block_sizes(out):
    sizes = read_json(out, "sizes.json")
    if not sizes:
        return NOT_MEASURED

    def cell(key):
        v = sizes.get(key)
        return (f"{v / MB:.2f} MB", fmt_int(v)) if v else ("not measured", "–")

    x86, arm = cell("x86_64_bytes"), cell("arm64_bytes")
    rows = [("x86_64 (`cargo build --release`)", *x86),
            ("arm64 (`cargo lambda build --release --arm64`)", *arm)]
    text = table(["authorizer binary, stripped", "size", "bytes"], rows)
    if sizes.get("arm64_error"):
        text += f"\n\narm64 build: {sizes['arm64_error']}"
    return text


def block_gateway(out):
    wrk = parse_wrk(read_text(out, "gateway-wrk.txt"))
    if not wrk:
        return NOT_MEASURED
    lat = wrk["latency_ms"]

    def ms(v):
        return f"{v:.2f}" if v is not None else "?"

    rows = [(
        wrk["pinned"] or "not pinned",
        f"{wrk['threads']} / {wrk['connections']}",
        wrk["duration"] or "?",
        fmt_int(wrk["rps"]),
        ms(lat.get("50")), ms(lat.get("90")), ms(lat.get("99")), ms(wrk["max_ms"]),
        fmt_int(wrk["non_2xx"]),
        wrk["socket_errors"] or "0",
    )]
    return table(["cores", "wrk threads / connections", "duration", "req/s", "p50", "p90", "p99", "max (ms)",
                  "non-2xx", "socket errors"], rows)


def block_fleet(out):
    parts = [t.strip() for t in (read_text(out, "fleet.md"), read_text(out, "fleet-validation.md")) if t and t.strip()]
    return "\n\n".join(parts) if parts else NOT_MEASURED


def block_dpop(out):
    """A bound token's decision against the plain one (the same criterion run),
    and the replay store's round trip on moto."""
    est = {k: v[1] for k, v in parse_criterion(read_text(out, "criterion.txt") or "").items()}
    replay = read_json(out, "dpop.json")
    if not est and not replay:
        return NOT_MEASURED
    parts = []
    plain = est.get("pat_decision_warm_cache_event_to_json")
    bound = est.get("pat_dpop_decision_warm_cache_event_to_json")
    check = est.get("dpop_proof_check_es256")
    if plain and bound:
        rows = [
            ("PAT, warm, event JSON to response JSON", f"{plain:.2f}", "–"),
            ("DPoP-bound PAT, warm, the same, with a fresh proof", f"{bound:.2f}", f"+{bound - plain:.2f}"),
        ]
        if check:
            rows.append(("of which: the proof's checks alone (ES256 signature, claims, thumbprint)", f"{check:.2f}", "–"))
        parts.append(table(["decision (criterion, this run)", "µs", "added by DPoP"], rows))
    if replay:
        f, r, race = replay["first_use_ms"], replay["replay_ms"], replay["race"]
        rows = [
            ("a proof's first use (accepted)", f"{f['p50']:.2f}", f"{f['p99']:.2f}", fmt_int(f["n"])),
            ("a replay (refused by the condition)", f"{r['p50']:.2f}", f"{r['p99']:.2f}", fmt_int(r["n"])),
        ]
        parts.append(table([f"replay store: conditional PutItem, {replay['store']}", "p50 (ms)", "p99 (ms)", "n"], rows))
        parts.append(
            f"Racers: {race['racers_per_key']} concurrent first uses of each of {fmt_int(race['keys'])} proofs: "
            f"{fmt_int(race['wins'])} accepted, exactly one per proof."
        )
    return "\n\n".join(parts) if parts else NOT_MEASURED


BLOCKS = {
    "machine": block_machine,
    "targets": block_targets,
    "criterion": block_criterion,
    "peer": block_peer,
    "coldstart": block_coldstart,
    "sizes": block_sizes,
    "gateway": block_gateway,
    "fleet": block_fleet,
    "dpop": block_dpop,
}


def render(out):
    """Every block's markdown; a block that cannot be computed says so."""
    blocks = {}
    for name, make in BLOCKS.items():
        try:
            blocks[name] = make(out)
        except INCOMPLETE as e:
            print(f"summarize: block {name}: inputs incomplete ({type(e).__name__}: {e})", file=sys.stderr)
            blocks[name] = NOT_MEASURED
    return blocks


# ---------------------------------------------------------------- BENCHMARKS.md


def replace_blocks(text, blocks):
    """The text with each `<!-- bench:NAME -->` … `<!-- /bench:NAME -->` filled
    from blocks; (new text, names replaced)."""
    replaced = []

    def fill(m):
        name = m.group(1)
        if name not in blocks:
            print(f"summarize: unknown block `{name}` left alone", file=sys.stderr)
            return m.group(0)
        replaced.append(name)
        return f"<!-- bench:{name} -->\n{blocks[name]}\n<!-- /bench:{name} -->"

    new = re.sub(r"<!-- bench:([\w-]+) -->.*?<!-- /bench:\1 -->", fill, text, flags=re.DOTALL)
    return new, replaced


def write_into(path, blocks):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new, replaced = replace_blocks(text, blocks)
    missing = [n for n in blocks if n not in replaced]
    if missing:
        print(f"summarize: {path} has no marker for: {', '.join(missing)}", file=sys.stderr)
    if new != text:
        tmp = path + ".partial"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(tmp, path)
    print(f"summarize: refreshed {', '.join(replaced) or 'nothing'} in {path}", file=sys.stderr)


# ---------------------------------------------------------------- machine


def command_line(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def machine_facts():
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.MULTILINE)
        if model:
            cpu = f"{model.group(1).strip()} ({platform.machine()})"
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    os_name = platform.system()
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', f.read(), re.MULTILINE)
        if m:
            os_name = m.group(1)
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram": ram,
        "os": os_name,
        "kernel": platform.release(),
        "rustc": command_line("rustc", "--version"),
        "node": command_line("node", "--version"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the directory of the run's raw outputs (target/bench)")
    parser.add_argument("--write", metavar="BENCHMARKS.md", help="replace the marked blocks of this file")
    parser.add_argument("--record-machine", action="store_true", help="write OUT/machine.json and exit")
    args = parser.parse_args(argv)
    if args.record_machine:
        facts = machine_facts()
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "machine.json"), "w", encoding="utf-8") as f:
            json.dump(facts, f)
        print(f"{facts['cores']} cores, {facts['cpu']}, {facts['ram']}, {facts['os']}, "
              f"{facts['rustc']}, node {facts['node']}, {facts['date']} UTC")
        return 0
    blocks = render(args.out)
    for name, body in blocks.items():
        print(f"## {name}\n\n{body}\n")
    if args.write:
        write_into(args.write, blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
