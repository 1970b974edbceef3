"""Core components of the service domain (domain schemas, registry, monitoring).

A package only so that the XSDs ship with an install; ``DIR`` is where they are.
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent
