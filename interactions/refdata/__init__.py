"""Reference data shipped with the package: the 21 counties/regions and the 290 municipalities.

Copied from the project's shared reference data so that an installed ``listning`` needs nothing
outside its own package. Read it through ``interactions.identifiers``.
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent
