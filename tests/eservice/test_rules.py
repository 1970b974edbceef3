"""The e-service's own rules, without a stack: a guardian's right ends on the child's 13th
birthday, and units are found by municipality from the unit directory."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

from consumers.eservice.app import may_act_for
from consumers.eservice.backend import SHIPPED_REGIONS_DIR, load_unit_directory
from producers.population.api import PersonRef

TODAY = date(2026, 11, 25)


def _guardian_of(born: date) -> Any:
    child = PersonRef("201311253386", "1.2.752.129.2.1.3.1", "Ella", "Ek", born, "01")
    return SimpleNamespace(children=(child,)), child.person_id


def test_a_guardian_may_act_until_the_day_before_the_13th_birthday() -> None:
    backend: Any = SimpleNamespace(clock=lambda: TODAY)
    user, child = _guardian_of(date(2013, 11, 26))  # 13 tomorrow
    assert may_act_for(backend, user, child) == (True, "")
    user, child = _guardian_of(date(2013, 11, 25))  # 13 today
    allowed, why = may_act_for(backend, user, child)
    assert not allowed
    assert "fyllt 13 år" in why


def test_nobody_acts_for_a_child_not_in_their_custody() -> None:
    backend: Any = SimpleNamespace(clock=lambda: TODAY)
    user, _ = _guardian_of(date(2020, 1, 1))
    allowed, why = may_act_for(backend, user, "201906152416")
    assert not allowed and "inte registrerad som vårdnadshavare" in why


def test_the_unit_directory_knows_each_shipped_units_municipality() -> None:
    directory = load_unit_directory([SHIPPED_REGIONS_DIR])
    assert directory["SE2321000016-01VC"] == "0180"  # Gubbängen, Stockholm
    assert directory["SE2321000073-01HC"] == "0880"  # Kalmar centrum, Kalmar
