"""The HTTP routes beyond /metrics and /health: the streams API and the camera wall.

    GET    /                          the camera wall (one HTML page, nothing loaded from elsewhere)
    GET    /streams                   JSON list, one row per stream
    POST   /streams                   {"id": "cam9", "url": "...", "source": "...", ...options} -> 201 row
                                      (400 bad id/option, 409 taken id)
    DELETE /streams/{id}              204 once its frames have passed every sink (202 after the timeout);
                                      404 unknown
    GET    /streams/{id}/mjpeg?width=640&fps=10   multipart/x-mixed-replace JPEGs with boxes drawn
    GET    /wall                      JSON: the tap's counters and who watches what

Errors are JSON `{"error": "one line"}`. With a token every route but /health wants
`Authorization: Bearer <token>` (or `?token=` for the page and its pictures: an <img> sends no headers).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from streamyolox.graph.commands import StageUnavailable
from streamyolox.web.control import StreamControl, is_taken
from streamyolox.web.wall import BOUNDARY, WallFull, WallHub, Watch, page

log = logging.getLogger("streamyolox.http")
MAX_BODY = 64 * 1024


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def send(handler: BaseHTTPRequestHandler, code: int, body: bytes = b"", ctype: str = "application/json",
         headers: dict[str, str] | None = None) -> None:
    handler.send_response(code)
    if code != 204:
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    if code != 204:
        handler.wfile.write(body)


def send_json(handler: BaseHTTPRequestHandler, code: int, doc: Any) -> None:
    send(handler, code, json.dumps(doc).encode())


def error_code(exc: BaseException) -> int:
    """The HTTP status of an error raised by a stream command."""
    if is_taken(exc):
        return 409
    if isinstance(exc, KeyError):
        return 404
    if isinstance(exc, ValueError | TypeError):
        return 400
    if isinstance(exc, TimeoutError):
        return 504
    if isinstance(exc, StageUnavailable | WallFull):
        return 503
    return 500


def message(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())  # one line


@dataclass
class Api:
    control: StreamControl | None
    wall: WallHub | None
    token: str | None = None

    def authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.token is None:
            return True
        given = handler.headers.get("Authorization", "")
        if given.startswith("Bearer "):
            given = given[len("Bearer "):]
        else:
            given = parse_qs(urlsplit(handler.path).query).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")] if url.path.strip("/") else []
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._route(handler, method, parts, query)
        except HttpError as exc:
            send_json(handler, exc.code, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left
        except Exception as exc:
            code = error_code(exc)
            if code == 500:
                log.exception("%s %s failed", method, handler.path)
            send_json(handler, code, {"error": message(exc)})

    def _route(self, handler: BaseHTTPRequestHandler, method: str, parts: list[str],
               query: dict[str, str]) -> None:
        if method == "GET" and not parts:
            send(handler, 200, page(), "text/html; charset=utf-8", {"Cache-Control": "no-store"})
        elif method == "GET" and parts == ["wall"]:
            send_json(handler, 200, self._wall().stats())
        elif parts == ["streams"] and method == "GET":
            send_json(handler, 200, self._control().rows())
        elif parts == ["streams"] and method == "POST":
            send_json(handler, 201, self._control().add(read_json(handler)))
        elif len(parts) == 2 and parts[0] == "streams" and method == "DELETE":
            done = self._control().remove(parts[1])
            if done["flushed"]:
                send(handler, 204)
            else:
                send_json(handler, 202, done)
        elif len(parts) == 3 and parts[0] == "streams" and parts[2] == "mjpeg" and method == "GET":
            self._mjpeg(handler, parts[1], query)
        elif method in ("GET", "POST", "DELETE") and parts and parts[0] in ("streams", "wall"):
            raise HttpError(405 if parts == ["streams"] or parts == ["wall"] else 404,
                            f"{method} /{'/'.join(parts)}: not a route")
        else:
            raise HttpError(404, f"{method} /{'/'.join(parts)}: not a route")

    def _control(self) -> StreamControl:
        if self.control is None:
            raise HttpError(503, "this run has no stream control")
        return self.control

    def _wall(self) -> WallHub:
        if self.wall is None:
            raise HttpError(503, "this run has no camera wall (no stage to tap on this host)")
        return self.wall

    def _mjpeg(self, handler: BaseHTTPRequestHandler, stream: str, query: dict[str, str]) -> None:
        wall = self._wall()
        try:
            watch = Watch(width=int(query.get("width", 640)), fps=float(query.get("fps", 10)))
        except ValueError as exc:
            raise HttpError(400, message(exc)) from None
        def alive() -> bool:
            return self.control is None or any(r["id"] == stream and r.get("state") != "removed"
                                               for r in self.control.rows())

        if not alive():
            raise HttpError(404, f"no stream {stream!r}")
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        for part in wall.mjpeg(stream, watch, alive):
            handler.wfile.write(part)
            handler.wfile.flush()


def read_json(handler: BaseHTTPRequestHandler) -> Any:
    try:
        n = int(handler.headers.get("Content-Length", "0"))
    except ValueError:
        raise HttpError(400, "Content-Length: not a number") from None
    if n > MAX_BODY:
        raise HttpError(413, f"body: at most {MAX_BODY} bytes")
    try:
        return json.loads(handler.rfile.read(n) or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HttpError(400, f"body: not JSON: {exc}") from None
