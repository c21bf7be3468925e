"""A loopback HTTP server that serves recorded bodies, for CLI and end-to-end tests.

Routes map a path to a list of responses served in turn (the last one repeats). Binds 127.0.0.1
on a free port only; stopped by the test that started it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


class LoopbackServer:
    def __init__(self, routes: dict[str, list[Reply]], port: int = 0) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append((self.path, dict(self.headers)))
                replies = server.routes.get(path)
                reply = (
                    (replies.pop(0) if len(replies) > 1 else replies[0])
                    if replies
                    else Reply(404, b'{"error":"not found"}')
                )
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # port 0: a free one
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class PostReceiver:
    """Records every POST (path, headers, JSON body); answers with ``replies`` in turn."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = replies or [Reply(200, b"{}")]
        self.posts: list[tuple[str, dict[str, str], object]] = []
        self.attempts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                with receiver.lock:
                    receiver.attempts += 1
                    replies = receiver.replies
                    reply = replies.pop(0) if len(replies) > 1 else replies[0]
                    if 200 <= reply.status < 300:
                        receiver.posts.append((self.path, dict(self.headers), json.loads(raw)))
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def bodies(self) -> list[object]:
        """The JSON bodies accepted so far (2xx answers only), in order."""
        with self.lock:
            return [body for _, _, body in self.posts]

    def __enter__(self) -> PostReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
