"""Security headers: pages run only the server's own scripts, cannot be framed, and are not MIME-sniffed."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HOST_RE = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def content_security_policy(host: str, inline_scripts: tuple[str, ...] = ()) -> str:
    """One policy for every response, the API docs included (served from the fastapi-offline package).
    `inline_scripts`: the CSP hashes of the inline scripts a page carries (its import map), allowed one by one."""
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(("script-src 'self'", *inline_scripts)),
            "style-src 'self' 'unsafe-inline'",  # Plotly and Swagger UI set inline styles
            "img-src 'self' data: blob:",
            "font-src 'self'",
            f"connect-src 'self' ws://{host} wss://{host}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# The headers besides the policy, the same on every response.
FIXED = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def policy_host(scope: Scope) -> str:
    """The request's Host, as the policy may name it: the header is the client's, so never let it write into it."""
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    return host if HOST_RE.fullmatch(host) else "localhost"


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The headers SecurityHeaders adds, raw, for an ASGI app in front of it (app.web.middleware.assets). They all
    matter to a static file: an SVG opened on its own is a document (its policy, framing), and nosniff makes a
    browser refuse a script or a style sheet served under the wrong type."""
    return [
        (b"content-security-policy", content_security_policy(policy_host(scope)).encode()),
        *FIXED,
    ]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = policy_host(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", content_security_policy(host))
                for name, value in FIXED:
                    headers.setdefault(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SlashRedirect:
    """/tours/ → /tours, with a Location that is a path only. Starlette's own redirect builds an absolute URL from
    the Host header, which a client chooses (and always http): a forged Host would send the visitor elsewhere.
    Leading slashes are collapsed too, so that //host/ cannot become the protocol-relative //host."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or len(path) < 2 or not path.endswith("/"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = quote("/" + path.strip("/"), safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 307,
                "headers": [(b"location", target.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
