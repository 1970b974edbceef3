"""Who the resident is: sessions, CSRF tokens and the ``Authenticator`` interface.

The interface
-------------
An ``Authenticator`` proves a resident's identity and hands the personnummer to
``Sessions.login``. The application mounts the authenticator's ``routes()`` and lists it on
``/logga-in`` under its ``label``, linking to its ``start_path``. It never sees the session
cookie itself. A real e-ID (BankID/Freja through an OIDC identity provider) plugs in like this::

    class OidcAuthenticator:
        label = "BankID"
        start_path = "/logga-in/oidc"

        def routes(self) -> list[web.RouteDef]:
            return [web.get("/logga-in/oidc", self.start),             # redirect to the IdP
                    web.get("/logga-in/oidc/callback", self.callback)]  # code → id_token

        async def start(self, request):
            # keep state and nonce in the (anonymous) session, redirect to the authorize URL
            ...

        async def callback(self, request):
            # check state, exchange the code, verify the id_token (issuer, audience, nonce,
            # signature), read the personnummer claim, then:
            return await request.app[SESSIONS].login(request, personnummer, self.label)

Pass it as ``make_app(..., authenticator=OidcAuthenticator())``. The pilot's test e-ID below
is the only implementation in this repository; ``make_app`` mounts it only when the pilot
flag is set (``listning eservice serve --pilot``), and no environment variable can set that.

Sessions
--------
Server-side (``store.Store``); the cookie holds a random token, ``HttpOnly``,
``SameSite=Lax``, ``Secure`` when served over HTTPS. Logging in replaces the session (no
fixation). Every POST form carries the session's CSRF token, checked in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from consumers.eservice.store import Store

COOKIE = "listning_session"


class Authenticator(Protocol):
    """Proves who the resident is (see the module documentation)."""

    label: str  # shown on the login page, e.g. "BankID"
    start_path: str  # where the login page links to

    def routes(self) -> list[web.RouteDef]: ...


@dataclass
class Session:
    token: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False
    new_token: bool = False
    ended: bool = False

    @property
    def person_id(self) -> str | None:
        return self.data.get("pid")

    @property
    def acting_for(self) -> str | None:
        return self.data.get("acting_for")

    def set(self, key: str, value: Any) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value
        self.changed = True


SESSION_KEY = "eservice_session"


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST, the browser GETs the next page."""
    return web.Response(status=303, headers={"Location": location})


class Sessions:
    def __init__(self, store: Store, secure_cookies: bool) -> None:
        self.store = store
        self.secure_cookies = secure_cookies

    def load(self, request: web.Request) -> Session:
        token = request.cookies.get(COOKIE)
        if token:
            data = self.store.load_session(token)
            if data is not None:
                return Session(token, data)
        return Session()

    def ensure(self, session: Session) -> None:
        """Give an anonymous visitor a session (to hold a CSRF token)."""
        if session.token is None:
            session.data.setdefault("csrf", secrets.token_urlsafe(32))
            session.token = self.store.new_session(session.data)
            session.new_token = True

    async def login(self, request: web.Request, person_id: str, method: str) -> web.Response:
        """Start a resident's session (a new token: no fixation) and go to Min listning."""
        old: Session = request[SESSION_KEY]
        if old.token:
            self.store.delete_session(old.token)
        new = Session(data={"pid": person_id, "method": method,
                            "csrf": secrets.token_urlsafe(32)})
        new.token = self.store.new_session(new.data)
        new.new_token = True
        request[SESSION_KEY] = new
        return redirect("/min-listning")

    def logout(self, session: Session) -> None:
        if session.token:
            self.store.delete_session(session.token)
        session.ended = True

    def finish(self, request: web.Request, response: web.StreamResponse) -> None:
        """Write the session back and set or clear the cookie."""
        session: Session | None = request.get(SESSION_KEY)
        if session is None:
            return
        secure = self.secure_cookies or request.secure
        if session.ended:
            response.del_cookie(COOKIE, path="/")
            return
        if session.token and session.changed and not session.new_token:
            self.store.save_session(session.token, session.data)
        if session.token and session.new_token:
            response.set_cookie(COOKIE, session.token, path="/", httponly=True,
                                samesite="Lax", secure=secure)


def csrf_token(request: web.Request) -> str:
    session: Session = request[SESSION_KEY]
    sessions: Sessions = request.app[SESSIONS]
    sessions.ensure(session)
    token = session.data.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session.set("csrf", token)
    return str(token)


def check_csrf(request: web.Request, form: Any) -> None:
    """Refuse a POST without the session's CSRF token (or from another origin)."""
    origin = request.headers.get("Origin")
    # host only: behind a TLS-terminating proxy the scheme seen here is http
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise CsrfError()
    session: Session = request[SESSION_KEY]
    expected_token = session.data.get("csrf")
    given = form.get("csrf", "") if form is not None else ""
    if not expected_token or not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), str(expected_token).encode()):
        raise CsrfError()


class CsrfError(web.HTTPForbidden):
    """The form's CSRF token was missing or wrong (an old tab, or a forged request)."""


SESSIONS = web.AppKey("sessions", Sessions)
