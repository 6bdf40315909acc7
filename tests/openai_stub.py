"""A small OpenAI-compatible server the tests control: each request is answered by the next scripted behaviour
(an answer streamed word by word, an HTTP error with headers, a stream cut mid-way, a slow stream), and every
request, its headers and whether its client went away are recorded. Plain `http.server`, on loopback only."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stub:
    """`Stub([("answer", "Hold it for 12 seconds [1]."), ("error", 429, {"Retry-After": "1"}, "slow down"), ...])`;
    once the script is used up, the last behaviour repeats. `url` is the /v1 base URL."""

    def __init__(self, script: list[tuple]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.disconnected = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "stub-model", "max_model_len": 2048}]})
                else:
                    self._json(404, {"error": {"message": "no such path"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with threading.Lock():
                    stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    stub.times.append(time.monotonic())
                    step = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                kind = step[0]
                if kind == "error":
                    _, status, headers, message = step
                    self._json(status, {"error": {"message": message, "type": "x", "code": None}}, headers)
                elif kind == "answer":
                    self._stream(step[1].split(" "), pause=step[2] if len(step) > 2 else 0.0)
                elif kind == "cut":  # a few words, then the connection closes without [DONE]
                    self._stream(step[1].split(" "), finish=False)
                elif kind == "silent":  # accept the request, then say nothing for a while (a long prefill)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self._wait_for_disconnect(step[1])
                elif kind == "close":  # drop the connection without any answer
                    self.close_connection = True
                    self.connection.shutdown(2)

            def _json(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _event(self, payload) -> bool:
                line = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
                try:
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                    return True
                except OSError:
                    stub.disconnected.set()
                    return False

            def _stream(self, words, pause=0.0, finish=True):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    chunk = {
                        "id": "c",
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    if not self._event(chunk):
                        return
                    time.sleep(pause)
                if not finish:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)  # no terminating chunk: the stream breaks
                    return
                self._event({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._event({"id": "c", "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": len(words)}})
                self._event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")

            def _wait_for_disconnect(self, seconds):
                deadline = time.monotonic() + seconds
                self.connection.settimeout(0.05)
                while time.monotonic() < deadline:
                    try:
                        if self.connection.recv(1) == b"":
                            stub.disconnected.set()
                            return
                    except TimeoutError:
                        continue
                    except OSError:
                        stub.disconnected.set()
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
