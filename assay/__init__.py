"""Assay: an event-driven evaluation hub for AI models that speaks the EvalHub REST API v1."""

# The single source of the version: pyproject.toml reads it from here (hatch's version source), and every
# process knows it without importing importlib.metadata and searching the installed distributions.
__version__ = "0.1.0"

__all__ = ["__version__"]
