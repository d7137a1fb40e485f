"""Helpers the tests and benches share, each written once: a free loopback port (``net``), polling a condition
with a deadline (``waiting``), ASGI apps under uvicorn and handlers under ``http.server`` in a thread
(``servers``), and the recording events receiver that stands in for the hub (``recorders``)."""
