"""Start moto server single-threaded on a loopback port.

Threaded moto does not apply DynamoDB conditional writes atomically, which would
make the cap and rotation tests flaky (or let a wrong implementation pass).
This launcher serves one request at a time, like DynamoDB's per-item atomicity.

Usage: moto_server.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
With --port 0 a free port is chosen; it is written to --port-file once bound.
"""

import argparse
import os
import socket

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        raise SystemExit("moto_server.py only binds loopback addresses")

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host,
        args.port,
        app,
        threaded=False,
        processes=1,
    )
    port = server.socket.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as fh:
            fh.write(str(port))
    print(f"moto listening on http://{args.host}:{port} (single-threaded)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
