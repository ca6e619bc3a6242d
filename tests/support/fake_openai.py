"""A tiny OpenAI-compatible Chat Completions server for tests (stdlib only, runs on a thread).

    with FakeOpenAIServer(reply=lambda body: "hello") as srv:
        model = OpenAIChatModel(
            "gpt-4o-mini",
            provider=OpenAIProvider(openai_client=AsyncOpenAI(
                base_url=srv.base_url, api_key="test-key", max_retries=0)),
        )
        ...
        assert srv.requests[-1]["messages"][-1]["content"] == "hi"

Serves ``POST /v1/chat/completions`` (JSON, or SSE when ``"stream": true``). Replies are
deterministic: ``reply(body)`` gives the text (or a whole assistant ``message`` dict, e.g. with
``tool_calls``); usage defaults to word counts (``prompt_tokens`` = words in all request message
texts, ``completion_tokens`` = words in the reply). Every request body is recorded in
``requests`` (and its headers in ``request_headers``), failed ones included, so tests can count
SDK retries. Fault injection: ``fail(status, times=..., retry_after=...)`` and
``delay(seconds, times=...)``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["Failure", "FakeOpenAIServer", "echo_reply", "word_count"]

JSON = dict[str, Any]
Reply = Callable[[JSON], "str | JSON"]
UsageFn = Callable[[JSON, str], tuple[int, int]]

CREATED = 1_700_000_000  # fixed timestamp: responses are byte-for-byte deterministic


def word_count(text: str) -> int:
    return len(text.split())


def _message_text(message: JSON) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(body: JSON) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return _message_text(message)
    return ""


def echo_reply(body: JSON) -> str:
    """Default reply: ``"echo: <last user message>"``."""
    return f"echo: {last_user_text(body)}"


def default_usage(body: JSON, reply_text: str) -> tuple[int, int]:
    prompt = sum(word_count(_message_text(m)) for m in body.get("messages", []))
    return prompt, word_count(reply_text)


@dataclass
class Failure:
    status: int = 500
    retry_after: float | None = None
    message: str = "fake failure"
    remaining: int | None = 1  # None = every request until clear_faults()


@dataclass
class _Delay:
    seconds: float
    remaining: int | None


class FakeOpenAIServer:
    """OpenAI-compatible ``/v1/chat/completions`` on ``127.0.0.1`` (free port), on a thread."""

    def __init__(
        self,
        reply: Reply | str | None = None,
        *,
        usage: UsageFn | None = None,
        port: int = 0,
    ) -> None:
        self.reply: Reply = (lambda _b: reply) if isinstance(reply, str) else (reply or echo_reply)
        self.usage: UsageFn = usage or default_usage
        self.requests: list[JSON] = []
        self.request_headers: list[dict[str, str]] = []
        self._faults: list[Failure] = []
        self._delays: list[_Delay] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What OpenAI clients take as ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # -- fault injection --------------------------------------------------------------------

    def fail(
        self,
        status: int = 500,
        *,
        times: int | None = 1,
        retry_after: float | None = None,
        message: str = "fake failure",
    ) -> None:
        """Answer the next ``times`` requests (``None``: all) with HTTP ``status``.

        ``retry_after`` adds a ``Retry-After`` header (seconds), as 429s usually carry.
        """
        with self._lock:
            self._faults.append(Failure(status, retry_after, message, times))

    def delay(self, seconds: float, *, times: int | None = 1) -> None:
        """Sleep ``seconds`` before answering the next ``times`` requests (``None``: all)."""
        with self._lock:
            self._delays.append(_Delay(seconds, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def reset(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.requests.clear()
            self.request_headers.clear()
            self._faults.clear()
            self._delays.clear()

    @property
    def last_request(self) -> JSON:
        return self.requests[-1]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in delay()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- called by the handler thread -------------------------------------------------------

    def _take(self, body: JSON, headers: dict[str, str]) -> tuple[Failure | None, float]:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            seconds = 0.0
            if self._delays:
                d = self._delays[0]
                seconds = d.seconds
                if d.remaining is not None:
                    d.remaining -= 1
                    if d.remaining <= 0:
                        self._delays.pop(0)
            failure: Failure | None = None
            if self._faults:
                failure = self._faults[0]
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._faults.pop(0)
            return failure, seconds

    def _completion(self, body: JSON, n: int) -> tuple[JSON, str, int, int]:
        produced = self.reply(body)
        if isinstance(produced, str):
            message: JSON = {"role": "assistant", "content": produced}
        else:
            message = {"role": "assistant", "content": None, **produced}
        text = message.get("content") or ""
        if message.get("tool_calls"):
            text = text + " " + " ".join(json.dumps(c) for c in message["tool_calls"])
        prompt_tokens, completion_tokens = self.usage(body, text)
        return message, f"chatcmpl-fake-{n}", prompt_tokens, completion_tokens


_ERROR_TYPES = {429: "rate_limit_exceeded", 401: "invalid_api_key", 400: "invalid_request_error"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": []})
        else:
            self._json(404, _error(404, f"no route {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._json(404, _error(404, f"no route {self.path}"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, _error(400, "body is not JSON"))
            return
        failure, seconds = self.fake._take(body, {k.lower(): v for k, v in self.headers.items()})
        if seconds and self.fake._stopping.wait(seconds):
            return
        if failure is not None:
            extra = {}
            if failure.retry_after is not None:
                extra["Retry-After"] = f"{failure.retry_after:g}"
            self._json(failure.status, _error(failure.status, failure.message), extra)
            return
        n = len(self.fake.requests)
        message, cid, prompt_tokens, completion_tokens = self.fake._completion(body, n)
        model = body.get("model", "unknown")
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        if body.get("stream"):
            self._stream(body, cid, model, message, finish, usage)
            return
        self._json(
            200,
            {
                "id": cid,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": usage,
            },
        )

    def _json(self, status: int, payload: JSON, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
            self.close_connection = True

    def _stream(
        self, body: JSON, cid: str, model: str, message: JSON, finish: str, usage: JSON
    ) -> None:
        def chunk(delta: JSON, finish_reason: str | None = None) -> JSON:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        def events() -> Iterator[JSON]:
            yield chunk({"role": "assistant", "content": ""})
            for piece in re.findall(r"\S+\s*|\s+", message.get("content") or ""):
                yield chunk({"content": piece})
            for i, call in enumerate(message.get("tool_calls") or []):
                yield chunk({"tool_calls": [{"index": i, **call}]})
            yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }

        self.close_connection = True  # no Content-Length: the end of the body is the close
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events():
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _error(status: int, message: str) -> JSON:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
