"""A real webhook receiver on 127.0.0.1 for the notification tests: records every POST body and
answers as told (200, 500, or after a delay)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        self.delay_s = 0.0
        self.hits = 0
        self._lock = threading.RLock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer._lock:
                    outer.hits += 1
                    status, delay = outer.status, outer.delay_s
                if delay:
                    time.sleep(delay)
                if status == 200:
                    with outer._lock:
                        outer.bodies.append(json.loads(body))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): what the timeout tests want

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def keys(self) -> list[str]:
        with self._lock:
            return [b.get("key") for b in self.bodies]

    def wait_for(self, pred, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if pred(self):
                    return True
            time.sleep(0.02)
        return False

    def close(self):
        self.server.shutdown()
        self.server.server_close()
