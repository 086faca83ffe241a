"""``python -m sim.server --service <name> --instance-id <id> --port <p> [--host 127.0.0.1]``.

Env: ``REDIS_URL`` (required; redis://, rediss://, unix://) and ``SIM_PREFIX`` (key prefix, default
``sim``). Serves one instance of one service until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from sim.app import create_app
from sim.services import SERVICES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.server", description="one simulated warehouse service")
    parser.add_argument("--service", required=True, choices=sorted(SERVICES))
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="exit when this process is no longer our parent (launchers)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        print("error: REDIS_URL is required", file=sys.stderr)
        return 2
    app = create_app(
        args.service,
        args.instance_id,
        redis_url,
        prefix=os.environ.get("SIM_PREFIX") or "sim",
        parent_pid=args.parent_pid,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally when it could not bind (it logs the reason): make that a failure.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
