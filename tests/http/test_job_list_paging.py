"""GET /api/v1/evaluations/jobs pages: ``next`` carries a cursor (keyset paging), ``offset`` still works as
EvalHub's clients send it, filters travel in the links, a malformed cursor is a 400 naming ``cursor``, and a
cursor used in another tenant lists that tenant's jobs only."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from tests.http.test_jobs_api import job

J = "/api/v1/evaluations/jobs"
A = {"X-Tenant": "team-a"}
B = {"X-Tenant": "team-b"}


def submit(client: TestClient, headers: dict[str, str], name: str) -> str:
    created = client.post(J, json=job(name=name), headers=headers)
    assert created.status_code == 202, created.text
    return str(created.json()["resource"]["id"])


def pages(client: TestClient, href: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    found = []
    while href:
        response = client.get(href, headers=headers)
        assert response.status_code == 200, response.text
        found.append(response.json())
        href = found[-1].get("next", {}).get("href")
    return found


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_next_links_page_with_a_cursor_and_offset_still_works(client: TestClient) -> None:
    a_ids = [submit(client, A, "nightly" if i % 2 else "release") for i in range(7)]
    b_ids = [submit(client, B, "nightly") for _ in range(3)]
    newest_first = a_ids[::-1]

    walked = pages(client, f"{J}?limit=3", A)
    assert [item["resource"]["id"] for p in walked for item in p["items"]] == newest_first
    assert [len(p["items"]) for p in walked] == [3, 3, 1]
    assert {p["total_count"] for p in walked} == {7} and {p["limit"] for p in walked} == {3}
    for page in walked[:-1]:
        query = parse_qs(urlsplit(page["next"]["href"]).query)
        assert set(query) == {"limit", "cursor"}  # no offset: the cursor is the place
    assert "next" not in walked[-1]
    assert walked[1]["first"]["href"] == f"{J}?limit=3"  # first: the request without its place

    # offset, as EvalHub's MCP server pages, gives the same pages
    by_offset = client.get(J, params={"limit": 3, "offset": 3}, headers=A).json()
    assert by_offset["items"] == walked[1]["items"] and by_offset["total_count"] == 7
    assert "cursor" in by_offset["next"]["href"]  # and its next link continues with a cursor
    past_the_end = client.get(J, params={"limit": 3, "offset": 10**9}, headers=A)
    assert past_the_end.status_code == 200 and past_the_end.json()["items"] == []

    # filters stay in the links
    nightly = pages(client, f"{J}?name=nightly&limit=2", A)
    assert [item["resource"]["id"] for p in nightly for item in p["items"]] == [a_ids[5], a_ids[3], a_ids[1]]
    assert {p["total_count"] for p in nightly} == {3}
    assert all("name=nightly" in p["next"]["href"] for p in nightly[:-1])

    # team-b never sees team-a's jobs, even through team-a's cursor
    cursor = parse_qs(urlsplit(walked[0]["next"]["href"]).query)["cursor"][0]
    crossed = client.get(J, params={"limit": 50, "cursor": cursor}, headers=B).json()
    assert {item["resource"]["tenant"] for item in crossed["items"]} <= {"team-b"}
    assert {item["resource"]["id"] for item in crossed["items"]} <= set(b_ids)
    assert crossed["total_count"] == 3


def test_a_malformed_cursor_is_a_400_naming_it(client: TestClient) -> None:
    submit(client, A, "one")
    bad = [
        "",
        "not base64!",
        "x" * 600,
        b64("2|1764892800000000|abc"),  # unknown version
        b64("1|yesterday|abc"),
        b64("1|-5|abc"),
        b64("1|99999999999999999999999|abc"),  # past year 9999
        b64("1|1764892800000000|"),
        b64("1|1764892800000000|with space"),
        b64("1|1764892800000000"),
        base64.urlsafe_b64encode(b"\xff\xfe|1|x").decode(),
        "%00",
    ]
    for cursor in bad:
        response = client.get(J, params={"cursor": cursor}, headers=A)
        assert response.status_code == 400, (cursor, response.text)
        body = response.json()
        assert body["message_code"] == "query_parameter_invalid", cursor
        assert [e["path"] for e in body["errors"]] == ["cursor"], cursor
    both = client.get(J, params={"cursor": b64("1|1764892800000000|abc"), "offset": 2}, headers=A)
    assert both.status_code == 400 and both.json()["message_code"] == "query_parameter_mismatch"
    assert [e["path"] for e in both.json()["errors"]] == ["cursor"]
    # A well-formed hand-made cursor is only a place in the caller's own list.
    future = client.get(J, params={"cursor": b64("1|253402214400000000|zzz")}, headers=A).json()
    assert len(future["items"]) == 1 and future["total_count"] == 1
    past = client.get(J, params={"cursor": b64("1|0|a")}, headers=A).json()
    assert past["items"] == [] and "next" not in past
