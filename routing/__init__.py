"""The service platform: the catalogue (TAK) and the virtualisation layer (VP)."""
