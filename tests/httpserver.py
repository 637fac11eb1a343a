"""A real HTTP server on 127.0.0.1 for fetch tests: serves bytes by path, honours Range, and
can misbehave on purpose (cut the connection mid-file, answer 503 first)."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FixtureServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, list[int]] = {}  # path -> byte counts, one per request to cut
        self.fail_first: dict[str, int] = {}  # path -> how many 503s before success
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.gzip_paths: set[str] = set()  # gzip these when the client accepts gzip
        self.if_ranges: list[tuple[str, str | None]] = []  # (path, If-Range) of each request
        self.ignore_if_range = False  # a server that resumes whatever changed (no RFC 7233)
        self.content_range: dict[str, str] = {}  # path -> a Content-Range to send instead
        self.drip: dict[str, float] = {}  # path -> seconds between bytes
        self.redirect: dict[str, str] = {}  # path -> Location (302)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                server.if_ranges.append((path, self.headers.get("If-Range")))
                if path in server.redirect:
                    self.send_response(302)
                    self.send_header("Location", server.redirect[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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
                import hashlib

                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if_range = self.headers.get("If-Range")
                if m and if_range and if_range != etag and not server.ignore_if_range:
                    m = None  # RFC 7233 3.2: the representation changed: all of it, 200
                if m:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header(
                        "Content-Range",
                        server.content_range.get(
                            path, f"bytes {start}-{len(body) - 1}/{len(body)}"
                        ),
                    )
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.end_headers()
                if path in server.drip:
                    import time

                    for i in range(len(chunk)):
                        self.wfile.write(chunk[i : i + 1])
                        self.wfile.flush()
                        time.sleep(server.drip[path])
                    return
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

    def etag(self, path: str) -> str:
        import hashlib

        return '"' + hashlib.sha256(self.files[path]).hexdigest()[:16] + '"'

    def if_range(self, path: str) -> list[str | None]:
        """The If-Range header of every request for path, in order."""
        return [v for p, v in self.if_ranges if p == path]

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every request for path, in order (None: no Range)."""
        return [rng for p, rng in self.requests if p == path]
