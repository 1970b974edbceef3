"""One module per contract; each exposes ``handle(region, request, ctx) -> response``."""
