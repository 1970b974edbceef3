"""The e-service's main journeys in a real browser (headless Debian Chromium), against a
running stack; axe-core checks every page on the way (WCAG 2.1 A/AA)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from browser_support import check_a11y, login, main_text, shot, tab_to
from conftest import EService, start_eservice, stop_process
from sqlalchemy import select

from listning.supervisor import free_port
from producers.config import shipped_config
from producers.population.model import PersonRow
from producers.population.test_persons import CHILD, KALMAR_RESIDENT, SAMORDNING, TOLVAN

pytestmark = pytest.mark.browser

S01 = shipped_config("01")
S08 = shipped_config("08")
GUBBANGEN = S01.units[0]  # Vårdcentralen Gubbängen
SODERMALM = S01.units[1]  # Husläkarmottagningen Södermalm, cap 3
KALMAR_C = S08.units[0]  # Hälsocentralen Kalmar centrum
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def confirm_url(county: str, unit: Any, queue: bool = False) -> str:
    return (f"/valj-vardcentral/bekrafta?region={county}&enhet={unit.hsa_id}"
            + ("&ko=1" if queue else ""))


def creates(eservice: EService) -> int:
    """CreateListing calls the e-service has made (it logs each one, without the person)."""
    return eservice.log_text().count("CreateListing @")


def test_cross_region_listing_with_consent(page: Any, stack: Any) -> None:
    page.goto("/")
    check_a11y(page)
    shot(page, "01-start")
    page.get_by_role("link", name="Logga in").click()
    check_a11y(page)
    page.get_by_role("link", name=re.compile("Test-e-legitimation")).click()
    check_a11y(page)
    shot(page, "02-test-e-legitimation")
    page.get_by_label(re.compile("Tolvan Tolvansson")).check()
    page.get_by_role("button", name="Logga in").click()

    page.wait_for_url("**/min-listning")
    assert page.get_by_role("heading", level=1).inner_text() == "Min listning"
    assert "Folkbokförd i Region Stockholm" in main_text(page)
    assert "inte listad på någon vårdcentral" in main_text(page)
    check_a11y(page)

    page.get_by_role("navigation", name="Huvudmeny").get_by_role(
        "link", name="Välj vårdcentral").click()
    check_a11y(page)
    assert "Region Kalmar län" in main_text(page)
    # search by municipality with the GET form
    page.get_by_label("Kommun").select_option("Kalmar")
    page.get_by_role("button", name="Sök").click()
    assert "kommun=Kalmar" in page.url
    results = page.locator(".unit-list > li")
    assert results.count() >= 1
    for i in range(results.count()):
        assert "Kalmar" in results.nth(i).inner_text()
    assert "Vårdcentralen Gubbängen" not in main_text(page)
    check_a11y(page)
    shot(page, "03-valj-vardcentral")
    # and by name
    page.get_by_label("Namn eller ort").fill("kalmar centrum")
    page.get_by_label("Kommun").select_option("")
    page.get_by_role("button", name="Sök").click()
    assert page.locator(".unit-list > li").count() == 1
    page.get_by_role("link", name=f"Välj {KALMAR_C.name}").click()

    assert page.get_by_role("heading", level=1).inner_text() == "Bekräfta val av vårdcentral"
    text = main_text(page)
    assert "ligger i en annan region" in text
    assert "vårdgarantin kan ändras" in text
    check_a11y(page)
    shot(page, "04-bekrafta-annan-region")
    page.get_by_label(re.compile("Jag samtycker")).check()
    page.get_by_role("button", name="Bekräfta val").click()

    page.wait_for_url(re.compile(r"/kvitton/"))
    assert page.get_by_role("heading", level=1).inner_text() == "Klart"
    receipt = main_text(page)
    assert f"Du är nu listad på {KALMAR_C.name}" in receipt
    assert "Region Kalmar län" in receipt
    assert UUID.search(receipt), "the receipt quotes the correlation id"
    check_a11y(page)
    shot(page, "05-kvitto")

    page.get_by_role("link", name="Till Min listning").click()
    card = page.locator("section.card", has_text=KALMAR_C.name)
    assert "Region Kalmar län" in card.inner_text()
    assert "Primärvårdslistning" in card.inner_text()
    # Kalmar's listings take effect the next day: the page says from when
    assert re.search(r"Listad (sedan|från och med)\s+\d+ \w+ 20\d\d", card.inner_text())
    assert "Ingen vald" in card.inner_text()

    check_a11y(page)
    shot(page, "07-min-listning")

    page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Kvitton").click()
    rows = page.locator("tbody tr")
    assert rows.count() == 1
    assert "Val av vårdcentral" in rows.nth(0).inner_text()
    assert KALMAR_C.name in rows.nth(0).inner_text()
    assert "Region Kalmar län" in rows.nth(0).inner_text()
    assert UUID.search(rows.nth(0).inner_text())
    check_a11y(page)
    shot(page, "08-kvitton")


def test_cross_region_choice_without_consent_is_refused(page: Any, eservice: EService) -> None:
    login(page, KALMAR_RESIDENT.first_name)
    before = creates(eservice)
    page.goto(confirm_url("01", GUBBANGEN))
    assert "ligger i en annan region" in main_text(page)
    page.get_by_role("button", name="Bekräfta val").click()

    alert = page.get_by_role("alert")
    assert "Valet är inte genomfört" in alert.inner_text()
    assert "samtycka" in alert.inner_text()
    assert page.get_by_label(re.compile("Jag samtycker")).get_attribute("aria-invalid") == "true"
    assert page.title().startswith("Fel:")
    check_a11y(page)
    shot(page, "09-samtycke-saknas")
    assert creates(eservice) == before, "nothing was sent without consent"
    page.goto("/min-listning")
    assert GUBBANGEN.name not in main_text(page)


def test_result_code_is_shown_as_a_clear_message(page: Any, stack: Any) -> None:
    """The home region's change limit (two a year): the third change is refused with
    ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED, shown with its heading and the region's text."""
    login(page, SAMORDNING.first_name)
    units = S01.units[2:6]
    for unit in units[:3]:  # the first listing and two changes
        page.goto(confirm_url("01", unit))
        page.get_by_role("button", name="Bekräfta val").click()
        page.wait_for_url(re.compile(r"/kvitton/"))
        assert page.get_by_role("heading", level=1).inner_text() == "Klart"
    page.goto(confirm_url("01", units[3]))
    page.get_by_role("button", name="Bekräfta val").click()
    page.wait_for_url(re.compile(r"/kvitton/"))
    assert (page.get_by_role("heading", level=1).inner_text()
            == "Du har bytt vårdcentral för många gånger")
    text = main_text(page)
    assert "tolv månaderna" in text  # the region's own resultText
    assert "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED" in text
    check_a11y(page)
    shot(page, "10-resultat-fel")
    page.goto("/min-listning")
    assert units[2].name in main_text(page)  # still listed at the last accepted unit
    assert units[3].name not in main_text(page)
    assert re.search(r"Byten kvar de senaste tolv månaderna:\s+0", main_text(page))


def _adults(stack: Any, county: str, n: int) -> list[str]:
    with stack.register.engine.connect() as conn:
        rows = conn.execute(select(PersonRow.person_id).where(
            PersonRow.county == county, PersonRow.birth_date < "1990-01-01")
            .order_by(PersonRow.person_id)).scalars().all()
    return [r for r in rows if r not in {TOLVAN.person_id}][:n]


def test_join_and_leave_a_queue(page: Any, stack: Any) -> None:
    stack.fill_unit("01", SODERMALM.hsa_id, _adults(stack, "01", SODERMALM.cap))
    login(page, "Sara Lindberg")
    page.goto("/valj-vardcentral?q=S%C3%B6dermalm")
    card = page.locator(".unit-list > li", has_text=SODERMALM.name)
    card.get_by_role("link", name=re.compile("Välj")).click()
    # The list may be up to a minute old (the e-service keeps each region's units: an earlier
    # test read 01 before the unit filled); the confirm page reads the unit again.
    facts = page.locator("section.card", has_text=SODERMALM.name).inner_text()
    assert "Full, kö finns" in facts or "i kö" in facts
    queue_box = page.get_by_label("Ställ mig i kö om vårdcentralen är full")
    queue_box.check()
    page.get_by_role("button", name="Bekräfta val").click()
    page.wait_for_url(re.compile(r"/kvitton/"))
    assert "kö" in main_text(page)
    assert page.get_by_role("heading", level=1).inner_text() == "Klart"

    page.goto("/min-listning")
    queue = page.locator("section.card", has_text=f"I kö till {SODERMALM.name}")
    assert "Plats i kön" in queue.inner_text()
    assert re.search(r"Plats i kön\s+1", queue.inner_text())
    assert "Beräknad väntetid" in queue.inner_text()
    check_a11y(page)
    queue.get_by_role("button", name=re.compile("Lämna kön")).click()
    page.wait_for_url(re.compile(r"/kvitton/"))
    assert "lämnat kön" in main_text(page)
    page.goto("/min-listning")
    assert f"I kö till {SODERMALM.name}" not in main_text(page)


def test_guardian_acts_for_a_child_under_13_but_not_for_a_teenager(page: Any,
                                                                   stack: Any) -> None:
    login(page, "Sara Lindberg")
    page.get_by_role("navigation", name="Huvudmeny").get_by_role(
        "link", name="Agera för barn").click()
    check_a11y(page)
    shot(page, "11-agera-for-barn")
    teen = page.locator("li.card", has_text="har fyllt 13 år")
    assert teen.count() == 1
    assert teen.get_by_role("button").count() == 0, "no way to act for a 13-year-old"

    # a forged form for the teenager is refused
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post("/agera-for", form={"csrf": csrf, "barn": stack.teen_id})
    assert refused.status == 403
    assert "har fyllt 13 år" in refused.text()

    page.get_by_role("button", name=f"Agera för {CHILD.first_name} {CHILD.last_name}").click()
    page.wait_for_url("**/min-listning")
    banner = page.get_by_role("region", name="Du agerar för ett barn")
    assert f"{CHILD.first_name} {CHILD.last_name}" in banner.inner_text()
    assert (page.get_by_role("heading", level=1).inner_text()
            == f"Listning för {CHILD.first_name} {CHILD.last_name}")
    check_a11y(page)

    page.goto(confirm_url("01", GUBBANGEN))
    page.get_by_role("button", name="Bekräfta val").click()
    page.wait_for_url(re.compile(r"/kvitton/"))
    assert page.get_by_role("heading", level=1).inner_text() == "Klart"
    page.goto("/min-listning")
    card = page.locator("section.card", has_text=GUBBANGEN.name)
    assert "Ingen vald" in card.inner_text()

    # choose, then change, the child's fixed doctor contact at the unit
    for doctor in (GUBBANGEN.staff[1], GUBBANGEN.staff[2]):
        card.get_by_role("link", name=re.compile("fast läkarkontakt")).click()
        check_a11y(page)
        page.get_by_label(re.compile(doctor.name)).check()
        shot(page, "06-fast-lakarkontakt")
        page.get_by_role("button", name="Spara fast läkarkontakt").click()
        page.wait_for_url(re.compile(r"/kvitton/"))
        assert page.get_by_role("heading", level=1).inner_text() == "Klart"
        page.get_by_role("link", name="Till Min listning").click()
        card = page.locator("section.card", has_text=GUBBANGEN.name)
        assert f"{doctor.name}, {doctor.title}" in card.inner_text()
    page.goto("/kvitton")
    rows = page.locator("tbody tr")
    assert "Val av fast läkarkontakt" in rows.first.inner_text()
    assert "Ditt barn" in rows.first.inner_text()

    page.get_by_role("button", name="Sluta agera för barnet").click()
    page.wait_for_url("**/min-listning")
    assert page.get_by_role("heading", level=1).inner_text() == "Min listning"
    assert GUBBANGEN.name not in main_text(page)  # Sara's own listing, not Nils's


def test_keyboard_only_listing(page: Any, stack: Any) -> None:
    page.goto("/logga-in")
    f = tab_to(page, "Hoppa till innehållet")
    assert f["tag"] == "A"
    tab_to(page, "Test-e-legitimation")
    page.keyboard.press("Enter")
    page.wait_for_url("**/test-e-legitimation")
    tab_to(page, TOLVAN.first_name)  # the radio group
    for _ in range(10):
        if KALMAR_RESIDENT.first_name in (page.evaluate(
                "() => document.activeElement.labels[0].innerText")):
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    tab_to(page, "^Logga in$")
    page.keyboard.press("Enter")
    page.wait_for_url("**/min-listning")

    tab_to(page, "^Välj vårdcentral$")
    page.keyboard.press("Enter")
    page.wait_for_url("**/valj-vardcentral")
    farsta = next(u for u in S01.units if u.name == "Vårdcentralen Farsta")
    tab_to(page, rf"^Välj\s+{farsta.name}$")  # a unit in another region than Karin's
    page.keyboard.press("Enter")
    page.wait_for_url("**/bekrafta*")
    tab_to(page, "Jag samtycker")
    page.keyboard.press("Space")
    assert page.get_by_label(re.compile("Jag samtycker")).is_checked()
    tab_to(page, "Bekräfta val")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/kvitton/"))
    assert page.get_by_role("heading", level=1).inner_text() == "Klart"
    assert f"Du är nu listad på {farsta.name}" in main_text(page)


def test_a_region_failing_is_a_polite_page_with_a_reference(
        browser: Any, harness: Any, harness_eservice: EService) -> None:
    """The platform answers VP009 for county 08 (the harness breaks it on demand)."""
    context = browser.new_context(base_url=harness_eservice.url, bypass_csp=True)
    harness.platform.broken.add("08")
    try:
        page = context.new_page()
        login(page, TOLVAN.first_name)
        page.goto("/valj-vardcentral")
        assert "Region Kalmar län kunde inte hämtas just nu" in main_text(page)
        assert UUID.search(main_text(page))
        assert "Region Stockholm" in main_text(page)  # the other region's units still shown
        response = page.goto(confirm_url("08", KALMAR_C))
        assert response is not None and response.status == 502
        assert page.get_by_role("heading", level=1).inner_text() == "Tekniskt fel"
        text = main_text(page)
        assert "Försök igen om en stund" in text
        assert UUID.search(text), "the page gives the correlation id as a reference"
        assert "Traceback" not in page.content() and "VP009" not in page.content()
        check_a11y(page)
        shot(page, "12-tekniskt-fel")
    finally:
        harness.platform.broken.discard("08")
        context.close()


def test_platform_unreachable_is_a_polite_page_with_a_reference(
        browser: Any, stack: Any, tmp_path: Path) -> None:
    """An e-service whose platform does not answer (TransportError)."""
    port = free_port()
    argv = stack.eservice_argv(port, tmp_path / "data")
    dead = f"https://127.0.0.1:{free_port()}"
    argv[argv.index("--platform-url") + 1] = dead
    es = start_eservice(argv, tmp_path / "eservice.log", port, tmp_path / "data")
    context = browser.new_context(base_url=es.url, bypass_csp=True)
    try:
        page = context.new_page()
        login_as = TOLVAN.first_name
        page.goto("/logga-in/test-e-legitimation")
        page.get_by_label(re.compile(login_as)).check()
        page.get_by_role("button", name="Logga in").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Tekniskt fel"
        text = main_text(page)
        assert "Vi kunde inte få kontakt med regionens system" in text
        reference = UUID.search(text)
        assert reference, "the page gives the correlation id as a reference"
        assert reference.group(0) in es.log_text(), "support finds the reference in the log"
        assert "Traceback" not in page.content() and "requests" not in page.content()
        check_a11y(page)
    finally:
        context.close()
        stop_process(es.proc)


def test_home_region_not_connected_says_so_plainly(page: Any, stack: Any) -> None:
    with stack.register.engine.connect() as conn:
        uppsala = conn.execute(select(PersonRow.person_id).where(
            PersonRow.county == "03", PersonRow.birth_date < "1990-01-01")
            .order_by(PersonRow.person_id)).scalars().first()
    login(page, "", other=uppsala)
    assert "Region Uppsala är ännu inte ansluten" in main_text(page)
    page.goto("/valj-vardcentral")
    text = main_text(page)
    assert "Din hemregion är inte ansluten" in text
    assert "Region Uppsala är inte ansluten till e-tjänsten" in text
    assert page.locator("main").get_by_role("link", name=re.compile(r"^Välj\s")).count() == 0
    check_a11y(page)
    page.goto(confirm_url("01", GUBBANGEN))
    assert "Din hemregion är inte ansluten" in main_text(page)


def test_home_region_readable_but_not_connected_for_listing_shows_only_its_units(
        browser: Any, harness: Any, tmp_path: Path) -> None:
    """The catalogue lets the e-service read units in 01 and 08 but list only in 08: a
    Stockholm resident sees only Stockholm's units, with no way to choose, and is told why."""
    harness.platform.permitted["CreateListing"] = ["08"]
    port = free_port()
    es = start_eservice(harness.eservice_argv(port, tmp_path / "data"), tmp_path / "es.log",
                        port, tmp_path / "data")
    context = browser.new_context(base_url=es.url, bypass_csp=True)
    try:
        page = context.new_page()
        login(page, TOLVAN.first_name)
        page.goto("/valj-vardcentral")
        text = main_text(page)
        assert "Din hemregion är inte ansluten för listning" in text
        assert "bara vårdcentralerna i din hemregion" in text
        assert GUBBANGEN.name in text
        assert KALMAR_C.name not in text
        assert page.locator("main").get_by_role("link", name=re.compile(r"^Välj\s")).count() == 0
        check_a11y(page)
        page.goto(confirm_url("08", KALMAR_C))
        assert "Din hemregion är inte ansluten" in main_text(page)
    finally:
        harness.platform.permitted.pop("CreateListing", None)
        context.close()
        stop_process(es.proc)


def test_not_found_page_and_logout(page: Any) -> None:
    response = page.goto("/finns-inte")
    assert response is not None and response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Sidan finns inte"
    check_a11y(page)
    login(page, TOLVAN.first_name)
    page.get_by_role("button", name="Logga ut").click()
    assert "Du är utloggad" in main_text(page)
    page.goto("/min-listning")
    assert page.url.endswith("/logga-in")


def test_the_accessibility_check_does_catch_violations(browser: Any) -> None:
    """The axe-core check used above is not vacuous: a page without lang, alt or labels
    fails it."""
    context = browser.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.set_content("<html><head><title>x</title></head><body><img src='a.png'>"
                         "<input type='text'></body></html>")
        with pytest.raises(AssertionError, match=r"html-has-lang|image-alt|label"):
            check_a11y(page)
    finally:
        context.close()
