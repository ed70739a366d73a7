"""`streamyolox streams list | add | remove --http http://127.0.0.1:PORT`: the streams of a running pipeline
(its `--http` port: GET/POST /streams, DELETE /streams/{id}; see streamyolox.web.api)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

TOKEN_ENV = "STREAMYOLOX_HTTP_TOKEN"


class ApiError(Exception):
    """One line for the user: what was asked and why it failed."""


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--http", required=True, metavar="URL",
                        help="the pipeline's HTTP endpoint, e.g. http://127.0.0.1:9100")
    common.add_argument("--token", default=os.environ.get(TOKEN_ENV), metavar="T",
                        help=f"bearer token (default ${TOKEN_ENV})")
    common.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for an answer")

    p = subparsers.add_parser("streams", help="list, add or remove the streams of a running pipeline")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", parents=[common], help="one line per stream (--json: the rows as JSON)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    add = sub.add_parser("add", parents=[common], help="add a stream while the pipeline runs")
    add.add_argument("id", help="stream id ([A-Za-z0-9_.-], at most 64)")
    add.add_argument("url", help="file, rtsp://, http(s)://, webcam:N, ...")
    add.add_argument("--source", default=None, help="the decode stage to add it to (needed with several)")
    add.add_argument("--set", dest="sets", action="append", default=[], metavar="OPTION=VALUE",
                     help="a per-stream decode option, e.g. max_fps=10, loop=true (repeatable)")
    add.set_defaults(func=cmd_add)
    rm = sub.add_parser("remove", parents=[common], help="remove a stream (returns once its frames have "
                                                         "passed every sink)")
    rm.add_argument("id")
    rm.set_defaults(func=cmd_remove)


def request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON or None); ApiError for a refused connection or a 4xx/5xx answer."""
    base = args.http.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ApiError(f"--http {args.http}: expected http://HOST:PORT")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if args.token:
        req.add_header("Authorization", f"Bearer {args.token}")
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as res:
            raw = res.read()
            return res.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raise ApiError(f"{method} {path}: {exc.code} {_error_text(exc.read())}") from None
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise ApiError(f"{base}: cannot connect ({reason}): is the pipeline running with --http?") from None
    except TimeoutError:
        raise ApiError(f"{method} {path}: no answer within {args.timeout:g} s") from None


def _error_text(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
        return str(doc.get("error", doc)) if isinstance(doc, dict) else str(doc)
    except (ValueError, UnicodeDecodeError):
        return " ".join(raw.decode("utf-8", "replace").split())[:200]


def _options(sets: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ApiError(f"--set {item}: expected OPTION=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value else ""  # max_fps=10 -> 10, loop=true -> True
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("id", "source", "state", "frames", "fps", "age p50 ms", "p99 ms", "dropped", "reconnects", "url")
    lines = [head]
    for r in rows:
        dropped = r.get("dropped") or 0
        lines.append((str(r["id"]), str(r.get("source", "")), str(r.get("state", "")), str(r.get("frames", 0)),
                      f"{r.get('fps') or 0:.1f}", _ms(r.get("age_p50_s")), _ms(r.get("age_p99_s")),
                      str(sum(dropped.values()) if isinstance(dropped, dict) else dropped),
                      str(r.get("reconnects", 0)), str(r.get("url") or "")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except ApiError as exc:
        print(f"streamyolox: error: {exc}", file=sys.stderr)
        return 1


def cmd_list(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        _, rows = request(a, "GET", "/streams")
        print(json.dumps(rows, indent=1) if a.json else table(rows))
        return 0
    return _run(go, args)


def cmd_add(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        body = {"id": a.id, "url": a.url, **_options(a.sets)}
        if a.source:
            body["source"] = a.source
        _, row = request(a, "POST", "/streams", body)
        print(f"added {row['id']} to {row.get('source')}: {row.get('state', '')} {row.get('url', a.url)}")
        return 0
    return _run(go, args)


def cmd_remove(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        status, doc = request(a, "DELETE", f"/streams/{urllib.parse.quote(a.id, safe='')}")
        if status == 202:  # removed, but its last frames had not reached every sink within the timeout
            print(f"removed {a.id}; not yet flushed through every sink: {doc}", file=sys.stderr)
        else:
            print(f"removed {a.id}")
        return 0
    return _run(go, args)
