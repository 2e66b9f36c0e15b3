"""The ``mfif`` command line: ``mfif COMMAND ...``.

Each sub-command lives in :mod:`mfif.commands` as a module with ``register(subparsers)``
and ``run(args) -> int``. Problems the user can fix raise :class:`~mfif.errors.UsageError`,
printed here as one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import UsageError

#: Sub-commands in the order ``mfif --help`` lists them.
COMMANDS = ("fuse", "align", "methods", "eval", "synth", "train", "bench", "demo")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with one line, like every other usage error
        self.print_usage(sys.stderr)
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    print(f"mfif: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mfif", description="Multi-focus image fusion (focus stacking).")
    parser.add_argument("--version", action="version", version=f"mfif {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"mfif.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mfif.commands.{name}":
                continue  # command not built yet
            raise
        p = mod.register(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("mfif: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        return _fail("out of memory; try a smaller --tile size")


if __name__ == "__main__":
    sys.exit(main())
