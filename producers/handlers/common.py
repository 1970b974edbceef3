"""What the contract handlers share: refusals, responses, input checks, the actor rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from interactions import identifiers as ids
from interactions.models import message_class
from producers.context import CallContext
from producers.storage.models import GuardianConsent
from producers.texts import text

if TYPE_CHECKING:
    from producers.region import Region

T = TypeVar("T")
CHANGE_ACTORS = ("CITIZEN", "GUARDIAN")


class Refusal(Exception):
    """The request is answered with an error result. With ``keep`` the transaction's changes
    are committed all the same (a guardian's consent waiting for the other guardian)."""

    def __init__(self, code: str, message: str, *, keep: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.keep = keep


def response(contract: str, code: str = "OK", message: str | None = None, **fields: Any) -> Any:
    return message_class(f"{contract}Response")(resultCode=code, resultText=message, **fields)


def run(region: Region, ctx: CallContext, contract: str, action: str, request: Any,
        person_id: str | None, body: Callable[[Session], T]) -> T | Any:
    """Run ``body`` in one transaction and log the access in it; a ``Refusal`` becomes an error
    response (its changes rolled back unless ``keep``) and is logged too."""
    actor = getattr(request, "actor", None)
    try:
        with region.db.transaction() as s:
            try:
                result = body(s)
            except Refusal as r:
                if not r.keep:
                    raise
                region.log_access(s, ctx, contract, action, person_id, actor, r.code)
                return response(contract, r.code, r.message)
            code = getattr(result, "resultCode", None) or getattr(
                getattr(result, "response", None), "resultCode", "OK")
            region.log_access(s, ctx, contract, action, person_id, actor, str(code))
            return result
    except Refusal as r:
        with region.db.transaction() as s:
            region.log_access(s, ctx, contract, action, person_id, actor, r.code)
        return response(contract, r.code, r.message)


# --- input ---------------------------------------------------------------------------------------

def person_id(ii: Any) -> str:
    """The 12-digit id of an IIType person, or a Refusal."""
    ext, root = getattr(ii, "extension", None), getattr(ii, "root", None)
    if ids.check_personal_id(ext, root) is not None:
        raise Refusal("ERROR", text("invalid_person"))
    return str(ext)


def peek_person_id(ii: Any) -> str | None:
    """The id for the access log, if it is a valid one (never log garbage as a person)."""
    ext, root = getattr(ii, "extension", None), getattr(ii, "root", None)
    return str(ext) if ids.check_personal_id(ext, root) is None else None


def county_code(ii: Any) -> str:
    if ii is None or ids.check_county(getattr(ii, "root", None),
                                      getattr(ii, "extension", None)) is not None:
        raise Refusal("ERROR", text("invalid_county"))
    return str(ii.extension)


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# --- who may act for whom ---------------------------------------------------------------

def check_actor(region: Region, s: Session, actor: Any, pid: str, ctx: CallContext, *,
                change: bool) -> None:
    """The region's rules on who may read or change a resident's listing.

    A change needs a CITIZEN acting for themselves (from the region's age) or a GUARDIAN of a
    child (below the region's age); reads by regions, caregivers and advisers are allowed and
    logged."""
    actor_type = getattr(actor, "actorType", None)
    actor_id = getattr(getattr(actor, "actorId", None), "extension", None)
    if actor_type is None:
        raise Refusal("ERROR", text("invalid_actor"))
    if actor_type not in CHANGE_ACTORS:
        if change:
            raise Refusal("ERROR", text("actor_not_allowed"))
        return
    if ids.check_personal_id(actor_id, getattr(actor.actorId, "root", None)) is not None:
        raise Refusal("ERROR", text("invalid_actor"))
    rules = region.config.rules
    age = age_on(region.birth_date(s, pid), ctx.now.date())
    if actor_type == "CITIZEN":
        if actor_id != pid:
            raise Refusal("ERROR", text("actor_not_self" if change else "read_not_self"))
        if change and age < rules.citizen_may_act_from_age:
            raise Refusal("ERROR_AGE_LIMIT",
                          text("age_limit_citizen", age=rules.citizen_may_act_from_age))
        return
    # GUARDIAN
    if change and age >= rules.guardian_may_act_below_age:
        raise Refusal("ERROR_AGE_LIMIT",
                      text("age_limit_guardian", age=rules.guardian_may_act_below_age))
    guardians = region.guardians_of(pid)
    if guardians is None:
        raise Refusal("ERROR", text("guardians_unknown"))
    if actor_id not in guardians:
        raise Refusal("ERROR", text("not_guardian"))


def check_guardian_consent(region: Region, s: Session, actor: Any, pid: str, unit_hsa_id: str,
                           ctx: CallContext) -> None:
    """When the region requires both guardians' consent, the first guardian's choice is kept
    and answered with ERROR_GUARDIAN_CONSENT_NEEDED; the other guardian's same choice (within
    the validity period) completes it."""
    rules = region.config.rules
    if getattr(actor, "actorType", None) != "GUARDIAN" or not rules.both_guardians_must_consent:
        return
    guardians = region.guardians_of(pid) or []
    if len(guardians) < 2:
        return
    actor_id = actor.actorId.extension
    oldest = ctx.now - timedelta(days=rules.guardian_consent_valid_days)
    s.execute(delete(GuardianConsent).where(GuardianConsent.child_id == pid,
                                            GuardianConsent.given_at < oldest))
    given = {c.guardian_id for c in s.execute(select(GuardianConsent).where(
        GuardianConsent.child_id == pid, GuardianConsent.unit_hsa_id == unit_hsa_id)).scalars()}
    given.add(actor_id)
    if all(g in given for g in guardians):
        s.execute(delete(GuardianConsent).where(GuardianConsent.child_id == pid))
        return
    s.execute(delete(GuardianConsent).where(GuardianConsent.child_id == pid,
                                            GuardianConsent.guardian_id == actor_id))
    s.add(GuardianConsent(child_id=pid, guardian_id=actor_id, unit_hsa_id=unit_hsa_id,
                          given_at=ctx.now))
    raise Refusal("ERROR_GUARDIAN_CONSENT_NEEDED",
                  text("guardian_consent", days=rules.guardian_consent_valid_days), keep=True)
