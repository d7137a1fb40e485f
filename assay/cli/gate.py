"""``assay gate``: the CI step. Submit an evaluation (or attach to one), wait for it and its baseline with
a deadline, write the JUnit (and Markdown) report, and exit non-zero when the gate fails.

Exit codes: 0 passed, 1 the gate failed, 2 the hub refused the request or could not be reached,
3 the deadline passed first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.settings import Settings

if TYPE_CHECKING:  # imported when the gate runs, not whenever the assay command starts (assay up)
    import httpx

PASSED, FAILED, ERROR, TIMED_OUT = 0, 1, 2, 3


def add_parser(sub: Any) -> None:
    gate = sub.add_parser(
        "gate", help="submit or attach to an evaluation, wait, write JUnit, fail on a failed gate"
    )
    gate.add_argument("--hub", required=True, help="the hub's base URL, e.g. https://assay.example.com")
    gate.add_argument("--tenant", help="X-Tenant to send (cluster mode)")
    gate.add_argument("--token", help="a bearer token to send (Authorization)")
    what = gate.add_mutually_exclusive_group(required=True)
    what.add_argument("--job", help="attach to this evaluation job id")
    what.add_argument("--request", type=Path, help="a JSON job request to submit (EvalHub POST /jobs body)")
    gate.add_argument(
        "--idempotency-key",
        help="Idempotency-Key for the submission (e.g. the CI run id: a retried step re-attaches)",
    )
    gate.add_argument(
        "--baseline", help="a baseline job id (default: the one the job's policy names, if any)"
    )
    gate.add_argument(
        "--max-drop", type=float, help="allowed drop per benchmark (metric units, or a fraction)"
    )
    gate.add_argument(
        "--relative", action="store_true", default=None, help="--max-drop is a fraction of the baseline"
    )
    gate.add_argument(
        "--sigma", type=float, help="a drop must also exceed this many combined standard errors"
    )
    gate.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait in all (default 3600)")
    gate.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    gate.add_argument(
        "--junit", type=Path, default=Path("assay-junit.xml"), help="where to write the JUnit report"
    )
    gate.add_argument("--markdown", type=Path, help="where to write (append) the Markdown summary")
    gate.set_defaults(run=run)


def _params(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {}
    if args.baseline:
        params["baseline"] = args.baseline
    if args.max_drop is not None:
        params["max_drop"] = repr(args.max_drop)
    if args.relative:
        params["relative"] = "true"
    if args.sigma is not None:
        params["sigma"] = repr(args.sigma)
    return params


def _explain(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    return f"HTTP {response.status_code} {body.get('message_code', '')}: {body.get('message', body)}"


def run(args: argparse.Namespace) -> int:
    import httpx

    from assay.auth import client_token

    headers = {"Accept": "application/json"}
    if args.tenant:
        headers["X-Tenant"] = args.tenant
    token = args.token or client_token(Settings())
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + args.timeout
    with httpx.Client(base_url=args.hub.rstrip("/"), headers=headers, timeout=30.0) as client:
        try:
            return _gate(client, args, deadline)
        except httpx.HTTPError as exc:
            print(f"assay gate: the hub cannot be reached: {exc}", file=sys.stderr)
            return ERROR


def _gate(client: httpx.Client, args: argparse.Namespace, deadline: float) -> int:
    job_id = args.job
    if job_id is None:
        body = json.loads(args.request.read_text(encoding="utf-8"))
        key = args.idempotency_key or str(uuid.uuid4())
        submitted = client.post("/api/v1/evaluations/jobs", json=body, headers={"Idempotency-Key": key})
        if submitted.status_code != 202:
            print(f"assay gate: the job was refused: {_explain(submitted)}", file=sys.stderr)
            return ERROR
        job_id = submitted.json()["resource"]["id"]
        print(f"assay gate: submitted job {job_id}")
    params = _params(args)
    while True:
        answer = client.get(f"/api/v1/evaluations/jobs/{job_id}/gate", params=params)
        if answer.status_code != 200:
            print(f"assay gate: {_explain(answer)}", file=sys.stderr)
            return ERROR
        gate = answer.json()
        if gate["decision"] != "pending":
            break
        if time.monotonic() >= deadline:
            print(f"assay gate: still {', '.join(gate['reasons'])} after {args.timeout:g} s", file=sys.stderr)
            _write_reports(client, args, job_id, params)
            return TIMED_OUT
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
    _write_reports(client, args, job_id, params)
    for regression in gate.get("regressions", []):
        print(
            f"assay gate: {regression['id']} regressed by {regression['delta']:.4g} ({regression['metric']})"
        )
    print(
        f"assay gate: {gate['decision']} ({', '.join(gate['reasons']) or 'all criteria met'}); job {job_id}"
    )
    return PASSED if gate["decision"] == "passed" else FAILED


def _write_reports(
    client: httpx.Client, args: argparse.Namespace, job_id: str, params: dict[str, str]
) -> None:
    junit = client.get(f"/api/v1/evaluations/jobs/{job_id}/report", params={**params, "format": "junit"})
    junit.raise_for_status()
    args.junit.parent.mkdir(parents=True, exist_ok=True)
    args.junit.write_text(junit.text, encoding="utf-8")
    if args.markdown is not None:
        markdown = client.get(
            f"/api/v1/evaluations/jobs/{job_id}/report", params={**params, "format": "markdown"}
        )
        markdown.raise_for_status()
        with args.markdown.open("a", encoding="utf-8") as summary:
            summary.write(markdown.text)


__all__ = ["add_parser", "run"]
