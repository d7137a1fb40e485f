"""The built-in MTEB adapter (``python -m adapters.mteb``): see :mod:`adapters.mteb.adapter`."""

from adapters.mteb.adapter import MTEBAdapter

__all__ = ["MTEBAdapter"]
