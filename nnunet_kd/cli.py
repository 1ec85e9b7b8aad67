"""The ``nnunet_kd`` console command.

Every job of the project is a subcommand. A subcommand is a module in :mod:`nnunet_kd.commands` that defines
``NAME`` (the subcommand), ``HELP`` (one line for ``nnunet_kd --help``), ``add_arguments(parser)`` and
``run(args) -> int``; modules there are discovered automatically and must stay cheap to import (heavy imports go
inside ``run``). Errors the user can fix (:class:`~nnunet_kd.errors.NnunetKdError`) print one line, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import nnunet_kd.commands
from nnunet_kd import __version__
from nnunet_kd.errors import NnunetKdError


def discover_commands() -> dict[str, ModuleType]:
    """Import every subcommand module; returns ``{NAME: module}`` sorted by name."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(nnunet_kd.commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"nnunet_kd.commands.{info.name}")
        found[module.NAME] = module
    return dict(sorted(found.items()))


def build_parser(commands: dict[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet_kd",
        description="nnU-Net v2 extension for lung tumour segmentation from mixed supervision (box-guided teachers, "
        "pseudo-labels, distillation into compact students). Run 'nnunet_kd <command> --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"nnunet_kd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module in commands.items():
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    commands = discover_commands()
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(commands[args.command].run(args) or 0)
    except NnunetKdError as error:
        print(f"nnunet_kd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nnunet_kd {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
