"""Helpers for testing code that uses rlhfkit, with the real SDKs and no mocks.

:class:`FakeLLMServer` is a small OpenAI- and Anthropic-compatible HTTP server
(standard library only) served on 127.0.0.1 from a thread. Point a real
client's ``base_url`` at it::

    with FakeLLMServer(reply="Hi there!") as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=2)
        server.queue_error(429)                      # the next request gets a 429 (tiny Retry-After)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
        anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test")

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/responses`` and
``POST /v1/messages``, each with and without ``"stream": true`` (server-sent
events paced like a real model: a first-token delay, then one word per chunk).
Usage blocks report prompt, completion, cached and reasoning tokens.

Scripting (each applies to the next request, in order of queueing):
``queue_reply(text=..., tool_calls=[{"name", "arguments"}], ...)``,
``queue_error(status, retry_after_s=..., retryable=...)``, ``queue_cut(after_chunks)``
(a stream whose connection drops mid-way).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FakeLLMServer", "RecordedRequest", "ScriptedReply"]


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ScriptedReply:
    """What the server answers to one request."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    error_status: int | None = None
    retry_after_s: float | None = None
    retryable: bool | None = None
    cut_after_chunks: int | None = None


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _prompt_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body.get("messages") or body.get("input") or "").split()) + 3)


class FakeLLMServer:
    """An OpenAI- and Anthropic-compatible server on 127.0.0.1, started in a thread."""

    def __init__(
        self,
        *,
        reply: str = "Hello! I am a fake model, happy to help with your question.",
        first_chunk_delay_s: float = 0.01,
        chunk_delay_s: float = 0.002,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        port: int = 0,
    ) -> None:
        self.reply = reply
        self.first_chunk_delay_s = first_chunk_delay_s
        self.chunk_delay_s = chunk_delay_s
        self.cached_tokens = cached_tokens
        self.reasoning_tokens = reasoning_tokens
        self.requests: list[RecordedRequest] = []
        self._script: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = _Server(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The TCP port listened on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``."""
        return self.url

    def start(self) -> FakeLLMServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting

    def queue_reply(
        self,
        text: str | None = None,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
        cached_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Answer the next request with ``text`` and/or ``tool_calls`` (``{"name", "arguments": dict}``)."""
        with self._lock:
            self._script.append(
                ScriptedReply(
                    text=text,
                    tool_calls=list(tool_calls or []),
                    finish_reason=finish_reason,
                    cached_tokens=cached_tokens,
                    reasoning_tokens=reasoning_tokens,
                )
            )

    def queue_error(
        self, status: int, *, times: int = 1, retry_after_s: float = 0.01, retryable: bool | None = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (``retryable`` sets ``x-should-retry``)."""
        with self._lock:
            for _ in range(times):
                self._script.append(
                    ScriptedReply(error_status=status, retry_after_s=retry_after_s, retryable=retryable)
                )

    def queue_cut(self, after_chunks: int = 2, text: str | None = None) -> None:
        """Drop the connection of the next streamed answer after ``after_chunks`` chunks."""
        with self._lock:
            self._script.append(ScriptedReply(text=text, cut_after_chunks=after_chunks))

    def clear(self) -> None:
        """Forget the recorded requests and the pending script."""
        with self._lock:
            self.requests.clear()
            self._script.clear()

    def _next(self) -> tuple[ScriptedReply, int]:
        with self._lock:
            self._counter += 1
            scripted = self._script.popleft() if self._script else ScriptedReply()
            return scripted, self._counter


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping its keep-alive connection is normal; anything else is printed."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _make_handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLMServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def setup(self) -> None:
        """Send small writes at once (no Nagle delay on SSE chunks and short bodies)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ------------------------------------------------------------------ plumbing

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        """Health check."""
        self._json(200, {"ok": True})

    def do_POST(self) -> None:
        """Dispatch on the path."""
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        self.fake.requests.append(
            RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        scripted, number = self.fake._next()
        anthropic = self.path.rstrip("/").endswith("/messages")
        if scripted.error_status is not None:
            self._error(scripted, anthropic)
            return
        path = self.path.split("?")[0].rstrip("/")
        try:
            if path.endswith("/chat/completions"):
                _OpenAIChat(self, body, scripted, number).run()
            elif path.endswith("/responses"):
                _OpenAIResponses(self, body, scripted, number).run()
            elif anthropic:
                _AnthropicMessages(self, body, scripted, number).run()
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped reading (a stream closed early): normal.
            self.close_connection = True

    def _error(self, scripted: ScriptedReply, anthropic: bool) -> None:
        status = scripted.error_status or 500
        headers: dict[str, str] = {}
        if scripted.retry_after_s is not None:
            headers["retry-after-ms"] = str(int(scripted.retry_after_s * 1000) or 1)
            headers["retry-after"] = str(max(scripted.retry_after_s, 0.001))
        if scripted.retryable is not None:
            headers["x-should-retry"] = "true" if scripted.retryable else "false"
        kind = {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error"}.get(
            status, "api_error"
        )
        message = f"scripted error {status}"
        if anthropic:
            self._json(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)
        else:
            self._json(
                status, {"error": {"message": message, "type": kind, "code": None, "param": None}}, headers
            )


class _Reply:
    """The shared part of the three APIs: text, usage numbers, pacing."""

    def __init__(self, handler: _Handler, body: Any, scripted: ScriptedReply, number: int) -> None:
        fake = handler.fake
        self.h = handler
        self.body = body
        self.scripted = scripted
        self.number = number
        self.model = str(body.get("model") or "fake-model")
        self.text = (
            scripted.text if scripted.text is not None else ("" if scripted.tool_calls else fake.reply)
        )
        self.words = _words(self.text) if self.text else []
        self.tool_calls = scripted.tool_calls
        self.prompt_tokens = _prompt_tokens(body)
        self.completion_tokens = len(self.words) + sum(
            len(json.dumps(t.get("arguments", {})).split()) for t in self.tool_calls
        )
        self.cached = scripted.cached_tokens if scripted.cached_tokens is not None else fake.cached_tokens
        self.reasoning = (
            scripted.reasoning_tokens if scripted.reasoning_tokens is not None else fake.reasoning_tokens
        )
        self.first_delay = fake.first_chunk_delay_s
        self.delay = fake.chunk_delay_s
        self.sent = 0

    def pace(self) -> bool:
        """Wait before the next chunk; False when the connection must be cut now."""
        time.sleep(self.first_delay if self.sent == 0 else self.delay)
        if self.scripted.cut_after_chunks is not None and self.sent >= self.scripted.cut_after_chunks:
            self.h._cut()
            return False
        self.sent += 1
        return True

    def run(self) -> None:
        if self.body.get("stream"):
            self.h._start_sse()
            if self.stream() is not False:
                self.h._end_sse()
        else:
            time.sleep(self.first_delay)
            self.h._json(200, self.complete())

    def complete(self) -> Any:
        raise NotImplementedError

    def stream(self) -> bool | None:
        raise NotImplementedError


class _OpenAIChat(_Reply):
    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "audio_tokens": 0},
        }

    def finish_reason(self) -> str:
        return self.scripted.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def complete(self) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{self.number}_{i}",
                    "type": "function",
                    "function": {"name": t["name"], "arguments": json.dumps(t.get("arguments", {}))},
                }
                for i, t in enumerate(self.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{self.number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "finish_reason": self.finish_reason(), "logprobs": None}
            ],
            "usage": self.usage(),
        }

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True
    ) -> bytes:
        payload = {
            "id": f"chatcmpl-{self.number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
            if choices
            else [],
        }
        if usage is not None:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n".encode()

    def stream(self) -> bool | None:
        send = self.h._send_chunk
        if not self.pace():
            return False
        send(self._chunk({"role": "assistant", "content": ""}))
        for word in self.words:
            if not self.pace():
                return False
            send(self._chunk({"content": word}))
        for i, tool in enumerate(self.tool_calls):
            arguments = json.dumps(tool.get("arguments", {}))
            half = len(arguments) // 2
            first = {
                "index": i,
                "id": f"call_{self.number}_{i}",
                "type": "function",
                "function": {"name": tool["name"], "arguments": arguments[:half]},
            }
            for piece in (first, {"index": i, "function": {"arguments": arguments[half:]}}):
                if not self.pace():
                    return False
                send(self._chunk({"tool_calls": [piece]}))
        send(self._chunk({}, self.finish_reason()))
        if (self.body.get("stream_options") or {}).get("include_usage"):
            send(self._chunk({}, usage=self.usage(), choices=False))
        send(b"data: [DONE]\n\n")
        return None


class _OpenAIResponses(_Reply):
    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": self.cached},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def _message_item(self, text: str, status: str = "completed") -> dict[str, Any]:
        return {
            "type": "message",
            "id": f"msg_{self.number}",
            "status": status,
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }

    def _tool_items(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function_call",
                "id": f"fc_{self.number}_{i}",
                "call_id": f"call_{self.number}_{i}",
                "name": t["name"],
                "arguments": json.dumps(t.get("arguments", {})),
                "status": "completed",
            }
            for i, t in enumerate(self.tool_calls)
        ]

    def response(self, status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
        return {
            "id": f"resp_{self.number}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": self.model,
            "output": output,
            "usage": usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": self.body.get("tools") or [],
            "error": None,
            "incomplete_details": None,
            "instructions": self.body.get("instructions"),
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
        }

    def complete(self) -> Any:
        output = ([self._message_item(self.text)] if self.text else []) + self._tool_items()
        return self.response("completed", output, self.usage())

    def stream(self) -> bool | None:
        seq = 0

        def event(kind: str, **data: Any) -> bool:
            nonlocal seq
            if not self.pace():
                return False
            payload = {"type": kind, "sequence_number": seq, **data}
            seq += 1
            self.h._send_chunk(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
            return True

        if not event("response.created", response=self.response("in_progress", [], None)):
            return False
        index = 0
        if self.text:
            item_id = f"msg_{self.number}"
            if not event(
                "response.output_item.added", output_index=0, item=self._message_item("", "in_progress")
            ):
                return False
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            if not event(
                "response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=part
            ):
                return False
            for word in self.words:
                if not event(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=0,
                    content_index=0,
                    delta=word,
                    logprobs=[],
                ):
                    return False
            if not event(
                "response.output_text.done",
                item_id=item_id,
                output_index=0,
                content_index=0,
                text=self.text,
                logprobs=[],
            ):
                return False
            done_part = {**part, "text": self.text}
            if not event(
                "response.content_part.done", item_id=item_id, output_index=0, content_index=0, part=done_part
            ):
                return False
            if not event("response.output_item.done", output_index=0, item=self._message_item(self.text)):
                return False
            index = 1
        for offset, item in enumerate(self._tool_items()):
            pending = {**item, "arguments": "", "status": "in_progress"}
            if not event("response.output_item.added", output_index=index + offset, item=pending):
                return False
            if not event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index + offset,
                delta=item["arguments"],
            ):
                return False
            if not event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index + offset,
                arguments=item["arguments"],
                name=item["name"],
            ):
                return False
            if not event("response.output_item.done", output_index=index + offset, item=item):
                return False
        return None if event("response.completed", response=self.complete()) else False


class _AnthropicMessages(_Reply):
    def usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": max(1, self.prompt_tokens - self.cached),
            "output_tokens": output_tokens,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": 0,
        }

    def stop_reason(self) -> str:
        return self.scripted.finish_reason or ("tool_use" if self.tool_calls else "end_turn")

    def complete(self) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": self.text}] if self.text else []
        content += [
            {
                "type": "tool_use",
                "id": f"toolu_{self.number}_{i}",
                "name": t["name"],
                "input": t.get("arguments", {}),
            }
            for i, t in enumerate(self.tool_calls)
        ]
        return {
            "id": f"msg_{self.number}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason(),
            "stop_sequence": None,
            "usage": self.usage(self.completion_tokens),
        }

    def stream(self) -> bool | None:
        def event(kind: str, **data: Any) -> bool:
            if not self.pace():
                return False
            self.h._send_chunk(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())
            return True

        start = {**self.complete(), "content": [], "stop_reason": None, "usage": self.usage(1)}
        if not event("message_start", message=start):
            return False
        self.h._send_chunk(b'event: ping\ndata: {"type": "ping"}\n\n')
        index = 0
        if self.text:
            if not event("content_block_start", index=0, content_block={"type": "text", "text": ""}):
                return False
            for word in self.words:
                if not event("content_block_delta", index=0, delta={"type": "text_delta", "text": word}):
                    return False
            if not event("content_block_stop", index=0):
                return False
            index = 1
        for offset, tool in enumerate(self.tool_calls):
            i = index + offset
            block = {
                "type": "tool_use",
                "id": f"toolu_{self.number}_{offset}",
                "name": tool["name"],
                "input": {},
            }
            if not event("content_block_start", index=i, content_block=block):
                return False
            arguments = json.dumps(tool.get("arguments", {}))
            if not event(
                "content_block_delta", index=i, delta={"type": "input_json_delta", "partial_json": arguments}
            ):
                return False
            if not event("content_block_stop", index=i):
                return False
        delta = {"stop_reason": self.stop_reason(), "stop_sequence": None}
        if not event("message_delta", delta=delta, usage={"output_tokens": self.completion_tokens}):
            return False
        return None if event("message_stop") else False
