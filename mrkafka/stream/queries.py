"""Interactive queries: a running stream application answers look-ups from its reducers' state.

As Kafka Streams' interactive queries do, a look-up reads the state stores of the running
application, not its output. While a stream run lasts, its driver serves
``GET /lookup?key=KEY&fuzzy=N`` on 127.0.0.1 (a free port) and writes where, with a random
token, to ``STATE_DIR/APP/query-endpoint.json`` (mode 0600, in a 0700 directory);
``mrkafka lookup --application-id APP KEY`` reads that file and asks. An exact key goes to the
reducer whose partition murmur2 gives it (as text, and as an int key when it is decimal); a
fuzzy look-up goes to every reducer. A reducer answers from its committed state, its values
through the job's ``finish``: what the output topic holds for the key.

What the state holds is guarded as Kafka's ACLs guard the topics it came from: a request
without the token (``Authorization: Bearer TOKEN``) is refused (401), as is one whose Host
header is not this endpoint's (403: a web page that rebinds a name to 127.0.0.1); a key
longer than ``MAX_KEY`` characters or more than ``MAX_EDITS`` edits is refused (400); at
most ``MAX_QUERIES`` are answered at once (503 beyond); each has ``QUERY_TIMEOUT_S``, after
which the reducers stop scanning for it (503). Reducers scan in a thread of their own, off
the event loop that commits their transactions.
"""

from __future__ import annotations

import contextlib
import hmac
import http.server
import json
import os
import secrets
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import ray

from mrkafka.core.json import to_json
from mrkafka.core.keys import owners
from mrkafka.errors import BadInputError, MrkafkaError
from mrkafka.io.index import Match, ranked, weight
from mrkafka.kafka.security import write_private

__all__ = ["MAX_EDITS", "MAX_KEY", "MAX_QUERIES", "QUERY_TIMEOUT_S", "QueryServer", "query"]

_ENDPOINT = "query-endpoint.json"
MAX_KEY = 256
MAX_EDITS = 2
MAX_QUERIES = 4
QUERY_TIMEOUT_S = 10.0


class _Refused(Exception):
    """A request the endpoint does not answer: its HTTP status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _endpoint_file(state_dir: str | Path, app: str) -> Path:
    return Path(state_dir).expanduser() / app / _ENDPOINT


class QueryServer:
    """The driver's query endpoint for the reducer actors of one run (a context manager)."""

    def __init__(
        self, app: str, state_dir: str | Path, reducers: list[Any], timeout_s: float = QUERY_TIMEOUT_S
    ) -> None:
        self.app = app
        self.path = _endpoint_file(state_dir, app)
        self.reducers = reducers
        self.timeout_s = timeout_s
        self.token = secrets.token_urlsafe(32)
        self._running = threading.BoundedSemaphore(MAX_QUERIES)
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
        host, port = self._server.server_address[:2]
        temporary = self.path.with_suffix(".tmp")
        write_private(
            temporary, json.dumps({"host": host, "port": port, "pid": os.getpid(), "token": self.token}).encode()
        )
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
        if len(key) > MAX_KEY or not 0 <= edits <= MAX_EDITS:
            raise _Refused(400, f"a key of at most {MAX_KEY} characters, and 0 to {MAX_EDITS} edits")
        if not self._running.acquire(blocking=False):
            raise _Refused(503, f"{MAX_QUERIES} look-ups are running: ask again shortly")
        try:
            asked = range(len(self.reducers)) if edits else owners(key, len(self.reducers))
            deadline = time.time() + self.timeout_s
            refs = [self.reducers[k].query.remote(key, edits, deadline) for k in asked]
            answers = ray.get(refs, timeout=self.timeout_s + 5)
        except (ray.exceptions.GetTimeoutError, TimeoutError):
            raise _Refused(503, f"the look-up took longer than {self.timeout_s:.0f} s") from None
        finally:
            self._running.release()
        restoring = [k for k, rows in zip(asked, answers) if rows is None]
        if restoring:
            raise MrkafkaError(f"reducer {restoring[0]} of {self.app} is restoring its state: ask again shortly")
        found = [Match(*row, weight(row[2])) for rows in answers for row in rows]
        return [(match.key, match.distance, match.value) for match in ranked(found)]

    def check(self, headers: Any) -> None:
        """Refuse a request without this endpoint's token, or for another host."""
        port = self._server.server_address[1]
        if headers.get("Host") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            raise _Refused(403, f"this endpoint answers requests for 127.0.0.1:{port} only")
        given = headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise _Refused(401, f"give the token of {self.path} (Authorization: Bearer TOKEN)")

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                url = urllib.parse.urlsplit(self.path)
                params = urllib.parse.parse_qs(url.query, errors="surrogateescape")
                try:
                    server.check(self.headers)
                    if url.path != "/lookup" or "key" not in params:
                        raise _Refused(400, "ask GET /lookup?key=KEY&fuzzy=N")
                    try:
                        edits = int(params.get("fuzzy", ["0"])[0])
                    except ValueError:
                        raise _Refused(400, "fuzzy is a number of edits") from None
                    rows = server.answer(params["key"][0], edits)
                    status, body = 200, to_json([list(row) for row in rows])
                except _Refused as exc:
                    status, body = exc.status, to_json({"error": str(exc)})
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
        text = path.read_text()
    except OSError:
        raise MrkafkaError(f"application {app} is not running here (no query endpoint at {path})") from None
    try:
        endpoint = json.loads(text)
        address = f"{endpoint['host']}:{int(endpoint['port'])}"
    except (ValueError, TypeError, KeyError):
        raise BadInputError(
            f"{path} is not a query endpoint file (JSON with host and port, which a running application writes)"
        ) from None
    quoted = urllib.parse.urlencode({"key": key, "fuzzy": edits}, errors="surrogateescape")
    request = urllib.request.Request(
        f"http://{address}/lookup?{quoted}", headers={"Authorization": f"Bearer {endpoint.get('token', '')}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
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
