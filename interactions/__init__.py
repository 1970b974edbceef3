"""The service contracts as published, and the code that loads them.

Each ``<Contract>Interaction/`` folder holds a contract's WSDL and Responder XSD exactly as
region integrators receive them; the core components are in the top-level ``schemas/``.

- ``contracts``  — what contracts there are (names, versions, namespaces, soapActions, paths);
- ``xmlload``    — the one place untrusted XML is parsed (hardened settings, size cap);
- ``validation`` — lxml/libxml2 schema validation of envelopes and payloads (the hot path).
"""
