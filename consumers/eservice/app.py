"""The web application: pages, middlewares and security headers.

Server-rendered Swedish HTML that works without JavaScript. Every page that needs a resident
resolves *who* first: the logged-in resident, or the child a guardian acts for (re-checked on
every request against the population register: guardianship, and age under 13).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from consumers import values as v
from consumers.client import ClientError, SoapFault
from consumers.eservice.auth import (
    SESSION_KEY,
    SESSIONS,
    Authenticator,
    CsrfError,
    Session,
    Sessions,
    check_csrf,
    csrf_token,
    redirect,
)
from consumers.eservice.backend import (
    Backend,
    PersonNotFound,
    ResultError,
    UnitView,
    region_name,
)
from consumers.eservice.pilot import TestEId
from consumers.eservice.store import Store
from consumers.eservice.texts import ACTIONS, MONTHS, result_info
from interactions import identifiers as ids
from producers.population.api import PersonInfo, PopulationApiError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
GUARDIAN_BELOW_AGE = 13  # a guardian acts for a child under 13; from 13 the child chooses
T = TypeVar("T")


@dataclass(frozen=True)
class EServiceConfig:
    data_dir: Path
    pilot: bool = False
    secure_cookies: bool = False  # always Secure cookies (behind a TLS-terminating proxy)


CONFIG = web.AppKey("config", EServiceConfig)
BACKEND = web.AppKey("backend", Backend)
STORE = web.AppKey("store", Store)
JINJA = web.AppKey("jinja", jinja2.Environment)
AUTHENTICATORS = web.AppKey("authenticators", list)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


# --- templates ---------------------------------------------------------------------------

def swedish_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def swedish_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"{swedish_date(value)} kl. {value.hour:02d}.{value.minute:02d}"


def make_jinja() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["datum"] = swedish_date
    env.filters["tid"] = swedish_time
    env.filters["region"] = region_name
    env.globals["result_info"] = result_info
    env.globals["ACTIONS"] = ACTIONS
    return env


def render(request: web.Request, template: str, status: int = 200,
           **context: Any) -> web.Response:
    session: Session | None = request.get(SESSION_KEY)
    base = {
        "path": request.path,
        "pilot": request.app[CONFIG].pilot,
        "logged_in": bool(session and session.person_id),
        "csrf": _LazyCsrf(request),
        "user": request.get("user"),
        "subject": request.get("subject"),
        "acting": request.get("acting"),
    }
    html = request.app[JINJA].get_template(template).render(**base, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


class _LazyCsrf:
    """The CSRF token, made (with an anonymous session) only when a page has a form."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    def __str__(self) -> str:
        return csrf_token(self.request)

    def __html__(self) -> str:
        return str(self)  # URL-safe base64: nothing to escape


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


# --- who is acting for whom ----------------------------------------------------------------

@dataclass(frozen=True)
class Who:
    user: PersonInfo
    subject: PersonInfo
    actor_type: str  # CITIZEN | GUARDIAN

    @property
    def actor(self) -> dict[str, object]:
        return v.actor(self.user.person_id, self.actor_type)

    @property
    def acting(self) -> bool:
        return self.actor_type == "GUARDIAN"


def may_act_for(backend: Backend, user: PersonInfo, child_pid: str) -> tuple[bool, str]:
    """Whether ``user`` may act for ``child_pid``, and why not (in Swedish)."""
    child = next((c for c in user.children if c.person_id == child_pid), None)
    if child is None:
        return False, "Du är inte registrerad som vårdnadshavare för barnet."
    born = child.birth_date
    today = backend.clock()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age >= GUARDIAN_BELOW_AGE:
        return False, (f"{child.first_name} har fyllt {GUARDIAN_BELOW_AGE} år och väljer "
                       "vårdcentral själv. Som vårdnadshavare kan du inte längre göra det.")
    return True, ""


async def who(request: web.Request) -> Who:
    session: Session = request[SESSION_KEY]
    pid = session.person_id
    if not pid:
        raise web.HTTPSeeOther("/logga-in")
    backend = request.app[BACKEND]
    user = await call(backend.person, pid)
    request["user"] = user
    subject, actor_type = user, "CITIZEN"
    child_pid = session.acting_for
    if child_pid:
        allowed, why = may_act_for(backend, user, child_pid)
        if not allowed:
            session.set("acting_for", None)
            raise PageError(403, "Du kan inte längre agera för barnet", why)
        subject = await call(backend.person, child_pid)
        actor_type = "GUARDIAN"
        request["acting"] = True
    request["subject"] = subject
    return Who(user, subject, actor_type)


class PageError(Exception):
    """Shown as a plain page with a heading and a message."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status, self.heading, self.message = status, heading, message


# --- middleware ------------------------------------------------------------------------------

def _error_page(request: web.Request, status: int, heading: str, message: str,
                reference: str | None = None, technical: bool = False) -> web.Response:
    return render(request, "fel.html", status=status, heading=heading, message=message,
                  reference=reference, technical=technical)


@web.middleware
async def main_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    request[SESSION_KEY] = await call(sessions.load, request)
    try:
        response = await handler(request)
    except CsrfError:
        response = _error_page(request, 403, "Formuläret har gått ut",
                               "Sidan var för gammal eller kom inte från e-tjänsten. Gå "
                               "tillbaka, ladda om sidan och försök igen.")
    except web.HTTPException as exc:
        if exc.status < 400:
            response = exc
        elif exc.status == 404:
            response = _error_page(request, 404, "Sidan finns inte",
                                   "Vi hittar inte sidan du söker. Kontrollera adressen eller "
                                   "gå till Min listning.")
        elif exc.status == 405:
            response = _error_page(request, 405, "Det gick inte att visa sidan",
                                   "Sidan kan inte visas på det sättet.")
        else:
            response = _error_page(request, exc.status, "Det gick inte att visa sidan",
                                   exc.text if exc.text and not exc.text.startswith(
                                       f"{exc.status}:") else "Begäran kunde inte hanteras.")
    except PageError as exc:
        response = _error_page(request, exc.status, exc.heading, exc.message)
    except ResultError as exc:
        info = result_info(exc.code)
        response = render(request, "resultat.html", status=200, code=exc.code, info=info,
                          text=exc.text or info.fallback, reference=exc.correlation_id)
    except PersonNotFound:
        response = _error_page(request, 404, "Vi hittar dig inte i folkbokföringen",
                               "E-tjänsten kan bara användas av den som är folkbokförd i "
                               "Sverige. Kontakta Skatteverket om uppgiften är fel.")
    except ClientError as exc:
        kind = exc.vp_code if isinstance(exc, SoapFault) and exc.vp_code else type(exc).__name__
        log.warning("technical error (%s) in %s, correlation id %s", kind, exc.contract,
                    exc.correlation_id)
        response = _error_page(
            request, 502, "Tekniskt fel",
            "Vi kunde inte få kontakt med regionens system just nu. Försök igen om en stund. "
            "Om felet kvarstår, kontakta 1177 och uppge referensen nedan.",
            reference=exc.correlation_id, technical=True)
    except PopulationApiError as exc:
        reference = str(uuid.uuid4())
        log.warning("population register unavailable (%s), reference %s", exc.status,
                    reference)
        response = _error_page(
            request, 503, "Tekniskt fel",
            "Vi kunde inte hämta dina uppgifter från folkbokföringen just nu. Försök igen om "
            "en stund.", reference=reference, technical=True)
    except Exception:
        reference = str(uuid.uuid4())
        log.exception("unexpected error, reference %s", reference)
        response = _error_page(
            request, 500, "Tekniskt fel",
            "Något gick fel hos oss. Försök igen om en stund. Om felet kvarstår, kontakta 1177 "
            "och uppge referensen nedan.", reference=reference, technical=True)
    await call(sessions.finish, request, response)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


# --- pages -----------------------------------------------------------------------------------

async def start(request: web.Request) -> web.StreamResponse:
    if request[SESSION_KEY].person_id:
        raise web.HTTPSeeOther("/min-listning")
    return render(request, "start.html", logged_out=request.query.get("utloggad") == "1")


async def login_page(request: web.Request) -> web.StreamResponse:
    methods = request.app[AUTHENTICATORS]
    return render(request, "logga_in.html", status=200 if methods else 503, methods=methods)


async def logout(request: web.Request) -> web.StreamResponse:
    check_csrf(request, await request.post())
    request.app[SESSIONS].logout(request[SESSION_KEY])
    return redirect("/?utloggad=1")


async def my_listing(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    mine = await call(request.app[BACKEND].my_listing, w.subject, w.actor)
    return render(request, "min_listning.html", mine=mine)


def _match(unit: UnitView, q: str, municipality: str, region: str) -> bool:
    if q and q.casefold() not in unit.name.casefold() and q.casefold() not in (
            unit.municipality or "").casefold():
        return False
    if municipality and unit.municipality != municipality:
        return False
    return not region or unit.county == region


async def choose_unit(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    q = request.query.get("q", "").strip()[:100]
    municipality = request.query.get("kommun", "").strip()[:60]
    region = request.query.get("region", "").strip()[:2]
    choice = await call(request.app[BACKEND].unit_choice, w.subject.home_county or "")
    units = [u for u in choice.units if _match(u, q, municipality, region)]
    municipalities = sorted({u.municipality for u in choice.units if u.municipality})
    regions = sorted({u.county for u in choice.units})
    return render(request, "valj.html", choice=choice, units=units, q=q,
                  municipality=municipality, region=region, municipalities=municipalities,
                  regions=regions, searched=bool(q or municipality or region))


def _unit_params(data: Any) -> tuple[str, str]:
    county = str(data.get("region", "")).strip()
    unit_id = str(data.get("enhet", "")).strip()
    if not ids.is_county_code(county) or not ids.is_hsa_id(unit_id):
        raise PageError(404, "Vårdcentralen finns inte",
                        "Vi hittar inte vårdcentralen. Välj den på nytt från listan.")
    return county, unit_id


async def _offerable_unit(request: web.Request, w: Who, county: str,
                          unit_id: str) -> UnitView:
    backend = request.app[BACKEND]
    can_list = await call(backend.reach, "CreateListing")
    home = w.subject.home_county
    if home not in can_list:
        raise PageError(409, "Din hemregion är inte ansluten",
                        f"{region_name(home or '')} är ännu inte ansluten till e-tjänsten, så "
                        "du kan inte välja vårdcentral här. Kontakta din region.")
    if county not in can_list:
        raise PageError(409, "Regionen är inte ansluten",
                        f"{region_name(county)} är ännu inte ansluten till e-tjänsten. Välj en "
                        "vårdcentral i en ansluten region.")
    unit = await call(backend.unit, county, unit_id)
    if unit is None:
        raise PageError(404, "Vårdcentralen finns inte",
                        "Vårdcentralen tar inte emot listningar just nu. Välj en annan.")
    return unit


async def confirm_page(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    county, unit_id = _unit_params(request.query)
    unit = await _offerable_unit(request, w, county, unit_id)
    return render(request, "bekrafta.html", unit=unit, cross=county != w.subject.home_county,
                  queue=request.query.get("ko") == "1", consent=False, errors={})


async def confirm_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    check_csrf(request, form)
    w = await who(request)
    county, unit_id = _unit_params(form)
    unit = await _offerable_unit(request, w, county, unit_id)
    cross = county != w.subject.home_county
    queue = form.get("ko") == "ja"
    consent = form.get("samtycke") == "ja"
    if cross and not consent:
        return render(request, "bekrafta.html", status=400, unit=unit, cross=cross, queue=queue,
                      consent=False, errors={"samtycke": (
                          "Du behöver samtycka till att regionerna delar uppgiften om din "
                          "listning för att kunna välja en vårdcentral i en annan region.")})
    action = "queue-join" if queue else "listing"
    return await _change(request, w, county, unit, action,
                         add_to_queue=True if queue else None)


async def _change(request: web.Request, w: Who, county: str, unit: UnitView, action: str, *,
                  doctor: str | None = None, add_to_queue: bool | None = None
                  ) -> web.StreamResponse:
    backend, store = request.app[BACKEND], request.app[STORE]
    common = dict(person_id=w.subject.person_id, actor_id=w.user.person_id,
                  actor_type=w.actor_type, action=action, unit_hsa_id=unit.id,
                  unit_name=unit.name, county=county)
    try:
        r = await call(backend.create_listing, county=county, subject=w.subject, actor=w.actor,
                       unit_id=unit.id, doctor=doctor, add_to_queue=add_to_queue)
    except ClientError as exc:
        await call(store.add_receipt, **common, result_code="TECHNICAL_ERROR",
                   result_text=result_info("TECHNICAL_ERROR").fallback,
                   correlation_id=exc.correlation_id)
        raise
    code = r.result_code or "ERROR"
    text = r.response.resultText or result_info(code).fallback
    receipt = await call(store.add_receipt, **common, result_code=code, result_text=text,
                         correlation_id=r.correlation_id)
    return redirect(f"/kvitton/{receipt.id}")


async def _listed_at(request: web.Request, w: Who, county: str, unit_id: str,
                     *, queued: bool) -> Any:
    mine = await call(request.app[BACKEND].my_listing, w.subject, w.actor)
    for x in (mine.queued if queued else mine.current):
        if x.county == county and ids.same_hsa_id(x.unit_id, unit_id):
            return x
    raise PageError(404, "Listningen finns inte",
                    "Du står inte i kö där." if queued else
                    "Du är inte listad på den vårdcentralen.")


async def doctor_page(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    county, unit_id = _unit_params(request.query)
    listing = await _listed_at(request, w, county, unit_id, queued=False)
    doctors = await call(request.app[BACKEND].personnel, county, unit_id, w.subject)
    return render(request, "lakare.html", listing=listing, doctors=doctors, error=None)


async def doctor_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    check_csrf(request, form)
    w = await who(request)
    county, unit_id = _unit_params(form)
    listing = await _listed_at(request, w, county, unit_id, queued=False)
    doctors = await call(request.app[BACKEND].personnel, county, unit_id, w.subject)
    chosen = str(form.get("lakare", ""))
    if not any(ids.same_hsa_id(d.id, chosen) for d in doctors):
        return render(request, "lakare.html", status=400, listing=listing, doctors=doctors,
                      error="Välj en läkare i listan.")
    unit = UnitView(listing.unit_id, listing.unit_name, county, None, False, None, None, True, ())
    return await _change(request, w, county, unit, "doctor", doctor=chosen)


async def leave_queue(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    check_csrf(request, form)
    w = await who(request)
    county, unit_id = _unit_params(form)
    listing = await _listed_at(request, w, county, unit_id, queued=True)
    unit = UnitView(listing.unit_id, listing.unit_name, county, None, True, None, None, False, ())
    return await _change(request, w, county, unit, "queue-leave", add_to_queue=False)


async def receipts(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    found = await call(request.app[STORE].receipts_for, w.user.person_id)
    return render(request, "kvitton.html", receipts=found)


async def receipt(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    found = await call(request.app[STORE].receipt, request.match_info["rid"])
    if found is None or w.user.person_id not in (found.person_id, found.actor_id):
        raise web.HTTPNotFound()
    return render(request, "kvitto.html", r=found, info=result_info(found.result_code))


def _children(backend: Backend, user: PersonInfo) -> list[dict[str, Any]]:
    out = []
    for c in user.children:
        allowed, why = may_act_for(backend, user, c.person_id)
        out.append({"pid": c.person_id, "name": f"{c.first_name} {c.last_name}",
                    "born": c.birth_date, "allowed": allowed, "why": why})
    return out


async def act_for_page(request: web.Request) -> web.StreamResponse:
    w = await who(request)
    return render(request, "agera.html", children=_children(request.app[BACKEND], w.user),
                  error=None)


async def act_for_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    check_csrf(request, form)
    session: Session = request[SESSION_KEY]
    if form.get("sluta"):
        session.set("acting_for", None)
        return redirect("/min-listning")
    if not session.person_id:
        raise web.HTTPSeeOther("/logga-in")
    backend = request.app[BACKEND]
    user = await call(backend.person, session.person_id)
    request["user"] = user
    child = str(form.get("barn", ""))
    allowed, why = may_act_for(backend, user, child)
    if not allowed:
        return render(request, "agera.html", status=403, children=_children(backend, user),
                      error=why)
    session.set("acting_for", child)
    return redirect("/min-listning")


async def health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok", "pilot": request.app[CONFIG].pilot})


# --- the application -------------------------------------------------------------------------

def make_app(config: EServiceConfig, backend: Backend, *,
             authenticator: Authenticator | None = None) -> web.Application:
    """The e-service. The pilot's test e-ID is mounted only when ``config.pilot`` is true;
    otherwise ``authenticator`` (a real e-ID) is the only way in."""
    store = Store(config.data_dir / "eservice.sqlite")
    app = web.Application(middlewares=[main_middleware], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[BACKEND] = backend
    app[STORE] = store
    app[JINJA] = make_jinja()
    app[SESSIONS] = Sessions(store, config.secure_cookies)
    methods: list[Authenticator] = []
    if config.pilot:
        methods.append(TestEId())
    if authenticator is not None:
        methods.append(authenticator)
    app[AUTHENTICATORS] = methods
    for method in methods:
        app.router.add_routes(method.routes())
    app.router.add_get("/", start)
    app.router.add_get("/logga-in", login_page)
    app.router.add_post("/logga-ut", logout)
    app.router.add_get("/min-listning", my_listing)
    app.router.add_get("/valj-vardcentral", choose_unit)
    app.router.add_get("/valj-vardcentral/bekrafta", confirm_page)
    app.router.add_post("/valj-vardcentral/bekrafta", confirm_submit)
    app.router.add_get("/fast-lakarkontakt", doctor_page)
    app.router.add_post("/fast-lakarkontakt", doctor_submit)
    app.router.add_post("/ko/lamna", leave_queue)
    app.router.add_get("/kvitton", receipts)
    app.router.add_get("/kvitton/{rid}", receipt)
    app.router.add_get("/agera-for", act_for_page)
    app.router.add_post("/agera-for", act_for_submit)
    app.router.add_get("/health", health)
    app.router.add_static("/static", HERE / "static")

    async def purge(_: web.Application) -> None:
        removed = await call(store.purge_sessions)
        log.info("e-service started: %d expired session(s) removed", removed)

    app.on_startup.append(purge)

    async def close(_: web.Application) -> None:
        backend.close()
        store.close()

    app.on_cleanup.append(close)
    return app
