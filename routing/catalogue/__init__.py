"""The service catalogue (TAK): routes and permissions, stored, published and served.

- ``models``/``db``/``migrations``: the SQLAlchemy tables, opening a database (migrated to
  head with alembic on every open);
- ``rules``: what may go in (HSA-ids, county codes, URLs, periods and their overlap);
- ``service``: the ``Catalogue`` API the CLI and the pilot use;
- ``tomlfile``: import/export of the whole catalogue as a readable TOML file;
- ``server``/``glabsc``: ``listning tak serve`` — the published snapshot for the platform, and
  the ``GetLogicalAddresseesByServiceContract`` contract;
- ``cli``: ``listning tak ...``.
"""

from __future__ import annotations

# The platform's own HSA-id. Services the platform itself offers (this catalogue's
# GetLogicalAddresseesByServiceContract) are routed with it as logical address, as on NTjP.
PLATFORM_HSA_ID = "SE5565594230-NTJP"

GLABSC_NAMESPACE = (
    "urn:riv:infrastructure:itintegration:registry:GetLogicalAddresseesByServiceContractResponder:2"
)
GLABSC_NAME = "GetLogicalAddresseesByServiceContract"
GLABSC_PATH = "/GetLogicalAddresseesByServiceContract/2/rivtabp21"
