"""Run one simulator: ``python -m simulator <backend> [--port N] [options]``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from aiohttp import web

BACKENDS = {
    "fems": "simulator.fems",
    "enode": "simulator.enode",
    "flexconnect": "simulator.flexconnect",
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve the chosen simulator until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sub = parser.add_subparsers(dest="backend", required=True)
    for name, module_name in BACKENDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=module.__doc__))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    module = importlib.import_module(BACKENDS[args.backend])
    app = module.app_from_args(args)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
