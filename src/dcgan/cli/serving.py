"""`dcgan serve`: a local page to play with one trained generator (see `dcgan.serve`)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from pathlib import Path

from dcgan.cli.common import Command
from dcgan.device import pick_device
from dcgan.errors import ConfigError


def serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, help="run directory, export or checkpoint .pt")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; the loopback address (the default) keeps it to this machine",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def run_serve(ns: argparse.Namespace) -> int:
    from dcgan.run.sources import load_sampler
    from dcgan.serve.playground import Playground
    from dcgan.serve.server import make_server

    if not 0 <= ns.port <= 65535:
        raise ConfigError(f"--port: {ns.port} is not a port number (0-65535; 0: any free one)")
    device = pick_device(ns.device)
    play = Playground(load_sampler(ns.source), str(ns.source), device)
    try:
        server = make_server(play, ns.host, ns.port)
    except OSError as e:
        raise ConfigError(
            f"--host {ns.host} --port {ns.port}: cannot listen there ({e.strerror})"
        ) from None
    host, port = server.server_address[:2]
    if not _loopback(ns.host):
        print(
            f"warning: listening on {ns.host}: other machines can reach this page", file=sys.stderr
        )
    print(f"serving {ns.source} at http://{_shown_host(host)}:{port}/  (Ctrl-C stops)", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _shown_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


COMMANDS = (
    Command(
        "serve",
        "a local page to browse, interpolate, sweep and add a trained G's images",
        serve_arguments,
        run_serve,
    ),
)
