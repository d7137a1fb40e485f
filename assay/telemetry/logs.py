"""Structured logs: one JSON object per line (or readable text on a terminal), every line carrying
the request id, tenant and user of the request it belongs to."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from assay.core.jsontext import dumps_text

request_id_var: ContextVar[str | None] = ContextVar("assay_request_id", default=None)
tenant_var: ContextVar[str | None] = ContextVar("assay_tenant", default=None)
user_var: ContextVar[str | None] = ContextVar("assay_user", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _context() -> dict[str, str]:
    ctx = {"request_id": request_id_var.get(), "tenant": tenant_var.get(), "user": user_var.get()}
    return {k: v for k, v in ctx.items() if v is not None}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and not k.startswith("_") and v is not None
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps_text(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC).strftime("%H:%M:%S")
        fields = {**_context(), **_extras(record)}
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}" + (
            f"  {tail}" if tail else ""
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Route every logger (uvicorn's included) through one handler on stderr."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    # Neither formatter writes where a record was logged from, nor its thread or process: what logging gathers for
    # them on every record (a walk up the stack, thread lookups, getpid() - a system call each time) is switched
    # off, as the logging documentation's "Optimization" section describes. Tracebacks are unaffected.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # logs every command it runs at INFO
    # Our own access log carries route, status and duration; uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
