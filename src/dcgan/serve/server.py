"""`dcgan serve`'s HTTP side: the standard library's single-threaded `HTTPServer`, on purpose.

One generator answers one request at a time (a forward pass is milliseconds, and a GAN on a
laptop has one user), so requests queue instead of multiplying memory; each connection must
finish within `TIMEOUT_S`; every query is checked against a schema of small integers before
any work (unknown, repeated, missing or out-of-range fields are a 400); the page and its
script come from the package, never from a path the request names; nothing is written.
No dependency is added: the whole surface is this file.
"""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from dcgan.errors import ConfigError
from dcgan.images import png_bytes
from dcgan.seeding import MAX_SEED
from dcgan.serve.playground import MAX_GROUP, MAX_STEPS, Picture, Playground

TIMEOUT_S = 10  # a connection that sends its request slower than this is dropped
MAX_URL = 2048
MAX_INDEX = 2**31 - 1
MAX_VALUE = 100.0  # a z coordinate a slider may reach
INTEGER = re.compile(r"[0-9]{1,19}")
NUMBER = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,6})?")
PAGES = {"/": ("page.html", "text/html; charset=utf-8")}


class BadRequest(ValueError):
    """A query the page would never send: answered 400 with the reason."""


class Query:
    """A request's query fields, each read once and checked; leftovers are an error."""

    def __init__(self, text: str, known: set[str]) -> None:
        try:
            fields = parse_qs(text, strict_parsing=bool(text), max_num_fields=16)
        except ValueError as e:
            raise BadRequest(f"unreadable query ({e})") from None
        unknown = set(fields) - known
        if unknown:
            raise BadRequest(f"unknown field {sorted(unknown)[0][:40]!r}")
        if any(len(v) > 1 for v in fields.values()):
            raise BadRequest("a field given twice")
        self.fields = {k: v[0] for k, v in fields.items()}

    def text(self, name: str, default: str | None = None) -> str:
        if name not in self.fields:
            if default is None:
                raise BadRequest(f"missing field {name!r}")
            return default
        return self.fields[name]

    def integer(self, name: str, top: int, default: int | None = None) -> int:
        raw = self.text(name, None if default is None else str(default))
        if not INTEGER.fullmatch(raw) or int(raw) > top:
            raise BadRequest(f"{name}: {raw[:20]!r} is not a whole number from 0 to {top}")
        return int(raw)

    def number(self, name: str, default: float) -> float:
        raw = self.text(name, repr(default))
        if not NUMBER.fullmatch(raw) or not math.isfinite(v := float(raw)) or abs(v) > MAX_VALUE:
            raise BadRequest(f"{name}: {raw[:20]!r} is not a number within +-{MAX_VALUE:g}")
        return v

    def group(self, name: str) -> list[int]:
        parts = self.text(name).split(",")
        if not 1 <= len(parts) <= MAX_GROUP or not all(INTEGER.fullmatch(p) for p in parts):
            raise BadRequest(f"{name}: give 1 to {MAX_GROUP} image indices such as 3,17")
        values = [int(p) for p in parts]
        if max(values) > MAX_INDEX:
            raise BadRequest(f"{name}: indices run from 0 to {MAX_INDEX}")
        return values


COMMON = {"seed", "class"}
ROUTES = {
    "/api/image": COMMON | {"index"},
    "/api/interpolate": COMMON | {"a", "b", "steps", "k", "method"},
    "/api/sweep": COMMON | {"index", "dim", "low", "high", "steps", "k"},
    "/api/arithmetic": COMMON | {"a", "b", "c"},
}


def answer(play: Playground, path: str, query: Query) -> Picture:
    """The picture a route asks for, every field checked before the generator runs."""
    seed = query.integer("seed", MAX_SEED, default=0)
    label = _label(play, query)
    if path == "/api/image":
        return play.image(seed, query.integer("index", MAX_INDEX), label)
    if path == "/api/arithmetic":
        return play.arithmetic(seed, [query.group(n) for n in "abc"], label)
    steps = query.integer("steps", MAX_STEPS, default=9)
    if steps < 2:
        raise BadRequest(f"steps: {steps} must be at least 2 (both ends)")
    k = query.integer("k", steps - 1)
    if path == "/api/interpolate":
        method = query.text("method", play.method)
        if method not in ("slerp", "lerp"):
            raise BadRequest("method: slerp or lerp")
        a, b = query.integer("a", MAX_INDEX), query.integer("b", MAX_INDEX)
        return play.interpolate(seed, a, b, steps, k, method, label)
    index, dim = query.integer("index", MAX_INDEX), query.integer("dim", play.cfg.nz - 1)
    span = (query.number("low", -3.0), query.number("high", 3.0))
    return play.sweep(seed, index, dim, span, steps, k, label)


def _label(play: Playground, query: Query) -> int | None:
    if not play.cfg.conditional:
        if "class" in query.fields:
            raise BadRequest("class: this model is not conditional")
        return None
    return query.integer("class", play.cfg.num_classes - 1, default=0)


class Handler(BaseHTTPRequestHandler):
    """GET only: the page, /api/info, and the image routes."""

    play: Playground  # set on the class made by `make_server`
    timeout = TIMEOUT_S
    server_version = "dcgan-serve"
    protocol_version = "HTTP/1.0"  # one request per connection: no client holds the server idle

    def do_GET(self) -> None:
        if len(self.path) > MAX_URL:
            return self._error(HTTPStatus.REQUEST_URI_TOO_LONG, "the address is too long")
        url = urlsplit(self.path)
        if url.path in PAGES:
            name, kind = PAGES[url.path]
            return self._send(
                HTTPStatus.OK, resources.files(__package__).joinpath(name).read_bytes(), kind
            )
        if url.path == "/api/info":
            return self._send(
                HTTPStatus.OK, json.dumps(self.play.info()).encode(), "application/json"
            )
        if url.path not in ROUTES:
            return self._error(HTTPStatus.NOT_FOUND, "no such page")
        try:
            picture = answer(self.play, url.path, Query(url.query, ROUTES[url.path]))
        except (BadRequest, ConfigError) as e:  # ConfigError: a check of the latent functions
            return self._error(HTTPStatus.BAD_REQUEST, str(e))
        self._send(HTTPStatus.OK, png_bytes(picture.image), "image/png", picture.command)

    def do_POST(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "only GET")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _error(self, status: HTTPStatus, reason: str) -> None:
        body = json.dumps({"error": reason}).encode()
        self._send(status, body, "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, command: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if command:
            self.send_header("X-Dcgan-Command", command.encode("ascii", "replace").decode())
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Quiet: a page loads dozens of images."""


def make_server(play: Playground, host: str, port: int) -> HTTPServer:
    """A server bound to (host, port) (port 0: a free one), not yet serving."""
    handler = type("PlaygroundHandler", (Handler,), {"play": play})
    return HTTPServer((host, port), handler)
