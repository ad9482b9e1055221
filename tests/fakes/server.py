"""The life cycle the HTTP test doubles share: a real HTTP server on a free loopback port, in a
thread, stopped deterministically (`with Fake(...) as fake:` or `fake.stop()`)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class FakeHTTPServer(ThreadingHTTPServer):
    # Handler threads are joined by server_close(), so stop() leaves nothing running.
    daemon_threads = False
    fake: Any


class ServedFake:
    """Base of a test double: `_serve(handler, name)` starts it and returns its port."""

    _server: FakeHTTPServer
    _thread: threading.Thread

    def _serve(
        self, handler: type[BaseHTTPRequestHandler], server: type[FakeHTTPServer], name: str
    ) -> int:
        self._server = server(("127.0.0.1", 0), handler)
        self._server.fake = self
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name=name, daemon=True
        )
        self._thread.start()
        return int(self._server.server_address[1])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, close the socket and join the serving and handler threads."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
