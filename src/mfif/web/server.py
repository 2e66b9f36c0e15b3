"""Running the app with uvicorn: in the foreground (``mfif serve``) or in a background thread."""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from typing import Iterator

__all__ = ["is_loopback", "loopback_hosts", "bind", "serve_in_thread"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_hosts() -> list[str]:
    """Host names a browser puts in the ``Host`` header of a request to a loopback server."""
    return ["127.0.0.1", "localhost", "[::1]"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); OSError when taken."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _server(app):
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config)


def serve(app, sock: socket.socket) -> None:
    """Serve ``app`` on the listening ``sock`` until interrupted (Ctrl-C)."""
    _server(app).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` in a background thread for the ``with`` block; yield its base URL.

    The socket is bound before the thread starts, so there is no race for the port.
    """
    sock = bind(host, port)
    server = _server(app)
    server.config.install_signal_handlers = False  # only the main thread may install them
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mfif-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    addr, real_port = sock.getsockname()[:2]
    try:
        yield f"http://{addr if ':' not in addr else f'[{addr}]'}:{real_port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
