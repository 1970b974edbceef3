"""The 1177 e-service for residents: Min listning, Välj vårdcentral, fast läkarkontakt, köer,
vårdnadshavare som agerar för barn, and Kvitton.

A server-rendered aiohttp + Jinja2 application (works without JavaScript). Every call to a
region goes through the service platform with ``consumers.client.ListingClient``; the resident's
home county comes from the population register; which regions can be reached comes from the
catalogue (``GetLogicalAddresseesByServiceContract``).

- ``app``: the web application (pages, middlewares, security headers);
- ``auth``: the ``Authenticator`` interface, the pilot's test e-ID, sessions and CSRF;
- ``backend``: the calls behind the pages (platform, catalogue, population register);
- ``store``: the e-service's own SQLite database (sessions and receipts);
- ``texts``: Swedish headings for every ``resultCode``.
"""
