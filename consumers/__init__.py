"""Clients of the contracts: typed zeep clients, the 1177 e-service, the conformance suite."""
