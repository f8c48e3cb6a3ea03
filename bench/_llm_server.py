"""A local OpenAI-compatible server and a telemetry sink, in their own process.

``python -m bench._llm_server`` starts ``rlhfkit.testing.FakeLLMServer`` with
no pacing (so that timing differences come from the client side) and a sink
that answers 200 to every POST (Langfuse's OTLP and ingestion endpoints,
anything else), prints ``READY <llm_port> <sink_port>`` and serves until its
stdin closes. Running them outside the measured process keeps their threads
off the client's GIL.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = (
    "Paris is the capital of France, and it is known for the Eiffel Tower, "
    "the Louvre and its cafes along the Seine."
)  # 20 words: a 20-chunk stream


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no Nagle delay between them

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def _ok(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_GET = _ok


def main() -> None:
    """Serve until stdin closes."""
    from rlhfkit.testing import FakeLLMServer

    llm = FakeLLMServer(reply=REPLY, first_chunk_delay_s=0.0, chunk_delay_s=0.0).start()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    sink.daemon_threads = True
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    print(f"READY {llm.port} {sink.server_address[1]}", flush=True)
    sys.stdin.read()
    sink.shutdown()
    llm.stop()


if __name__ == "__main__":
    main()
