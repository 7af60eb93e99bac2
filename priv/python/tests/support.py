"""Small helpers shared by the tests."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


import dspex_bridge as bridge

SECRET = "sk-secret123"


def dummy(*answers):
    """An lm_spec for a DummyLM answering each call with the next map."""
    return {"kind": "dummy", "answers": list(answers)}


def dummy_by_substring(mapping):
    """An lm_spec for a DummyLM answering by a substring of the prompt's last message."""
    return {"kind": "dummy", "answers": dict(mapping)}


def real_lm(api_key=SECRET, model="openai/gpt-4o-mini"):
    """A real dspy.LM spec; tests only construct it, never call it."""
    return {"kind": "lm", "model": model, "kwargs": {"api_key": api_key}}


def ok(result):
    assert isinstance(result, tuple) and len(result) == 2, result
    assert result[0] is True, result
    return result[1]


def err(result, reason):
    assert isinstance(result, tuple) and len(result) == 2, result
    assert result[0] is False, result
    error = result[1]
    assert set(error) == {"reason", "message", "python_type", "traceback"}, error
    assert error["reason"] == reason, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def call(session, op, args=None):
    return bridge.call(session, op, {} if args is None else args)


class Server:
    """An OpenAI-compatible chat server that answers `answer` and counts its requests."""

    def __init__(self, answer, content=None):
        self.requests = []
        content = content or f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                server.requests.append((self.headers.get("authorization"), json.loads(body)))
                reply = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "test-model",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def lm(self, key, **extra):
        kwargs = {"api_base": self.url, "api_key": key, "num_retries": 0, **extra}
        return {"kind": "lm", "model": "openai/test-model", "kwargs": kwargs}

