"""The virtualisation layer (VP): routes RIV-TA calls on (contract, logical address).

Read ``pipeline.py`` first: it lists the request path as small processors, top to bottom
(certificate → envelope reader → route → permission → headers → producer). ``server.py``
starts it (``Platform``), ``cli.py`` is ``listning platform serve``.
"""
