"""Local HTTP servers on 127.0.0.1 that speak the Anthropic Messages and Gemini generateContent
wire protocols, replaying a script of replies and recording every request (for the real SDKs)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def anthropic_body(text: str, tokens_in: int = 120, tokens_out: int = 80) -> dict[str, Any]:
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}


def gemini_body(text: str, tokens_in: int = 120, tokens_out: int = 80) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                              "totalTokenCount": tokens_in + tokens_out},
            "modelVersion": "gemini-test"}


def error_body(status: int, protocol: str) -> dict[str, Any]:
    if protocol == "anthropic":
        kind = "rate_limit_error" if status == 429 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": f"test error {status}"}}
    return {"error": {"code": status, "message": f"test error {status}",
                      "status": "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"}}


class ScriptedServer:
    """Each request takes the next step of `script`:
    ("text", reply) | ("status", code) | ("sleep", seconds). The last step repeats."""

    def __init__(self, protocol: str, script: list[tuple[str, Any]]):
        self.protocol = protocol
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "json": json.loads(body or b"{}")})
                    step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                kind, value = step
                if kind == "sleep":
                    time.sleep(value)
                    status, payload = 200, outer._ok("late")
                elif kind == "status":
                    status, payload = value, error_body(value, outer.protocol)
                else:
                    status, payload = 200, outer._ok(value)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    if status == 429:
                        self.send_header("retry-after", "0")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _ok(self, text: str) -> dict[str, Any]:
        return anthropic_body(text) if self.protocol == "anthropic" else gemini_body(text)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def user_texts(self, i: int) -> list[str]:
        """The user-turn texts of request i, whichever protocol."""
        body = self.requests[i]["json"]
        if self.protocol == "anthropic":
            return [m["content"] if isinstance(m["content"], str) else
                    "".join(b.get("text", "") for b in m["content"])
                    for m in body["messages"] if m["role"] == "user"]
        return ["".join(p.get("text", "") for p in c["parts"]) for c in body["contents"]
                if c.get("role") == "user"]
