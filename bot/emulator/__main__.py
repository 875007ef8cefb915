"""Run the emulator: ``python -m bot.emulator --host 127.0.0.1 --port 8601 [--state-file F] [--demo]``."""

from __future__ import annotations

import argparse

import uvicorn

from bot.emulator.app import create_app
from bot.emulator.state import EmulatorState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.emulator",
                                     description="WeChat + Weibo platform emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8601)
    parser.add_argument("--state-file", help="JSON file keeping the state across restarts")
    parser.add_argument("--demo", action="store_true",
                        help="generate live citizen comments and messages")
    parser.add_argument("--demo-interval", type=float, default=20.0,
                        help="mean seconds between demo events (default 20)")
    args = parser.parse_args(argv)
    try:
        state = EmulatorState(args.state_file)
    except ValueError as exc:
        parser.error(str(exc))
    app = create_app(state, demo=args.demo, demo_interval_s=args.demo_interval)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
