"""``mfif serve``: the local web page for focus stacking (needs the ``web`` extra)."""
from __future__ import annotations

import sys

from ..errors import UsageError
from ..methods import DEFAULT_METHOD
from ..options import number_arg


def register(sub):
    p = sub.add_parser(
        "serve", help="serve a local web page to fuse, compare, retouch and download stacks",
        description="Serve the focus-stacking web page (upload frames, fuse, compare with a wipe slider, "
                    "retouch from any frame, download). Binds to this machine only unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=number_arg(lo=0, hi=65535, integer=True), default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--max-upload-mb", type=number_arg(lo=0, lo_open=True, hi=1e7), default=2000, metavar="MB",
                   help="largest upload, all frames of one job together (default 2000)")
    p.add_argument("--max-frames", type=number_arg(lo=2, hi=100000, integer=True), default=64, metavar="N", help="most frames per job (default 64)")
    p.add_argument("--job-ttl", type=number_arg(lo=0, lo_open=True, hi=1e6), default=60, metavar="MIN",
                   help="minutes a job and its files are kept (default 60); all are deleted at exit")
    p.add_argument("--max-memory", type=number_arg(lo=0, lo_open=True), default=4096, metavar="MB",
                   help="memory budget of one fusion, as for `mfif fuse` (default 4096)")
    p.add_argument("-m", "--method", default=DEFAULT_METHOD,
                   help=f"method the page selects first (default {DEFAULT_METHOD})")
    return p


def run(args) -> int:
    from ..methods import get_method

    get_method(args.method)
    try:
        from ..web import create_app
        from ..web.server import bind, is_loopback, loopback_hosts, serve
    except ModuleNotFoundError as exc:
        raise UsageError(f"mfif serve needs the web extra ({exc.name} is missing): pip install 'mfif[web]'") from None
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    port = sock.getsockname()[1]
    local = is_loopback(args.host)
    if not local:
        print(f"mfif: warning: listening on {args.host}, not loopback: anyone who can reach this machine can "
              "upload images and read results; there is no login", file=sys.stderr)
    app = create_app(max_upload_mb=args.max_upload_mb, max_frames=args.max_frames, job_ttl_s=args.job_ttl * 60,
                     max_memory_mb=args.max_memory, default_method=args.method,
                     allowed_hosts=loopback_hosts() if local else None)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"mfif: serving the web page on http://{shown}:{port}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)
    serve(app, sock)
    return 0
