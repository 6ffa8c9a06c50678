"""`dcgan` command line: thin subcommands that validate their arguments and call the library.

Each command group (a module here) lists its `Command`s; `main` registers them all the same way.
Errors the user can fix are one line and exit code 2 (1 for a diverged run); any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dcgan.cli import datasets, generating, latent, measuring, training
from dcgan.cli.common import Parser
from dcgan.errors import CheckpointError, ConfigError, Diverged

GROUPS = (training, generating, latent, datasets, measuring)


def build_parser() -> Parser:
    parser = Parser(prog="dcgan", description="Train, sample and evaluate DCGANs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        for command in group.COMMANDS:
            p = sub.add_parser(command.name, help=command.help)
            command.arguments(p)
            p.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return ns.handler(ns)
    except (ConfigError, CheckpointError) as e:
        print(f"dcgan {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"dcgan {ns.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dcgan {ns.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
