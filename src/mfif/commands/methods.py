"""``mfif methods``: list the fusion methods and their options."""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("methods", help="list fusion methods, one per line",
                       description="List fusion methods, one per line; -v adds their options.")
    p.add_argument("-v", "--verbose", action="store_true", help="also list each method's options")
    return p


def run(args) -> int:
    from ..methods import METHODS

    width = max(len(n) for n in METHODS)
    for m in METHODS.values():
        print(f"{m.name:<{width}}  {m.summary}")
        if args.verbose:
            for p in m.params:
                extra = f" (one of {', '.join(map(str, p.allowed))})" if p.allowed else ""
                default = "(unset)" if p.default is None else repr(p.default)
                print(f"{'':<{width}}    -p {p.name}={default}: {p.help}{extra}")
    return 0
