"""Small helpers shared by the PyMISP tests (not a test module)."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any, Callable

from pymisp import MISPEvent

_counter = itertools.count(1)


def tok() -> str:
    """A short token unique within the session, for values, tags and infos."""
    return f"{next(_counter):04d}{uuid.uuid4().hex[:8]}"


def next_ip() -> str:
    """A unique IPv4 address (198.18.0.0/15, benchmarking space) per call."""
    n = next(_counter) * 7 + 11
    return f"198.{18 + (n >> 16) % 2}.{(n >> 8) & 255}.{n & 255}"


def ok(resp: Any) -> Any:
    """Asserts PyMISP did not report an error, and returns the answer."""
    assert not (isinstance(resp, dict) and "errors" in resp and isinstance(resp["errors"], tuple)), f"unexpected error: {resp}"
    return resp


def misp_error(resp: Any, *statuses: int) -> dict:
    """Asserts `resp` is PyMISP's `{'errors': (status, body)}` for a 4xx answer
    with a MISP-shaped JSON body (`name`, `message`, `url`), and returns the body."""
    assert isinstance(resp, dict) and "errors" in resp, f"expected an error, got: {str(resp)[:2000]}"
    err = resp["errors"]
    assert isinstance(err, tuple) and len(err) == 2, f"not a 4xx JSON answer: {resp}"
    status, body = err
    if statuses:
        assert status in statuses, f"status {status}, expected one of {statuses}: {body}"
    else:
        assert 400 <= status < 500, f"status {status}: {body}"
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
    for k in ("name", "message", "url"):
        assert k in body, f"MISP error bodies carry '{k}': {body}"
    assert isinstance(body["message"], str) and body["message"], f"empty message: {body}"
    return body


def wait_until(fn: Callable[[], Any], timeout: float = 10.0, interval: float = 0.2) -> Any:
    """Polls `fn` until it returns something truthy (for asynchronous publishing)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


def simple_event(info: str, distribution: int | None = None, **attrs: Any) -> MISPEvent:
    ev = MISPEvent()
    ev.info = info
    if distribution is not None:
        ev.distribution = distribution
    for t, v in attrs.items():
        ev.add_attribute(t.replace("_", "-"), v)
    return ev


def event_uuids(rows: Any) -> set[str]:
    """uuids in an events() / search_index / events restSearch answer."""
    out = set()
    for r in rows:
        if hasattr(r, "uuid"):
            out.add(str(r.uuid))
        elif "Event" in r:
            out.add(r["Event"]["uuid"])
        else:
            out.add(r["uuid"])
    return out


def attr_values(resp: Any) -> list[str]:
    """Values in an attributes restSearch answer (dict or pythonified list)."""
    if isinstance(resp, dict):
        return [a["value"] for a in resp["Attribute"]]
    return [a.value for a in resp]


def all_attributes(event: dict) -> list[dict]:
    """Attributes of a JSON event, object attributes included."""
    ev = event.get("Event", event)
    out = list(ev.get("Attribute", []))
    for o in ev.get("Object", []):
        out.extend(o.get("Attribute", []))
    return out


def event_count(client) -> int:
    rows = ok(client.events())
    return len(rows)
