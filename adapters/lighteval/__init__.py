"""The built-in LightEval adapter (``python -m adapters.lighteval``): see :mod:`adapters.lighteval.adapter`."""

from adapters.lighteval.adapter import LightEvalAdapter

__all__ = ["LightEvalAdapter"]
