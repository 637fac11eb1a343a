"""A real HTTP server on 127.0.0.1 for fetch tests: serves bytes by path, honours Range, and
can misbehave on purpose (cut the connection mid-file, answer 503 first)."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FixtureServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, list[int]] = {}   # path -> byte counts, one per request to cut
        self.fail_first: dict[str, int] = {}        # path -> how many 503s before success
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.gzip_paths: set[str] = set()  # gzip these when the client accepts gzip
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                if server.fail_first.get(path, 0) > 0:
                    server.fail_first[path] -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path in server.gzip_paths and "gzip" in self.headers.get("Accept-Encoding", ""):
                    import gzip
                    data = gzip.compress(body)
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cuts = server.cut_after.get(path)
                if cuts:
                    n = cuts.pop(0)
                    self.wfile.write(chunk[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the connection dies mid-file
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every request for path, in order (None: no Range)."""
        return [rng for p, rng in self.requests if p == path]
