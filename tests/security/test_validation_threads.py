"""Schema errors stay with their own message when requests are validated in parallel.

A producer validates requests on several threads with one compiled schema, and a request that
breaks the schema gets a ``Client.SchemaValidationError`` fault quoting libxml2's messages —
which quote the message's own content. libxml2 keeps the messages of a validation in the
schema object's error log, one per schema, not per call: read without care, a caller could be
sent the errors (and so the content) of another caller's request.
"""

from __future__ import annotations

import threading

from lxml import etree

from interactions.contracts import all_contracts
from interactions.validation import validate_element

THREADS = 8
PER_THREAD = 400


def test_each_caller_gets_the_errors_of_its_own_message() -> None:
    ns = all_contracts()["GetListing"].namespace
    mixed: list[str] = []
    missing: list[str] = []

    def caller(k: int) -> None:
        for i in range(PER_THREAD):
            mine = f"caller{k}x{i}y"
            # an element the schema does not allow: libxml2 names it in its message
            element = etree.fromstring(f'<GetListing xmlns="{ns}"><{mine}/></GetListing>')
            text = " ".join(p.message for p in validate_element(element))
            if mine not in text:
                missing.append(text[:120])
            if text.replace(mine, "").count("caller"):
                mixed.append(text[:200])

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not mixed, f"{len(mixed)} answers quoted another caller's message, e.g. {mixed[:2]}"
    assert not missing, f"{len(missing)} answers lacked their own error, e.g. {missing[:2]}"
