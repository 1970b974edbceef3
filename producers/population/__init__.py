"""The simulated population register (Skatteverket's Navet, in miniature): a synthetic
population with valid personnummer, guardians and home counties, a change feed (moves, births,
deaths, emigrations) that the regions read, and a read API over HTTP."""

from producers.population.model import Change, Person
from producers.population.register import PopulationRegister, RegisterError

__all__ = ["Change", "Person", "PopulationRegister", "RegisterError"]
