"""Prometheus metrics of one platform instance (its own registry: several may run in-process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from interactions.contracts import all_contracts

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def contract_label(namespace: str | None) -> str:
    """The contract's name for known namespaces; one bucket for the rest (bounded labels)."""
    if not namespace:
        return "none"
    return _NAMES.get(namespace.casefold(), "other")


_NAMES = {c.namespace.casefold(): c.name for c in all_contracts().values()}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("vp_calls", "Calls by contract and outcome (ok, producer-fault or "
                             "a VP code)", ["contract", "outcome"], registry=self.registry)
        self.duration = Histogram("vp_call_duration_seconds", "Time from request in to response "
                                  "out", ["contract"], buckets=_BUCKETS, registry=self.registry)
        self.producer = Histogram("vp_producer_duration_seconds", "Producer round trip",
                                  ["contract"], buckets=_BUCKETS, registry=self.registry)
        self._children: dict[tuple[str, str], tuple] = {}  # labels() lookups are not free
        self.snapshot_age = Gauge("vp_snapshot_loaded_timestamp_seconds",
                                  "When the current snapshot was loaded", registry=self.registry)

    def record(self, contract: str, outcome: str, seconds: float,
               producer_seconds: float | None) -> None:
        children = self._children.get((contract, outcome))
        if children is None:
            children = (self.calls.labels(contract, outcome), self.duration.labels(contract),
                        self.producer.labels(contract))
            self._children[(contract, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)
        if producer_seconds is not None:
            children[2].observe(producer_seconds)
