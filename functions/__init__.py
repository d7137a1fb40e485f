"""Assay's Knative functions: each ``functions/<name>/main.py`` is what its Service serves
(``uvicorn functions.<name>.main:app``).

Importing one starts here, with the cyclic garbage collector off: a function's imports build some 90,000
objects that live as long as the process, and the collector walking them again and again while they pile up
was about 70 ms of every cold start (``bench/function_cold_start.py``). Each main module ends with
:func:`started` once its app is built.
"""

from __future__ import annotations

import gc

gc.disable()


def started() -> None:
    """Freeze what the imports built (a later full collection need not walk it: about 60 ms over a function's
    start-up objects, every so often on some request) and turn the collector back on."""
    gc.freeze()
    gc.enable()
