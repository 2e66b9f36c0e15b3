"""The Starlette application: the page's static files and the JSON API over :class:`JobManager`."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import UsageError
from ..methods import DEFAULT_METHOD
from .jobs import JobError, JobManager, display_name, upload_extension
from .retouch import parse_stroke

__all__ = ["create_app", "STATIC"]

#: The page: index.html, app.js, style.css (package data).
STATIC = Path(__file__).resolve().parent / "static"
#: Headers on every answer: nothing may be loaded from elsewhere, no type sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class _TooLarge(Exception):
    """The request body went past the upload limit."""


def parse_flag(name: str, raw: str | None) -> bool:
    """A boolean form field (``1/0``, ``true/false``, ``yes/no``, ``on/off``; absent is false)."""
    low = (raw or "").strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false, got {raw!r}")


def _limited(receive, limit: int):
    """Wrap an ASGI ``receive`` so that a body longer than ``limit`` bytes raises :class:`_TooLarge`."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge()
        return message

    return wrapped


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def create_app(*, max_upload_mb: float = 2000, max_frames: int = 64, job_ttl_s: float = 3600,
               max_memory_mb: float = 4096, default_method: str = DEFAULT_METHOD, allowed_hosts=None,
               manager: JobManager | None = None) -> Starlette:
    """Build the web application.

    Parameters
    ----------
    max_upload_mb : float, keyword-only
        Largest request body (all frames together), in MB (10**6 bytes); larger answers 413.
    max_frames : int, keyword-only
        Most frames one job may have; more answers 400.
    job_ttl_s : float, keyword-only
        Seconds a job and its files are kept.
    max_memory_mb : float, keyword-only
        Memory budget of one fusion (:func:`mfif.stack.fuse_stack`).
    default_method : str, keyword-only
        The method the page selects first.
    allowed_hosts : sequence of str, optional
        Host names the ``Host`` header may carry (protection against DNS rebinding when bound
        to loopback); None accepts any.
    manager : JobManager, optional
        Use this job manager instead of a new one (tests); the app closes it at shutdown.

    Returns
    -------
    Starlette
        ``app.state.manager`` is the :class:`JobManager`.
    """
    from ..methods import METHODS

    limit = int(max_upload_mb * 1e6)
    jobs = manager or JobManager(max_frames=max_frames, ttl=job_ttl_s, max_memory_mb=max_memory_mb)
    hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def methods(request: Request) -> Response:
        return JSONResponse({
            "default": default_method,
            "max_frames": jobs.max_frames,
            "max_upload_mb": max_upload_mb,
            "methods": [{"name": m.name, "summary": m.summary, "has_decision": m.has_decision}
                        for m in METHODS.values()],
        })

    async def create_job(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _error(413, f"upload too large: {int(length) / 1e6:.1f} MB (at most {max_upload_mb:g} MB)")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _error(400, "send the frames as multipart/form-data, field 'files'")
        req = Request(request.scope, _limited(request.receive, limit))
        try:
            form = await req.form(max_files=jobs.max_frames + 1, max_fields=50)
        except _TooLarge:
            return _error(413, f"upload too large (at most {max_upload_mb:g} MB)")
        try:
            unknown = sorted(set(form.keys()) - {"files", "method", "align", "depth_map"})
            if unknown:
                raise UsageError(f"unknown field {unknown[0]!r}; fields: files, method, align, depth_map")
            files = form.getlist("files")
            if any(isinstance(f, str) for f in files):
                raise UsageError("field 'files' must hold files, not text")
            method = str(form.get("method") or default_method)
            align = parse_flag("align", form.get("align"))
            depth_map = parse_flag("depth_map", form.get("depth_map"))
            if len(files) > jobs.max_frames:
                raise UsageError(f"too many frames: {len(files)} (at most {jobs.max_frames})")
            names = [display_name(f.filename, i) for i, f in enumerate(files)]
            exts = [upload_extension(n) for n in names]
            job_id, folder = jobs.new_folder()
            try:
                uploads = []
                for i, (f, name, ext) in enumerate(zip(files, names, exts)):
                    path = folder / f"frame_{i:03d}{ext}"
                    await run_in_threadpool(_copy, f.file, path)
                    uploads.append((name, path))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            job = await run_in_threadpool(jobs.submit, job_id, folder, uploads, method=method, align=align,
                                          depth_map=depth_map)
        finally:
            await form.close()
        return JSONResponse({"id": job.id, **job.status()}, status_code=202)

    def job_status(request: Request) -> Response:
        return JSONResponse(jobs.get(request.path_params["id"]).status())

    def _image(request: Request, kind) -> Response:
        job = jobs.get(request.path_params["id"])
        fmt = request.query_params.get("format", "png").lower()
        if fmt not in ("png", "tif", "tiff"):
            raise UsageError(f"format must be png or tif, got {fmt!r}")
        fmt = "tif" if fmt.startswith("tif") else fmt
        preview = parse_flag("preview", request.query_params.get("preview"))
        path = job.render(kind, fmt, preview)
        headers = dict(SECURITY_HEADERS, **{"Cache-Control": "no-store"})
        if preview:
            return FileResponse(path, media_type="image/png", headers=headers)
        stem = kind if isinstance(kind, str) else f"frame-{kind:03d}"
        return FileResponse(path, media_type="image/png" if fmt == "png" else "image/tiff", headers=headers,
                            filename=f"{stem}.{fmt}")

    def fused(request: Request) -> Response:
        return _image(request, "fused")

    def depth(request: Request) -> Response:
        return _image(request, "depth")

    def frame(request: Request) -> Response:
        raw = request.path_params["i"]
        if not raw.isdigit():
            raise JobError(404, f"no frame {raw!r}: frames are numbered from 0")
        return _image(request, int(raw))

    async def retouch(request: Request) -> Response:
        job = jobs.get(request.path_params["id"])
        try:
            data = await request.json()
        except ValueError:
            raise UsageError("the stroke must be JSON: {\"frame\": i, \"radius\": px, \"points\": [[x, y], ...]}") \
                from None
        status = job.status()
        if status["state"] != "done":
            raise JobError(409, f"job {job.id} is {status['state']}; retouch needs a finished job")
        stroke = parse_stroke(data, n_frames=status["frames"], width=status["width"], height=status["height"])
        await run_in_threadpool(job.add_stroke, stroke)
        return JSONResponse(job.status())

    def undo(request: Request) -> Response:
        job = jobs.get(request.path_params["id"])
        job.undo()
        return JSONResponse(job.status())

    # -- errors: always JSON {"error": text} ----------------------------------------------
    async def on_usage(request: Request, exc: UsageError) -> Response:
        return _error(400, str(exc))

    async def on_job(request: Request, exc: JobError) -> Response:
        return _error(exc.status, str(exc))

    async def on_http(request: Request, exc: HTTPException) -> Response:
        text = {404: f"not found: {request.url.path}",
                405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
        return _error(exc.status_code, str(text))

    async def on_crash(request: Request, exc: Exception) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            jobs.close()

    routes = [
        Route("/", index),
        Route("/api/methods", methods),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs/{id}", job_status),
        Route("/api/jobs/{id}/fused", fused),
        Route("/api/jobs/{id}/depth", depth),
        Route("/api/jobs/{id}/frames/{i}", frame),
        Route("/api/jobs/{id}/retouch", retouch, methods=["POST"]),
        Route("/api/jobs/{id}/undo", undo, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {UsageError: on_usage, JobError: on_job, HTTPException: on_http, 404: on_http, 405: on_http,
                422: on_http, 500: on_crash, Exception: on_crash}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan,
                    middleware=[] if hosts is None else [_host_check(hosts)])
    app.state.manager = jobs
    return app


def _copy(src, path: Path) -> None:
    src.seek(0)
    with open(path, "xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _host_check(hosts: set[str]):
    """Middleware refusing requests whose ``Host`` header is not one of ``hosts`` (JSON 400)."""
    from starlette.middleware import Middleware

    class HostCheck:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
                name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                if name not in hosts:
                    await _error(400, f"unexpected Host header {host!r}")(scope, receive, send)
                    return
            await self.app(scope, receive, send)

    return Middleware(HostCheck)
