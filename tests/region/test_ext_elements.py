"""Our extension elements in UpdateListing (producers/ext.py) and the outbox rows that carry
them: what a region sends is what its peer reads, and a peer's odd values are ignored."""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from producers import ext, outbox

EXT = ext.EXT_NS
T1, T2, T3 = (datetime(2026, 11, 26, 10, 0, s) for s in (1, 2, 3))


def _over_the_wire(elements: list[etree._Element]) -> list[etree._Element]:
    holder = etree.Element("any")
    holder.extend(elements)
    return list(etree.fromstring(etree.tostring(holder)))


def test_every_element_reaches_the_peer_as_sent() -> None:
    sent = ext.NotificationMeta("08-abc", T3, T3, "handover", "01", T1)
    names = [etree.QName(e).localname for e in ext.to_elements(sent)]
    assert names == ["messageId", "listingRegisteredTime", "listingEffectiveTime", "purpose",
                     "endedCounty", "standsInForChoiceTime"]
    assert ext.from_elements(_over_the_wire(ext.to_elements(sent))) == sent


def test_a_hand_over_of_a_choice_carries_no_stand_in_time() -> None:
    names = [etree.QName(e).localname for e in
             ext.to_elements(ext.NotificationMeta("08-abc", T2, T2, "handover"))]
    assert "standsInForChoiceTime" not in names


def test_odd_values_from_a_peer_are_ignored() -> None:
    odd = etree.Element(f"{{{EXT}}}standsInForChoiceTime")
    odd.text = "yesterday"
    purpose = etree.Element(f"{{{EXT}}}purpose")
    purpose.text = "handover"
    assert ext.from_elements([odd, purpose]) == ext.NotificationMeta(purpose="handover")


def test_outbox_rows_keep_the_stand_in_time_and_read_rows_written_before_it() -> None:
    n = outbox.Notification("195703219898", "08", "01", None, None, T3, T3, "handover",
                            stands_in_for=T1)
    assert outbox.Notification.from_json(n.to_json()) == n
    older = n.to_json()
    del older["stands_in_for"]  # a row written by the previous release
    assert outbox.Notification.from_json(older).stands_in_for is None
