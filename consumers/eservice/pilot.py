"""The pilot's test e-ID: pick one of the population register's test persons.

Mounted only by ``make_app`` when the e-service runs with ``--pilot``; there is no other way
to turn it on. It is an ``Authenticator`` like a real e-ID would be (see ``auth``).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from consumers.eservice.auth import SESSIONS, check_csrf
from interactions import identifiers as ids
from producers.population.test_persons import TEST_PERSONS, TestPerson

START_PATH = "/logga-in/test-e-legitimation"


class TestEId:
    """Log in as a test person (pilot only). Also accepts any other resident of the
    simulated population register by number, for operators testing synthetic persons."""

    label = "Test-e-legitimation (pilot)"
    start_path = START_PATH
    __test__ = False  # not a pytest test class

    def routes(self) -> list[web.RouteDef]:
        return [web.get(START_PATH, self.page), web.post(START_PATH, self.submit)]

    @staticmethod
    def persons() -> tuple[TestPerson, ...]:
        return TEST_PERSONS

    async def page(self, request: web.Request) -> web.StreamResponse:
        from consumers.eservice.app import render

        return render(request, "test_eid.html", persons=self.persons(), error=None, other="")

    async def submit(self, request: web.Request) -> web.StreamResponse:
        from consumers.eservice.app import BACKEND, render
        from consumers.eservice.backend import PersonNotFound

        form = await request.post()
        check_csrf(request, form)
        pid = str(form.get("person", "")).strip()
        other = str(form.get("annat", "")).strip().replace("-", "")
        if pid == "annat" or (not pid and other):
            pid = other
        error = None
        if not pid:
            error = "Välj en testperson."
        elif ids.check_personal_id(pid) is not None:
            error = "Ange ett giltigt personnummer med tolv siffror (ÅÅÅÅMMDDNNNN)."
        else:
            try:
                await asyncio.to_thread(request.app[BACKEND].person, pid)
            except PersonNotFound:
                error = "Personen finns inte i testfolkbokföringen."
        if error:
            return render(request, "test_eid.html", status=400, persons=self.persons(),
                          error=error, other=other)
        return await request.app[SESSIONS].login(request, pid, self.label)
