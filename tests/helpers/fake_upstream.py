"""Real HTTP upstream servers on free loopback ports, for proxy, capture and hybrid tests."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.helpers.basics import free_port


def echo_app(name: str = "up"):
    """A WSGI app that answers what it received, plus a few special paths for failure cases."""

    def app(environ, start_response):
        request = Request(environ)
        path = request.path
        if path.startswith("/slow"):
            time.sleep(float(request.args.get("s", "2")))
        if path == "/health" and app.sick:
            return Response("sick", 503)(environ, start_response)
        if path.endswith("/binary"):
            return Response(bytes(range(256)) * 4, 200, content_type="application/octet-stream")(
                environ, start_response)
        if path.startswith("/big"):
            size = int(request.args.get("n", str(5 * 1024 * 1024)))
            return Response(_chunks(size), 200, content_type="application/octet-stream",
                            direct_passthrough=True)(environ, start_response)
        if path.startswith("/cookies"):
            response = Response("ok", 200)
            response.headers.add("Set-Cookie", "a=1")
            response.headers.add("Set-Cookie", "b=2")
            response.headers.add("X-Repeat", "one")
            response.headers.add("X-Repeat", "two")
            response.headers["Connection"] = "X-Secret-Hop"
            response.headers["X-Secret-Hop"] = "hidden"
            return response(environ, start_response)
        if path.endswith("/accel"):  # orders only the nginx in front may be given: never by an upstream
            return Response("upstream body", 200, headers={"X-Accel-Redirect": "/hello", "X-Accel-Buffering": "no",
                                                           "X-Accel-Limit-Rate": "1"})(environ, start_response)
        if path.endswith("/counter"):
            app.count += 1
            return Response(json.dumps({"count": app.count}), 200, content_type="application/json")(
                environ, start_response)
        if path.startswith("/status/"):
            return Response(json.dumps({"upstream": name}), int(path.rsplit("/", 1)[1]),
                            content_type="application/json")(environ, start_response)
        body = request.get_data()
        payload = {
            "upstream": name,
            "method": request.method,
            "path": path,
            "raw_uri": environ.get("RAW_URI") or environ.get("REQUEST_URI"),
            "query": environ.get("QUERY_STRING", ""),
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_size": len(body),
            "body_sha": __import__("hashlib").sha256(body).hexdigest(),
            "body_hex": body.hex() if len(body) <= 64 else None,
        }
        app.seen.append(payload)
        return Response(json.dumps(payload), 200, content_type="application/json")(environ, start_response)

    app.sick = False
    app.seen = []
    app.count = 0
    return app


def _chunks(size: int):
    block = b"x" * 65536
    sent = 0
    while sent < size:
        piece = block[:min(65536, size - sent)]
        sent += len(piece)
        yield piece


class FakeUpstream:
    """A threaded werkzeug server running `echo_app` on a free port; stop() shuts it down."""

    def __init__(self, name: str = "up", port: int | None = None):
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = echo_app(name)
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list:
        """The requests answered by the echo path so far."""
        return self.app.seen

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()


def listening_socket(port: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:`port`, for the raw test servers that write their own bytes."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


class DyingUpstream:
    """A raw TCP server that breaks every exchange: closes at once, or after part of a promised body."""

    def __init__(self, mode: str = "close"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = mode
        self.sock = listening_socket(self.port)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                if self.mode == "partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 300000)

    def stop(self) -> None:
        """Stop accepting."""
        self.sock.close()



class KeepAliveUpstream:
    """An HTTP/1.1 server that keeps connections alive (werkzeug's closes each) and counts those it accepted.

    It answers every request with JSON: method, raw_uri, headers (name, value pairs), body_size.
    """

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                upstream.connections += 1  # one handler per accepted connection
                super().setup()

            def answer(self):
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                data = json.dumps({"method": self.command, "raw_uri": self.path, "body_size": len(body),
                                   "headers": list(self.headers.items())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
