"""Every resultText a region's listing system sends, in Swedish, written for a resident.

One place, so that wording is consistent and reviewable; ``text(key, **values)`` fills in the
placeholders. Texts never contain a personal identity number.
"""

from __future__ import annotations

TEXTS: dict[str, str] = {
    # input that cannot be used
    "invalid_person": "Personnumret är inte giltigt. Ange tolv siffror (ÅÅÅÅMMDDNNNN) utan "
                      "bindestreck.",
    "invalid_actor": "Uppgiften om vem som gör valet är inte giltig.",
    "invalid_county": "Länskoden är inte giltig.",
    "invalid_listing_type": "Listningstypen är inte giltig.",
    "actor_not_allowed": "Bara du själv, eller din vårdnadshavare om du är barn, kan välja "
                         "vårdcentral.",
    "actor_not_self": "Du kan bara välja vårdcentral för dig själv. För ett barn väljer "
                      "vårdnadshavaren.",
    "read_not_self": "Du kan bara se dina egna uppgifter, eller dina barns om du är "
                     "vårdnadshavare.",
    "not_guardian": "Du är inte registrerad som vårdnadshavare för barnet.",
    "guardians_unknown": "Vi kan inte kontrollera vårdnaden just nu. Försök igen senare.",
    "unknown_unit": "Vårdcentralen finns inte i {region}.",
    "unit_closed": "Vårdcentralen har stängt och tar inte emot nya listningar.",
    "wrong_listing_county": "Vårdcentralen hör till {region}, inte till det län som angavs.",
    "home_county_needed": "Du är folkbokförd i en annan region. Hemlän måste anges när du "
                          "väljer en vårdcentral utanför din hemregion.",
    "person_unknown": "Vi hittar dig inte bland de folkbokförda i {region}. Ange ditt hemlän.",
    "type_not_offered": "Vårdcentralen erbjuder inte listningstypen {type}.",
    "type_not_shared": "Listningstypen {type} erbjuds bara dem som är folkbokförda i {region}.",
    "no_fixed_doctor": "Vårdcentralen erbjuder inte val av fast läkarkontakt.",
    "unknown_doctor": "Den valda läkaren finns inte på vårdcentralen.",
    # rules
    "age_limit_citizen": "Du behöver ha fyllt {age} år för att välja vårdcentral själv. Din "
                         "vårdnadshavare kan välja åt dig.",
    "age_limit_guardian": "En vårdnadshavare kan välja vårdcentral för barn under {age} år. "
                          "Från {age} år väljer barnet själv.",
    "guardian_consent": "Båda vårdnadshavarna behöver välja samma vårdcentral för barnet. Valet "
                        "är sparat; den andra vårdnadshavaren behöver göra samma val inom "
                        "{days} dagar.",
    "annual_limit": "Du har redan bytt vårdcentral {limit} gånger under de senaste tolv "
                    "månaderna, vilket är det högsta antalet byten. Du kan byta igen från "
                    "{next_date}.",
    "annual_limit_home": "Du har redan bytt vårdcentral det högsta antalet gånger under de "
                         "senaste tolv månaderna.",
    "unit_full": "Vårdcentralen har inte plats för fler listade just nu. Du kan ställa dig i kö.",
    "unit_full_no_queue": "Vårdcentralen har inte plats för fler listade och har ingen kö. "
                          "Välj en annan vårdcentral.",
    # done
    "listed": "Du är nu listad på {unit} från och med {date}.",
    "unchanged": "Du är redan listad på {unit}.",
    "doctor_changed": "Din fasta läkarkontakt på {unit} är ändrad.",
    "queued": "Vårdcentralen är full. Du står nu i kö till {unit} på plats {position}. Du är "
              "listad där du är nu tills en plats blir ledig.",
    "already_queued": "Du står redan i kö till {unit} på plats {position}.",
    "left_queue": "Du har lämnat kön till {unit}. Din listning är oförändrad.",
    "home_pending": "Du är listad på {unit} från och med {date}. Din hemregion har ännu inte "
                    "bekräftat bytet; du får besked om något behöver ändras.",
    # cross-region
    "home_unreachable": "Vi kan inte nå din hemregion just nu, så bytet kunde inte göras. "
                        "Försök igen senare.",
    "home_refused": "Din hemregion godkände inte bytet. Du är kvar på din tidigare vårdcentral.",
    "stale_ignored": "Uppgiften är äldre än den listning regionen redan känner till och har "
                     "inte ändrat något.",
    "moved_away": "Personen är inte längre folkbokförd i {region}; uppgiften har skickats "
                  "vidare till den nya hemregionen.",
    "not_home_any_more": "Personen är inte längre folkbokförd i {region}; uppgiften har inte "
                         "ändrat något här.",
    "not_for_this_region": "Meddelandet gäller inte en person som är folkbokförd eller listad i "
                           "{region}.",
}


def text(key: str, **values: object) -> str:
    """The resident-facing text for ``key`` with its placeholders filled in."""
    return TEXTS[key].format(**values)
