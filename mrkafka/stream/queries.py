"""Interactive queries: a running stream application answers look-ups from its reducers' state.

As Kafka Streams' interactive queries do, a look-up reads the state stores of the running
application, not its output. While a stream run lasts, its driver serves
``GET /lookup?key=KEY&fuzzy=N`` on 127.0.0.1 (a free port) and writes where to
``STATE_DIR/APP/query-endpoint.json``; ``mrkafka lookup --application-id APP KEY`` reads that
file and asks. An exact key goes to the reducer whose partition murmur2 gives it (as text,
and as an int key when it is decimal); a fuzzy look-up goes to every reducer. A reducer
answers from its committed state, its values through the job's ``finish``: what the output
topic holds for the key.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import ray

from mrkafka.core.json import to_json
from mrkafka.core.keys import owners
from mrkafka.errors import MrkafkaError
from mrkafka.io.index import Match, ranked, weight

__all__ = ["QueryServer", "query"]

_ENDPOINT = "query-endpoint.json"


def _endpoint_file(state_dir: str | Path, app: str) -> Path:
    return Path(state_dir).expanduser() / app / _ENDPOINT


class QueryServer:
    """The driver's query endpoint for the reducer actors of one run (a context manager)."""

    def __init__(self, app: str, state_dir: str | Path, reducers: list[Any], timeout_s: float) -> None:
        self.app = app
        self.path = _endpoint_file(state_dir, app)
        self.reducers = reducers
        self.timeout_s = timeout_s
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, name="mrkafka-queries", daemon=True)

    def _serve(self) -> None:
        # Ctrl-C and SIGTERM are the main thread's (they stop the run): a signal the kernel hands
        # to this thread would not interrupt what the main thread waits in. Request threads
        # inherit the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        self._server.serve_forever()

    def __enter__(self) -> QueryServer:
        self._thread.start()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        host, port = self._server.server_address[:2]
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
        os.replace(temporary, self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, key: str, edits: int) -> list[tuple[str, int, Any]]:
        """Ask the reducers that may hold ``key`` (every one for a fuzzy look-up)."""
        asked = range(len(self.reducers)) if edits else owners(key, len(self.reducers))
        answers = ray.get([self.reducers[k].query.remote(key, edits) for k in asked], timeout=self.timeout_s)
        restoring = [k for k, rows in zip(asked, answers) if rows is None]
        if restoring:
            raise MrkafkaError(f"reducer {restoring[0]} of {self.app} is restoring its state: ask again shortly")
        found = [Match(*row, weight(row[2])) for rows in answers for row in rows]
        return [(match.key, match.distance, match.value) for match in ranked(found)]

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                url = urllib.parse.urlsplit(self.path)
                params = urllib.parse.parse_qs(url.query, errors="surrogateescape")
                try:
                    if url.path != "/lookup" or "key" not in params:
                        raise ValueError("ask GET /lookup?key=KEY&fuzzy=N")
                    rows = server.answer(params["key"][0], int(params.get("fuzzy", ["0"])[0]))
                    status, body = 200, to_json([list(row) for row in rows])
                except ValueError as exc:
                    status, body = 400, to_json({"error": str(exc)})
                except Exception as exc:  # a reducer restarting, restoring, or too slow
                    status, body = 503, to_json({"error": f"{type(exc).__name__}: {exc}"})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the run's own log stays the run's

        return Handler


def query(
    app: str, state_dir: str | Path, key: str, edits: int = 0, timeout_s: float = 30
) -> list[tuple[str, int, Any]]:
    """Ask the running application ``app`` (``mrkafka lookup --application-id``)."""
    path = _endpoint_file(state_dir, app)
    try:
        endpoint = json.loads(path.read_text())
    except (OSError, ValueError):
        raise MrkafkaError(f"application {app} is not running here (no query endpoint at {path})") from None
    address = f"{endpoint['host']}:{endpoint['port']}"
    quoted = urllib.parse.urlencode({"key": key, "fuzzy": edits}, errors="surrogateescape")
    try:
        with urllib.request.urlopen(f"http://{address}/lookup?{quoted}", timeout=timeout_s) as response:
            rows = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise MrkafkaError(f"application {app}: {json.loads(exc.read()).get('error')}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MrkafkaError(
            f"application {app} is not running (its query endpoint {address}, of process {endpoint.get('pid')}, "
            f"does not answer: {reason})"
        ) from None
    return [(k, d, v) for k, d, v in rows]
