"""Cold start and memory of an authorizer process under a minimal Lambda
Runtime API on loopback (make bench).

Starts a stub Runtime API (and a JWKS endpoint) in this process, execs the
authorizer with the environment Lambda would give it, and measures:
  * cold start: exec -> first completed decision (repeated, min/median/max);
  * peak RSS (VmHWM) after N decisions.
Usage: coldstart.py NAME EVENT_JSON JWKS_JSON REPEATS N -- CMD...
Prints one JSON line.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, event_path, jwks_path, repeats, total = sys.argv[1:6]
cmd = sys.argv[sys.argv.index("--") + 1:]
repeats, total = int(repeats), int(total)
event = open(event_path, "rb").read()
result_dir = os.path.dirname(os.path.abspath(event_path))
jwks = open(jwks_path, "rb").read()


class Run:
    def __init__(self, total):
        self.total, self.served, self.ok, self.errors = total, 0, 0, 0
        self.first = None
        self.done = threading.Event()
        self.lock = threading.Lock()


current = {"run": None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle plus
        # delayed ACKs stall keep-alive clients ~40 ms per request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        run = current["run"]
        if self.path.endswith("/jwks.json"):
            return self._send(200, jwks, {"Content-Type": "application/json"})
        if self.path.endswith("/runtime/invocation/next"):
            with run.lock:
                run.served += 1
                n = run.served
            if n > run.total:
                run.done.wait(60)
                return self._send(500)
            return self._send(200, event, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": f"req-{n}",
                "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30000),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:authorizer",
            })
        self._send(404)

    def do_POST(self):
        run = current["run"]
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.monotonic()
        with run.lock:
            if "/response" in self.path:
                run.ok += 1
            else:
                run.errors += 1
            if run.first is None:
                run.first = now
            finished = run.ok + run.errors >= run.total
        self._send(202, b"{}")
        if finished:
            run.done.set()


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the measured process is killed mid long-poll on purpose


server = QuietServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ)
env.update({
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
    "AWS_LAMBDA_FUNCTION_NAME": "authorizer",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/authorizer",
    "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "TABLE_NAME": "bench",
    "DYNAMODB_ENDPOINT": "http://127.0.0.1:9",
    "COGNITO_USER_POOL_ID": "us-east-1_BenchPool",
    "COGNITO_CLIENT_IDS": "benchclient",
    "JWKS_URL": f"http://127.0.0.1:{port}/jwks.json",
    # The stub stands in for Cognito's JWKS (over plain HTTP, on loopback); a
    # Cognito pool's default is Amazon's compiled-in roots, set here as the
    # stub's URL would otherwise select the system store.
    "AGPAT_TLS_ROOTS": "amazon",
    "JWKS_FILE": os.path.abspath(jwks_path),
    "RUST_LOG": "error",
    # The adopter fixture (12 scopes, 47 routes): its validation is part of
    # every cold start.
    "AGPAT_MANIFEST": os.path.abspath("testdata/manifests/adopter.toml"),
})


def measure(total):
    run = Run(total)
    current["run"] = run
    started = time.monotonic()
    stderr = open(f"{result_dir}/{name}.stderr", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    finished = run.done.wait(120)
    rss_kb = None
    try:
        with open(f"/proc/{proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    rss_kb = int(line.split()[1])
    except OSError:
        pass
    proc.kill()
    proc.wait()
    stderr.close()
    if not finished or run.errors:
        tail = open(f"{result_dir}/{name}.stderr", "rb").read()[-2000:].decode(errors="replace")
        raise SystemExit(f"{name}: run failed (ok={run.ok}, errors={run.errors}); stderr tail:\n{tail}")
    return (run.first - started) * 1000.0, rss_kb


cold = [measure(1)[0] for _ in range(repeats)]
_, rss = measure(total)
print(json.dumps({
    "implementation": name,
    "cold_start_ms": {"min": round(min(cold), 1), "median": round(statistics.median(cold), 1), "max": round(max(cold), 1)},
    "decisions_for_rss": total,
    "peak_rss_mb": round(rss / 1024, 1) if rss else None,
}))
