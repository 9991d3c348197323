"""Shared fixtures of the data tests: a local HTTP server on 127.0.0.1 and a clean cache."""

from __future__ import annotations

import http.server
import threading

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes``: path -> (status, body bytes, declared Content-Length)."""

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        status, body, length = self.server.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)  # fewer bytes than declared: a truncated transfer
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A threaded HTTP server on 127.0.0.1 (ephemeral port), stopped after the test.

    Set ``server.routes[path] = (status, body, content_length_or_None)``; ``server.url(path)``
    gives the URL. Each request is answered once; the server shuts down at teardown.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.routes = {}
    server.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/missing.bin"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache or honours their offline setting."""
    monkeypatch.setenv("JFLOWS_DATA_DIR", str(tmp_path / "default-cache"))
    monkeypatch.delenv("JFLOWS_OFFLINE", raising=False)
