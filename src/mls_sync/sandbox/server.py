"""Serve an ASGI app on 127.0.0.1 from a background thread, on a free port.

The sandbox servers are real HTTP servers (uvicorn) so that clients are exercised over real
sockets, exactly as they talk to an MLS or a platform in production. Running them in a thread
with their own event loop keeps them usable from synchronous code (the CLI demo) and from
async tests alike, without the server and the code under test sharing one loop.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal

import uvicorn

Lifespan = Literal["auto", "on", "off"]  # uvicorn's lifespan modes


class BackgroundServer:
    """A uvicorn server for `app`, bound to a free loopback port until `stop()`."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, lifespan: Lifespan = "off"
    ) -> None:
        """`lifespan="on"` runs the app's startup and shutdown (the service app opens its
        runtime and scheduler there, on the server's own loop)."""
        self._app = app
        self._lifespan = lifespan
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("server is not running")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> str:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every reused-connection request waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._socket = sock
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan=self._lifespan,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox-http"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
