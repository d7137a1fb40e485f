"""The dead-letter sink: where the Knative broker sends the events it gave up on, and where operators see them.

``POST /api/v1/dead-letters`` takes a CloudEvent in binary (``ce-*`` headers) or structured
(``application/cloudevents+json``) mode, as the broker's ``delivery.deadLetterSink`` posts it with
Knative's ``knativeerrordest`` (the subscriber that failed), ``knativeerrorcode`` (its last HTTP status) and
``knativeerrordata`` (its response body, base64, truncated), and stores it durably, once per
``(source, id)``: 201 when new, 200 for a redelivery. Each new one is logged at WARNING and counted in
``assay_dead_letters_total{type, code}``. ``GET /api/v1/dead-letters`` lists the caller's tenant's.

Served by the callback function: it subscribes to no Trigger, so the failures that dead-letter events
(dispatch, aggregate, sweep or submit down or refusing) do not take the sink with them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any, cast

from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent, from_http
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from assay.core import Tenant
from assay.errors import FieldError, InvalidIdentity, InvalidRequest
from assay.http.context import CallerDep, database_of, page_links, paging, strict_query, timestamp
from assay.store.deadletters import DeadLetter, DeadLetterRecord, DeadLetterRepository
from assay.telemetry import Metrics

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["dead letters"])

_REQUIRED = ("specversion", "id", "source", "type")
_STRUCTURED = "application/cloudevents+json"
_ERROR_DATA_LIMIT = 8192  # Knative truncates the body it forwards; keep what an operator can read


def _missing_attributes(headers: Mapping[str, str], body: bytes) -> list[FieldError]:
    """The required context attributes a request lacks, named as the request spells them (header or key)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == _STRUCTURED:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:
            return [FieldError("$", "invalid_json", f"a structured CloudEvent must be a JSON object: {exc}")]
        if not isinstance(document, dict):
            return [FieldError("$", "type", "a structured CloudEvent must be a JSON object")]
        return [
            FieldError(name, "required", f"the CloudEvent attribute {name!r} is required")
            for name in _REQUIRED
            if not isinstance(document.get(name), str) or not document[name]
        ]
    return [
        FieldError(
            f"ce-{name}", "required", f"the header ce-{name} (CloudEvent attribute {name!r}) is required"
        )
        for name in _REQUIRED
        if not headers.get(f"ce-{name}")
    ]


def _event(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    missing = _missing_attributes(headers, body)
    if missing:
        raise InvalidRequest(
            "Not a CloudEvent: " + "; ".join(e.message for e in missing),
            message_code="invalid_cloudevent",
            errors=missing,
        )
    try:
        return from_http(dict(headers), body)
    except CloudEventError as exc:
        raise InvalidRequest(
            f"Not a CloudEvent: {exc}",
            message_code="invalid_cloudevent",
            errors=[FieldError("$", "invalid_cloudevent", str(exc))],
        ) from None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_data(raw: str | None) -> str | None:
    """``knativeerrordata`` decoded (base64 of the failed subscriber's response body), else as received."""
    if raw is None:
        return None
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        decoded = raw
    return decoded[:_ERROR_DATA_LIMIT]


def _error_code(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() and len(raw) <= 3 else None


def _tenant_of(source: str, data: object) -> str | None:
    """The tenant an event is about: ``data.tenant`` (Assay's events carry it), else ``/assay/<tenant>/...``."""
    named = data.get("tenant") if isinstance(data, dict) else None
    if not isinstance(named, str):
        parts = source.split("/")
        named = parts[2] if len(parts) > 3 and parts[0] == "" and parts[1] == "assay" else None
    if named is None:
        return None
    try:
        return Tenant(named).name
    except InvalidIdentity:
        return None  # not a tenant name: listed by no tenant, still stored, logged and counted


def dead_letter_of(event: CloudEvent) -> DeadLetter:
    """What Assay keeps of a dead-lettered CloudEvent."""
    attributes = {
        k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in event.get_attributes().items()
    }
    source, data = str(attributes["source"]), event.data
    payload: Any = None
    data_base64 = None
    if isinstance(data, bytes | bytearray | memoryview):
        data_base64 = base64.b64encode(bytes(data)).decode("ascii")
    else:
        payload = data
    evaluation_id = _text(attributes.get("correlationid"))
    if evaluation_id is None and isinstance(payload, dict):
        evaluation_id = _text(payload.get("evaluation_id"))
    return DeadLetter(
        source=source,
        id=str(attributes["id"]),
        type=str(attributes["type"]),
        attributes=attributes,
        subject=_text(attributes.get("subject")),
        tenant=_tenant_of(source, payload),
        evaluation_id=evaluation_id,
        error_dest=_text(attributes.get("knativeerrordest")),
        error_code=_error_code(_text(attributes.get("knativeerrorcode"))),
        error_data=_error_data(_text(attributes.get("knativeerrordata"))),
        data=payload,
        data_base64=data_base64,
    )


def dead_letter_document(record: DeadLetterRecord) -> dict[str, Any]:
    letter = record.letter
    document = {
        "source": letter.source,
        "id": letter.id,
        "type": letter.type,
        "subject": letter.subject,
        "tenant": letter.tenant,
        "evaluation_id": letter.evaluation_id,
        "error": {
            "destination": letter.error_dest,
            "code": letter.error_code,
            "data": letter.error_data,
        },
        "destinations": list(record.destinations),
        "attributes": letter.attributes,
        "data": letter.data,
        "data_base64": letter.data_base64,
        "received_at": timestamp(record.received_at),
    }
    return {k: v for k, v in document.items() if v is not None}


def _counter(request: Request) -> Counter:
    """``assay_dead_letters_total`` in this app's registry, made on first use."""
    state = request.app.state
    counter = getattr(state, "dead_letters_counter", None)
    if counter is None:
        metrics: Metrics = state.metrics
        counter = Counter(
            "assay_dead_letters",
            "CloudEvents the broker dead-lettered, by event type and the failed subscriber's last HTTP status",
            ["type", "code"],
            registry=metrics.registry,
        )
        state.dead_letters_counter = counter
    return cast(Counter, counter)


def _repository(request: Request) -> DeadLetterRepository:
    return DeadLetterRepository(database_of(request).pool)


@router.post(
    "/dead-letters",
    status_code=201,
    responses={200: {"description": "Already recorded"}, 201: {"description": "Recorded"}},
    dependencies=[Depends(strict_query())],
)
async def record_dead_letter(request: Request) -> JSONResponse:
    """The broker's ``deadLetterSink``: record one dead-lettered CloudEvent (binary or structured mode)."""
    letter = dead_letter_of(_event(request.headers, await request.body()))
    record, new = await _repository(request).record(letter)
    if new:
        code = str(letter.error_code) if letter.error_code is not None else "none"
        _counter(request).labels(letter.type, code).inc()
        log.warning(
            "dead letter %s %s from %s: %s answered %s",
            letter.type,
            letter.id,
            letter.source,
            letter.error_dest or "(unknown subscriber)",
            code,
            extra={
                "dead_letter": {
                    "source": letter.source,
                    "id": letter.id,
                    "type": letter.type,
                    "evaluation_id": letter.evaluation_id,
                    "tenant": letter.tenant,
                    "destination": letter.error_dest,
                    "code": letter.error_code,
                    "data": letter.error_data,
                }
            },
        )
    return JSONResponse(dead_letter_document(record), status_code=201 if new else 200)


@router.get("/dead-letters", dependencies=[Depends(strict_query("evaluation_id", "type", "limit", "offset"))])
async def list_dead_letters(request: Request, who: CallerDep) -> dict[str, Any]:
    """The caller's tenant's dead letters, newest first; ``evaluation_id`` and ``type`` narrow the list."""
    page = paging(request, 100)
    records, total = await _repository(request).list(
        who.tenant.name,
        evaluation_id=request.query_params.get("evaluation_id") or None,
        event_type=request.query_params.get("type") or None,
        limit=page.limit,
        offset=page.offset,
    )
    return {
        **page_links(request, page, total),
        "limit": page.limit,
        "total_count": total,
        "items": [dead_letter_document(r) for r in records],
    }


__all__ = ["dead_letter_document", "dead_letter_of", "router"]
