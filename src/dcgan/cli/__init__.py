"""`dcgan` command line: thin subcommands that validate their arguments and call the library.

Each command group (a module here) lists its `Command`s; `main` registers them all the same way.
Errors the user can fix are one line and exit code 2 (1 for a diverged run), an OS error (a
permission, a missing directory, a full disk) included; any other exception is a bug and keeps
its traceback. A damaged file worked around is one `warning:` line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

from dcgan.cli import (
    datasets,
    exporting,
    generating,
    latent,
    measuring,
    runs,
    serving,
    training,
)
from dcgan.cli.common import Parser, os_error_line
from dcgan.errors import CheckpointError, ConfigError, Diverged, Recovered

GROUPS = (training, generating, latent, datasets, measuring, exporting, runs, serving)


def build_parser() -> Parser:
    parser = Parser(prog="dcgan", description="Train, sample and evaluate DCGANs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        for command in group.COMMANDS:
            p = sub.add_parser(command.name, help=command.help)
            command.arguments(p)
            p.set_defaults(handler=command.run)
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached a command outside training's own handler (a BaseException,
    as KeyboardInterrupt is, so that no `except Exception` takes it for a damaged file)."""


@contextlib.contextmanager
def unwinding_signals() -> Iterator[None]:
    """While a command runs, SIGTERM and SIGHUP unwind it like an exception, so every
    `finally` removes its temporary files (their default action ends the process on the spot,
    leaving a dataset-sized cache file behind). Training's GracefulStop takes SIGTERM over
    while it trains. Forked children (decoding workers) keep the default action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def unwind(signum: int, _frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signal.Signals(signum).name)

    previous = {s: signal.signal(s, unwind) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    name = f"dcgan {ns.command}"
    try:
        with unwinding_signals(), warnings.catch_warnings():
            warnings.simplefilter("always", Recovered)
            warnings.showwarning = _one_line_warnings(name, warnings.showwarning)
            return ns.handler(ns)
    except (ConfigError, CheckpointError) as e:
        print(f"{name}: error: {_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a permission, a missing directory, a full disk: never a traceback
        print(f"{name}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"{name}: error: {_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"{name}: stopped by {e}", file=sys.stderr)
        return 128 + signal.Signals[str(e)].value


def _line(e: Exception) -> str:
    """The message on one line, whatever a library put into it."""
    return " ".join(str(e).split())


def _one_line_warnings(name: str, default):
    """Show a `Recovered` warning as `dcgan <command>: warning: <message>`; others as usual."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Recovered):
            print(f"{name}: warning: {_line(message)}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


if __name__ == "__main__":
    sys.exit(main())
