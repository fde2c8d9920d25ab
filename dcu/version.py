"""dcu's version, in a module of its own so that any module can record it (checkpoints do)
without importing the package root."""

__version__ = "0.1.0"
