"""The conformance suite for region producers of carelisting 2.1, and a mock producer."""
