"""Local HTTP servers on 127.0.0.1 that speak the Anthropic Messages, Gemini generateContent and
OpenAI Chat Completions (plain and streamed as server-sent events) wire protocols, replaying a
script of replies and recording every request (for the real SDKs)."""

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


def openai_body(text: str, tokens_in: int = 120, tokens_out: int = 80) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000,
            "model": "gpt-test", "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": tokens_in + tokens_out}}


def openai_stream(text: str, tokens_in: int = 120, tokens_out: int = 80, usage: bool = True) -> bytes:
    """The reply as Chat Completions chunks (a few characters each), then the usage chunk."""
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-test"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    for i in range(0, len(text), 7):
        events.append({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 7]},
                                            "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({**base, "choices": [], "usage": {"prompt_tokens": tokens_in,
                                                         "completion_tokens": tokens_out,
                                                         "total_tokens": tokens_in + tokens_out}})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def error_body(status: int, protocol: str) -> dict[str, Any]:
    if protocol == "openai":
        kind = "rate_limit_exceeded" if status == 429 else "invalid_api_key" if status == 401 else "server_error"
        return {"error": {"message": f"test error {status}", "type": kind, "code": kind, "param": None}}
    if protocol == "anthropic":
        kind = "rate_limit_error" if status == 429 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": f"test error {status}"}}
    return {"error": {"code": status, "message": f"test error {status}",
                      "status": "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"}}


class ScriptedServer:
    """Each request takes the next step of `script`:
    ("text", reply) | ("status", code) | ("status", code, {header: value}) | ("sleep", seconds).
    The last step repeats. A 429 carries `retry-after: 0` unless the step gives its own headers.
    protocol "openai" streams (SSE) when the request asks for it."""

    def __init__(self, protocol: str, script: list[tuple[Any, ...]]):
        self.protocol = protocol
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                req = json.loads(body or b"{}")
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "json": req,
                                           "t": time.time()})
                    outer.times.append(time.monotonic())
                    step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                kind, value = step[0], step[1]
                headers = step[2] if len(step) > 2 else ({"retry-after": "0"} if value == 429 else {})
                ctype = "application/json"
                if kind == "sleep":
                    time.sleep(value)
                    status, payload = 200, outer._ok("late")
                elif kind == "status":
                    status, payload = value, error_body(value, outer.protocol)
                else:
                    status, payload = 200, outer._ok(value)
                if status == 200 and outer.protocol == "openai" and req.get("stream"):
                    data = openai_stream(value if kind == "text" else "late")
                    ctype = "text/event-stream"
                else:
                    data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(data)))
                    for k, v in (headers if status != 200 else {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _ok(self, text: str) -> dict[str, Any]:
        return {"anthropic": anthropic_body, "gemini": gemini_body, "openai": openai_body}[self.protocol](text)

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
        if self.protocol == "openai":
            return [m["content"] for m in body["messages"] if m["role"] == "user"]
        if self.protocol == "anthropic":
            return [m["content"] if isinstance(m["content"], str) else
                    "".join(b.get("text", "") for b in m["content"])
                    for m in body["messages"] if m["role"] == "user"]
        return ["".join(p.get("text", "") for p in c["parts"]) for c in body["contents"]
                if c.get("role") == "user"]
