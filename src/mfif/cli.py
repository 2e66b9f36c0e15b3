"""The ``mfif`` command line: ``mfif COMMAND ...``.

Each sub-command lives in :mod:`mfif.commands` as a module with ``register(subparsers)``
and ``run(args) -> int``. Problems the user can fix raise :class:`~mfif.errors.UsageError`,
printed here as one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import RunFailed, UsageError

#: Sub-commands in the order ``mfif --help`` lists them.
COMMANDS = ("fuse", "batch", "align", "methods", "eval", "synth", "train", "bench", "demo", "serve")


class _Parser(argparse.ArgumentParser):
    """argparse with its complaints raised as :class:`UsageError` (one line, exit 2)."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _fail(message: str) -> int:
    print(f"mfif: error: {message}", file=sys.stderr)
    return 2


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``mfif`` parser; with ``argv`` naming a command first, that command's only.

    Setting up every command's module and options (imports, and the help texts argparse
    translates) is a cost a call of one command need not pay (measured in docs/speed.md); the
    top level (``mfif``, ``mfif --help``, an unknown command) gets them all.
    """
    parser = _Parser(prog="mfif", description="Multi-focus image fusion (focus stacking).")
    parser.add_argument("--version", action="version", version=f"mfif {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    names = [argv[0]] if argv and argv[0] in COMMANDS else COMMANDS
    for name in names:
        try:
            mod = importlib.import_module(f"mfif.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mfif.commands.{name}":
                continue  # command not built yet
            raise
        p = mod.register(sub)
        p.set_defaults(_run=mod.run)
    return parser


class Stopped(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that cleanup code runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def _install_signal_handlers() -> dict:
    """Turn SIGTERM and SIGHUP into :class:`Stopped`; returns the handlers to restore."""
    import signal
    import threading

    old = {}
    if threading.current_thread() is not threading.main_thread():
        return old
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            old[sig] = signal.signal(sig, _raise_stopped)
    return old


def _quiet_decoder_logs() -> None:
    """Keep tifffile's warnings about a damaged file ("invalid page offset") off stderr: the one
    error line that follows names the file and the decoder's reason, and a file that still
    decodes needs no warning. Logging is only set up here, for the command, never on import."""
    import logging

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (0 done, 1 internal error, 2 usage error)."""

    import signal

    previous = _install_signal_handlers()
    _quiet_decoder_logs()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except UsageError as exc:
        return _fail(str(exc))
    except RunFailed as exc:
        print(f"mfif: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfif: interrupted", file=sys.stderr)
        return 130
    except Stopped as exc:
        print(f"mfif: stopped by signal {exc.signum}", file=sys.stderr)
        return 128 + exc.signum
    except MemoryError:
        return _fail("out of memory; try a smaller --tile or --max-memory")
    except OSError as exc:  # the file system said no (full disk, lost mount) outside a checked step
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:
        if os.environ.get("MFIF_DEBUG"):
            raise
        print(f"mfif: internal error ({type(exc).__name__}: {exc}); please report it with the command line "
              "(MFIF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def entry() -> None:
    """The ``mfif`` command: :func:`main`, then the process ends without the interpreter's teardown.

    Every output is written, closed and renamed into place before :func:`main` returns; what the
    teardown would add is freeing memory and joining library thread pools one by one (measured
    in docs/speed.md), which the operating system does at once.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
