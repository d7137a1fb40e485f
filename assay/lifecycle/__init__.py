"""The evaluation lifecycle: submit, record progress, dispatch, aggregate, sweep; over store, events
and runtimes. The functions and the HTTP routes are thin shells over this package."""

from assay.lifecycle import handlers, jobs, progress
from assay.lifecycle.hub import Hub, open_hub, start_function, start_local_hub
from assay.lifecycle.ports import Exporter, Lifecycle, Runtime, SweepStep

__all__ = [
    "Exporter",
    "Hub",
    "Lifecycle",
    "Runtime",
    "SweepStep",
    "handlers",
    "jobs",
    "open_hub",
    "progress",
    "start_function",
    "start_local_hub",
]
