"""Turns the raw outputs of scripts/bench.sh into the tables of BENCHMARKS.md."""
import json
import re
import sys

out = sys.argv[1]
crit = open(f"{out}/criterion.txt").read()


def median_us(name):
    m = re.search(rf"{name}\s+time:\s+\[([\d.]+) (\w+) ([\d.]+) (\w+) ([\d.]+) (\w+)\]", crit)
    if not m:
        return None
    scale = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3}
    return [float(m.group(i)) * scale[m.group(i + 1)] for i in (1, 3, 5)]


rows = [
    ("bare_rs256_verify_floor", "bare RS256 verify (floor)"),
    ("jwt_first_seen_decision", "JWT decision, token not seen before"),
    ("jwt_seen_decision", "JWT decision, token seen (verified cache)"),
    ("pat_warm_decision", "PAT decision, warm (cache hit)"),
    ("argon2/pat_cold_decision_argon2", "PAT decision, cold (argon2id, in-memory store)"),
    ("pat_junk_rejection", "PAT junk rejection"),
    ("allow_list_check_16_networks", "IP allow-list check, 16 networks (added to each PAT decision with a list)"),
    ("policy_for_all_scopes", "policy building, largest scope set"),
    ("jwt_decision_warm_jwks_event_to_json", "JWT decision incl. event/response JSON"),
    ("pat_decision_warm_cache_event_to_json", "PAT decision incl. event/response JSON"),
    ("metrics_record_handoff", "metrics: EMF record hand-off (writer busy, no wake)"),
    ("metrics_record_handoff_idle_writer", "metrics: EMF record hand-off waking an idle writer (Lambda case)"),
    ("metrics_record_dropped_full_channel", "metrics: record dropped on a full channel"),
    ("jwt_seen_decision_metrics_off", "JWT decision, seen, metrics off"),
    ("jwt_seen_decision_metrics_on", "JWT decision, seen, metrics on"),
    ("metrics_render_line_writer_thread", "metrics: rendering one EMF line (writer thread, off the hot path)"),
]
print("| benchmark | CI low | estimate | CI high (µs, criterion 95% interval) |\n|---|---|---|---|")
values = {}
for key, label in rows:
    v = median_us(key)
    values[key] = v
    if v:
        print(f"| {label} (`{key}`) | {v[0]:.2f} | {v[1]:.2f} | {v[2]:.2f} |")
floor = values.get("bare_rs256_verify_floor")
first = values.get("jwt_first_seen_decision")
if floor and first:
    print(f"\nJWT first-seen / floor = {first[1] / floor[1]:.2f}x")
rust = json.load(open(f"{out}/peer-rust.json"))
node = json.load(open(f"{out}/peer-node.json"))
print("\n| per core, same 2,000 tokens | decisions/s | vs aws-jwt-verify |\n|---|---|---|")
print(f"| aws-jwt-verify (Node) | {node['first_seen_per_s']:.0f} | 1.0x |")
print(f"| agpat, token not seen before | {rust['first_seen_per_s']:.0f} | {rust['first_seen_per_s'] / node['first_seen_per_s']:.1f}x |")
print(f"| agpat, token seen again | {rust['seen_per_s']:.0f} | {rust['seen_per_s'] / node['first_seen_per_s']:.1f}x |")
cr = json.load(open(f"{out}/coldstart-rust.json"))
cn = json.load(open(f"{out}/coldstart-node.json"))
print("\n| cold start (exec to first decision) | min | median | max (ms) | peak RSS after 10^4 decisions |\n|---|---|---|---|---|")
for c in (cr, cn):
    s = c["cold_start_ms"]
    print(f"| {c['implementation']} | {s['min']} | {s['median']} | {s['max']} | {c['peak_rss_mb']} MB |")
print(f"\nCold start ratio (Node median / Rust median): {cn['cold_start_ms']['median'] / cr['cold_start_ms']['median']:.1f}x")
sizes = json.load(open(f"{out}/sizes.json"))
arm = f"{sizes['arm64_bytes'] / 1e6:.1f} MB" if sizes["arm64_bytes"] else "not built (make lambdas)"
print(f"\nStripped authorizer binary: x86_64 {sizes['x86_64_bytes'] / 1e6:.1f} MB, arm64 {arm}")
wrk = open(f"{out}/gateway-wrk.txt").read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk)
p50 = re.search(r"50%\s+([\d.]+\w+)", wrk)
p99 = re.search(r"99%\s+([\d.]+\w+)", wrk)
if rps:
    print(f"\nLocal gateway, cached authorizer, GET /me: {float(rps.group(1)):.0f} req/s, p50 {p50.group(1) if p50 else '?'}, p99 {p99.group(1) if p99 else '?'}")
