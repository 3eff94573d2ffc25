"""`hedgerd`: the daemon's command line. Each subcommand lives beside the code it runs and
registers itself through `add_parser(subparsers)`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from hedgerd import __version__
from hedgerd.config import ConfigError, load_config

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_CONFIG = 2


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    # model_dump(mode="json") renders every SecretStr as '**********'.
    print(json.dumps(config.model_dump(mode="json"), indent=2, default=str))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hedgerd", description="Automated delta hedging for crypto options books."
    )
    parser.add_argument("--version", action="version", version=f"hedgerd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser(
        "check-config",
        help="validate a config file and print the effective config (secrets redacted)",
    )
    check.add_argument("file", type=Path, help="TOML config file")
    check.set_defaults(func=_check_config)
    for register in _subcommands():
        register(sub)
    return parser


def _subcommands() -> list[Callable[[SubParsers], object]]:
    # Imported here so `hedgerd --help` stays fast and each package owns its own command.
    from hedgerd import daemon, paper
    from hedgerd.backtest import command as backtest_command
    from hedgerd.book import command as book_command
    from hedgerd.execution import journal_command
    from hedgerd.sim import command as sim_command
    from hedgerd.venues import positions_command

    return [
        daemon.add_parser,
        paper.add_parser,
        book_command.add_parser,
        journal_command.add_parser,
        positions_command.add_parser,
        backtest_command.add_parser,
        sim_command.add_parser,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
