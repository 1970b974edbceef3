"""A region's reports: who is listed at its units, its residents listed elsewhere, and the
monthly settlement between regions — CSV, self-contained HTML with SVG charts, xlsx.

``listning report ...`` (``producers.reports.cli``) and the operator port's ``/reports``
sub-app (``producers.reports.web``) both read the region's database through
``producers.reports.source`` and count with ``producers.reports.data``.
"""
