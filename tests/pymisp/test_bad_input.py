"""Bad input through PyMISP's direct_call (bytes go out unchanged): every case
gets a MISP-shaped JSON error (PyMISP returns `{'errors': (status, body)}`) and
changes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from pymisp import MISPEvent

from conftest import MAX_DOCUMENT_MIB, connect
from misp_helpers import event_count, misp_error, next_ip, ok, tok


@pytest.fixture
def target(admin):
    """An event to aim edits at, with its count and content before the test."""
    ev = MISPEvent()
    ev.info = f"bad input target {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    made = ok(admin.add_event(ev, pythonify=True))
    return made


def snapshot(admin, made=None):
    return event_count(admin), (ok(admin.get_event(made.id)) if made is not None else None)


MALFORMED = [
    pytest.param(b'{"info": "x",', id="truncated"),
    pytest.param(b'{"info": "x" "distribution": "1"}', id="missing-comma"),
    pytest.param(b"{'info': 'x'}", id="single-quotes"),
    pytest.param(b'{"info": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b"not json at all", id="text"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deep-nesting"),
]

WRONG_SHAPES = [
    pytest.param({"info": "x", "distribution": "nine"}, id="distribution-nine"),
    pytest.param({"info": "x", "distribution": 9}, id="distribution-out-of-range"),
    pytest.param({"info": "x", "threat_level_id": "7"}, id="threat-level-out-of-range"),
    pytest.param({"info": "x", "analysis": "5"}, id="analysis-out-of-range"),
    pytest.param({"info": "x", "date": "yesterday"}, id="bad-date"),
    pytest.param({"info": "x", "uuid": "not-a-uuid"}, id="bad-uuid"),
    pytest.param({"info": ["x"]}, id="info-list"),
    pytest.param({"info": "x", "Attribute": "not a list"}, id="attribute-not-list"),
    pytest.param({"info": "x", "Attribute": [{"type": "ip-dst", "value": ["1.2.3.4"]}]}, id="value-list"),
    pytest.param({"info": "x", "Attribute": [{"type": "ip-dst"}]}, id="value-missing"),
    pytest.param({"info": "x", "Attribute": [{"type": "ip-dst", "value": "1.2.3.4", "distribution": "7"}]}, id="attr-distribution"),
    pytest.param({"info": "x", "Tag": "tlp:green"}, id="tag-not-list"),
    pytest.param({}, id="empty-object"),
    pytest.param([], id="list"),
    pytest.param("just a string", id="string"),
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_json_add(admin, raw):
    before = snapshot(admin)
    misp_error(admin.direct_call("events/add", raw), 400, 403, 422)
    assert snapshot(admin) == before


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_json_edit(admin, target, raw):
    before = snapshot(admin, target)
    misp_error(admin.direct_call(f"events/edit/{target.uuid}", raw), 400, 403, 422)
    assert snapshot(admin, target) == before


@pytest.mark.parametrize("body", WRONG_SHAPES)
def test_wrong_types_add(admin, body):
    before = snapshot(admin)
    raw = json.dumps(body).encode()  # bytes: sent exactly as written
    misp_error(admin.direct_call("events/add", raw), 400, 403, 422)
    assert snapshot(admin) == before


@pytest.mark.parametrize("body", [p for p in WRONG_SHAPES if p.id not in ("empty-object",)])
def test_wrong_types_edit(admin, target, body):
    before = snapshot(admin, target)
    misp_error(admin.direct_call(f"events/edit/{target.uuid}", json.dumps(body).encode()), 400, 403, 422)
    assert snapshot(admin, target) == before


def test_invalid_attribute_type_in_event(admin):
    before = snapshot(admin)
    body = {"info": f"bad type {tok()}", "Attribute": [
        {"type": "ip-dst", "value": next_ip()},
        {"type": "not-a-misp-type", "value": "x"},
    ]}
    misp_error(admin.direct_call("events/add", body), 400, 403, 422)
    assert snapshot(admin) == before
    assert ok(admin.search_index(eventinfo=body["info"])) == []


def test_invalid_category_for_type_in_event(admin):
    before = snapshot(admin)
    body = {"info": f"bad category {tok()}", "Attribute": [{"type": "ip-dst", "value": next_ip(), "category": "Financial fraud"}]}
    misp_error(admin.direct_call("events/add", body), 400, 403, 422)
    assert snapshot(admin) == before


def test_invalid_attribute_type_on_attributes_add(admin, target):
    before = snapshot(admin, target)
    body = misp_error(admin.direct_call(f"attributes/add/{target.id}", {"type": "not-a-misp-type", "value": "x"}), 403)
    assert body.get("saved") is False and "type" in body.get("errors", {}), body
    assert snapshot(admin, target) == before


def test_invalid_value_on_attributes_add(admin, target):
    before = snapshot(admin, target)
    body = misp_error(admin.direct_call(f"attributes/add/{target.id}", {"type": "ip-dst", "value": "999.1.2.3.4"}), 403)
    assert body.get("saved") is False and "value" in body.get("errors", {}), body
    assert snapshot(admin, target) == before


def test_unknown_uuid_get_update_delete(admin):
    before = snapshot(admin)
    u = str(uuid.uuid4())
    misp_error(admin.direct_call(f"events/view/{u}"), 404)
    misp_error(admin.direct_call(f"events/edit/{u}", {"info": "edit of nothing"}), 403, 404)
    misp_error(admin.direct_call(f"events/delete/{u}", {}), 403, 404)
    misp_error(admin.direct_call(f"events/publish/{u}", {}), 403, 404)
    assert admin.event_exists(u) is False
    assert snapshot(admin) == before
    assert ok(admin.search_index(eventinfo="edit of nothing")) == []


def test_unknown_uuid_attributes(admin):
    u = str(uuid.uuid4())
    misp_error(admin.direct_call(f"attributes/view/{u}"), 404, 405)
    misp_error(admin.direct_call(f"attributes/edit/{u}", {"comment": "x"}), 403, 404)
    misp_error(admin.direct_call(f"attributes/delete/{u}", {}), 404)
    misp_error(admin.direct_call(f"attributes/add/{u}", {"type": "ip-dst", "value": next_ip()}), 403, 404)


def test_garbage_ids(admin):
    for x in ("abc", "-1", "1.5", "%00", "0x10"):
        misp_error(admin.direct_call(f"events/view/{x}"), 400, 404)


def test_edit_cannot_move_event_to_other_uuid(admin, target):
    before = snapshot(admin, target)
    other = str(uuid.uuid4())
    body = {"info": f"moved {tok()}", "uuid": other}
    r = admin.direct_call(f"events/edit/{target.uuid}", body)
    # Either refused, or applied to the event in the path; never a new event.
    if not (isinstance(r, dict) and "errors" in r):
        assert r["Event"]["uuid"] == str(target.uuid)
    assert admin.event_exists(other) is False
    assert event_count(admin) == before[0]


def oversized() -> bytes:
    size = (MAX_DOCUMENT_MIB + 1) * 1024 * 1024
    filler = b'{"info": "big", "Attribute": [' + b'{"type": "text", "value": "xxxxxxxxxxxxxxxxxxxx"},' * (size // 50) + b'{}]}'
    assert len(filler) > MAX_DOCUMENT_MIB * 1024 * 1024
    return filler


def test_oversized_body(node, admin, target):
    before = snapshot(admin, target)
    # A client of its own per request: what happens to the connection after a
    # 413 is test_oversized_body_then_connection_usable's business.
    body = misp_error(connect(node, node.admin_key).direct_call("events/add", oversized()), 413)
    assert body["message"]
    misp_error(connect(node, node.admin_key).direct_call(f"events/edit/{target.uuid}", oversized()), 413)
    assert snapshot(admin, target) == before


def test_oversized_body_then_connection_usable(node):
    """Each oversized upload gets its 413 (not a reset), and the session stays usable
    (if the node closes the connection after a 413 it must say `Connection: close`)."""
    s = requests.Session()
    h = {"Accept": "application/json", "content-type": "application/json", "Authorization": node.admin_key}
    big = oversized()
    upload_failures, followup_failures = [], []
    for i in range(20):
        try:
            r = s.post(f"{node.url}/events/add", data=big, headers=h, verify=node.ca, timeout=60)
            assert r.status_code == 413, (r.status_code, r.text[:300])
            assert r.json().get("message")
        except requests.exceptions.ConnectionError as e:
            upload_failures.append(f"round {i}: {e}")
            continue
        try:
            assert s.get(f"{node.url}/servers/getVersion", headers=h, verify=node.ca, timeout=30).status_code == 200
        except requests.exceptions.ConnectionError as e:
            followup_failures.append(f"round {i}: {e}")
    assert not upload_failures and not followup_failures, (
        f"{len(upload_failures)}/20 uploads got no 413: {upload_failures[:2]}; "
        f"{len(followup_failures)}/20 follow-up requests failed on the reused connection: {followup_failures[:2]}")


def test_oversized_chunked_body(admin, node):
    """Without a Content-Length, the limit still holds (requests sends a generator chunked)."""
    before = snapshot(admin)

    def chunks():
        yield b'{"info": "chunked", "Attribute": ['
        for _ in range((MAX_DOCUMENT_MIB + 1) * 1024):
            yield b'{"type": "text", "value": "' + b"y" * 990 + b'"},'
        yield b'{}]}'

    try:
        r = requests.post(f"{node.url}/events/add", data=chunks(), verify=node.ca, timeout=60,
                          headers={"Authorization": node.admin_key, "Accept": "application/json",
                                   "content-type": "application/json"})
    except requests.exceptions.ConnectionError:
        r = None  # the node may close the connection once the limit is passed
    if r is not None:
        assert r.status_code == 413, (r.status_code, r.text[:500])
        assert r.json().get("message")
    assert snapshot(admin) == before


def test_wrong_key_on_direct_call(node, admin):
    before = snapshot(admin)
    m = connect(node, node.admin_key)
    session = m._PyMISP__session
    session.headers["Authorization"] = "wrong-key-" + "x" * 30
    misp_error(m.direct_call("events/index"), 401, 403)
    # (a refused POST last: see test_error_answer_keeps_connection_usable)
    body = misp_error(m.direct_call("events/add", {"info": f"wrong key {tok()}"}), 401, 403)
    assert "Authentication" in body["message"] or "key" in body["message"].lower()
    m = connect(node, node.admin_key)  # a fresh session (see test_error_answer_keeps_connection_usable)
    del m._PyMISP__session.headers["Authorization"]
    misp_error(m.direct_call("events/add", {"info": f"no key {tok()}"}), 401, 403)
    assert snapshot(admin) == before


def test_unknown_path_is_json_404(node):
    m = connect(node, node.admin_key)  # its own session: see test_error_answer_keeps_connection_usable
    misp_error(m.direct_call("events/frobnicate/1"), 404)
    misp_error(connect(node, node.admin_key).direct_call("nothing/here", {}), 404)


def test_wrong_method_is_json_error(admin):
    # direct_call without data is a GET; events/add only takes POST.
    misp_error(admin.direct_call("events/add"), 404, 405)


@pytest.mark.parametrize("path,key", [
    pytest.param("nothing/here", "admin", id="unknown-path"),
    pytest.param("events/add", "wrong", id="wrong-key"),
    pytest.param("events/edit/not-an-event", "admin", id="unknown-event"),
])
def test_error_answer_keeps_connection_usable(node, path, key):
    """PyMISP reuses one keep-alive session. An error answered before the request
    body is read must not leave the client a connection that the node then drops
    (the next call would fail with 'Remote end closed connection without response')."""
    s = requests.Session()
    h = {"Accept": "application/json", "content-type": "application/json"}
    auth = node.admin_key if key == "admin" else "wrong-key-" + "x" * 30
    body = json.dumps({"info": "x" * 2000, "Attribute": [{"type": "ip-dst", "value": "198.51.100.1"}] * 20}).encode()
    failures = []
    for i in range(100):
        r = s.post(f"{node.url}/{path}", data=body, headers={**h, "Authorization": auth}, verify=node.ca, timeout=30)
        assert 400 <= r.status_code < 500 and r.json().get("message"), (r.status_code, r.text)
        try:
            r = s.get(f"{node.url}/servers/getVersion", headers={**h, "Authorization": node.admin_key},
                      verify=node.ca, timeout=30)
            assert r.status_code == 200
        except requests.exceptions.ConnectionError as e:
            failures.append(f"round {i}: {e}")
    assert not failures, f"{len(failures)}/100 follow-up requests failed on the reused connection: {failures[:3]}"
