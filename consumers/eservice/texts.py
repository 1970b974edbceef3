"""Swedish headings and explanations for every ``resultCode`` the contracts define.

The region's own ``resultText`` (written for residents, in Swedish) is always shown under the
heading; the heading tells at a glance what happened.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResultInfo:
    heading: str
    done: bool
    fallback: str  # shown when the region sent no resultText


RESULTS: dict[str, ResultInfo] = {
    "OK": ResultInfo("Klart", True, "Ändringen är genomförd."),
    "INFO": ResultInfo("Klart – läs meddelandet", True,
                       "Ändringen är genomförd. Regionen har ett meddelande till dig."),
    "ERROR": ResultInfo("Det gick inte att genomföra ändringen", False,
                        "Regionen kunde inte genomföra ändringen."),
    "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED": ResultInfo(
        "Du har bytt vårdcentral för många gånger", False,
        "Du har redan bytt vårdcentral det högsta antalet gånger under de senaste tolv "
        "månaderna."),
    "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT": ResultInfo(
        "Vårdcentralen är full", False,
        "Vårdcentralen tar inte emot fler listade just nu."),
    "ERROR_GUARDIAN_CONSENT_NEEDED": ResultInfo(
        "Den andra vårdnadshavaren behöver också godkänna", False,
        "Båda vårdnadshavarna behöver göra samma val."),
    "ERROR_AGE_LIMIT": ResultInfo(
        "Åldersgränsen hindrar ändringen", False,
        "Ändringen kan inte göras på grund av åldersgränsen."),
    "TECHNICAL_ERROR": ResultInfo(
        "Tekniskt fel – vi vet inte om ändringen genomfördes", False,
        "Regionens system svarade inte som väntat. Kontrollera Min listning innan du försöker "
        "igen."),
}

ACTIONS: dict[str, str] = {
    "listing": "Val av vårdcentral",
    "doctor": "Val av fast läkarkontakt",
    "queue-join": "Ställa sig i kö",
    "queue-leave": "Lämna kö",
}


def result_info(code: str) -> ResultInfo:
    return RESULTS.get(code, RESULTS["ERROR"])


MONTHS = ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
          "september", "oktober", "november", "december")
