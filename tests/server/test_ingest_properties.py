"""Properties of ``POST /api/v1/events`` (hypothesis): any request body gets an answer, never a
500 nor an unhandled exception; a refusal is a 4xx whose error is short.

One runtime (the simulator's, as in ``test_ingest.py``) serves every example; requests go
in-process through ``httpx.ASGITransport``, which re-raises anything the app lets escape.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wanderer_console.runtime import Runtime
from wanderer_console.server.ingest import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from wanderer_console.server.refusals import MAX_ECHO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

PROPERTY = settings(
    max_examples=100,
    database=None,
    deadline=None,
    derandomize=True,
    # One runtime for all examples on purpose: starting one per example would take minutes.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

LONGEST_STRING = 3 * (64 + 2 + 160) + 2 * 2 + len("and 99 more")
"""The longest text an answer may hold: a rejection reason (three clipped errors and a count)."""

_KEYS = st.text(max_size=10) | st.sampled_from(
    ["event_id", "schema_version", "type", "title", "body", "severity", "notification_type"]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``, sometimes any JSON value: many events pass, many do not."""
    return st.one_of(good, good, good, json_values)


_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _mostly(st.from_regex(r"[A-Za-z0-9._:\-]{1,130}", fullmatch=True)),
    "schema_version": _mostly(st.sampled_from(["1.0.0", "1.2.0-rc.1+b5", "1.0", "01.0.0"])),
    "type": _mostly(st.sampled_from(["custom", "custom", "killmail"])),
    "tenant": _mostly(st.sampled_from(["TENANT"] * 4 + ["other"])),
    "title": _mostly(st.text(min_size=1, max_size=20) | st.text(min_size=250, max_size=260)),
    "body": _mostly(st.text(max_size=40) | st.just("b" * 4097)),
    "severity": _mostly(st.sampled_from(["info", "success", "warning", "critical", "fatal"])),
    "notification_type": _mostly(
        st.sampled_from(["kill", "system", "character", "rally", "weather"])
    ),
}
events = st.fixed_dictionaries(
    {"title": _FIELDS["title"]}, optional={k: v for k, v in _FIELDS.items() if k != "title"}
) | st.dictionaries(_KEYS, json_values, max_size=5)
batches = st.fixed_dictionaries(
    {"events": st.lists(events | json_values, max_size=6) | json_values},
    optional={"tenant": _FIELDS["tenant"]},
)
many = st.integers(MAX_BATCH_EVENTS - 1, MAX_BATCH_EVENTS + 3).map(
    lambda n: {"events": [{"title": f"t{i}"} for i in range(n)]}
)
json_bodies = st.one_of(events, batches, many, json_values)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.just(b"\xef\xbb\xbf{}"),
)
_BAD_AUTH = st.one_of(
    st.sampled_from(["KEY", "Bearer ", "Basic KEY", "Bearer wci_nope"]),
    st.none(),
    st.text(alphabet=st.characters(max_codepoint=255), max_size=30),
)
auth_headers = st.builds(
    lambda pick, bad: ("Bearer KEY", "bearer  KEY ", bad)[min(pick // 4, 2)],
    st.integers(0, 9),
    _BAD_AUTH,
)
"""Mostly the tenant's key (so the body is what gets judged), else any header at all."""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _with_tenant(value: Any, tenant: str) -> Any:
    """The placeholder ``TENANT`` replaced by the key's real tenant (so some events pass)."""
    if value == "TENANT":
        return tenant
    if isinstance(value, dict):
        return {k: _with_tenant(v, tenant) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_tenant(v, tenant) for v in value]
    return value


@PROPERTY
@given(
    body=st.one_of(
        json_bodies.map(lambda v: ("json", v)),
        raw_bodies.map(lambda b: ("raw", b)),
        # Over the size limit (given as a size, so a failing example prints short).
        st.sampled_from([MAX_BODY_BYTES - 13, MAX_BODY_BYTES + 1]).map(lambda n: ("title_of", n)),
    ),
    authorization=auth_headers,
)
async def test_any_request_body_gets_a_short_answer_and_never_a_500(
    runtime: Runtime, ingest_key: str, body: tuple[str, Any], authorization: str | None
) -> None:
    assert runtime.http is not None
    kind, value = body
    tenant = runtime.http.tenants.authenticate(ingest_key)
    assert tenant is not None
    if kind == "json":
        # The standard library writes any int (orjson would refuse those over 64 bits).
        content = json.dumps(_with_tenant(value, tenant)).encode()
    elif kind == "title_of":
        content = b'{"title": "' + b"x" * (value - 13) + b'"}'  # ``value`` bytes in all
    else:
        content = value
    headers = {b"content-type": b"application/json"}
    if authorization is not None:
        headers[b"authorization"] = authorization.replace("KEY", ingest_key).encode("latin-1")
    transport = httpx.ASGITransport(app=runtime.http.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        response = await client.post("/api/v1/events", content=content, headers=headers)

    event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert isinstance(answer, dict)
    assert all(len(s) <= LONGEST_STRING for s in _strings(answer)), response.text[:500]
    if response.status_code == 200:
        results = answer["results"]
        assert [r["index"] for r in results] == list(range(len(results)))
        assert {r["status"] for r in results} <= {"accepted", "duplicate", "rejected"}
        assert answer["accepted"] + answer["duplicate"] >= 1 or not results
        event(f"accepted {min(answer['accepted'], 1)}")
        return
    if "results" in answer:  # every event was rejected: each says why, briefly
        assert response.status_code == 422
        assert all(r["status"] == "rejected" and r["reason"] for r in answer["results"])
        assert all(len(r.get("event_id") or "") <= MAX_ECHO for r in answer["results"])
    else:
        assert isinstance(answer["error"], str)
        assert 0 < len(answer["error"]) <= MAX_ECHO
