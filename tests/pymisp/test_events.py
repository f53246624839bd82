"""events/*: add, view (GET, POST, HEAD), edit, delete, publish/alert/unpublish,
index (events() and search_index)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from pymisp import MISPEvent, MISPObject

from misp_helpers import event_uuids, misp_error, next_ip, ok, tok, wait_until

INDEX_ROW_FIELDS = {
    "id", "uuid", "info", "date", "published", "timestamp", "publish_timestamp", "org_id", "orgc_id",
    "distribution", "threat_level_id", "analysis", "attribute_count", "Org", "Orgc", "EventTag",
}


def full_event(t: str) -> MISPEvent:
    ev = MISPEvent()
    ev.info = f"full event {t}"
    ev.uuid = str(uuid.uuid4())
    ev.date = dt.date(2026, 3, 14)
    ev.threat_level_id = 2
    ev.analysis = 1
    ev.distribution = 1
    ev.add_tag("tlp:green")
    ev.add_tag(f"sluis-test:event-{t}")
    a = ev.add_attribute("ip-dst", next_ip(), comment="c2 server")
    a.add_tag(f"sluis-test:attr-{t}")
    ev.add_attribute("domain", f"evil-{t}.example.com", to_ids=False)
    ev.add_attribute("url", f"https://evil-{t}.example.com/login", category="Network activity")
    o = MISPObject("domain-ip")
    o.add_attribute("domain", value=f"obj-{t}.example.net")
    o.add_attribute("ip", value=next_ip())
    ev.add_object(o)
    return ev


@pytest.fixture(scope="module")
def created(admin):
    """One full event made through add_event, with what was sent."""
    sent = full_event(tok())
    got = ok(admin.add_event(sent, pythonify=True))
    return sent, got


def test_add_event_keeps_what_was_sent(created, org_a):
    sent, got = created
    assert isinstance(got, MISPEvent)
    assert str(got.uuid) == sent.uuid
    assert got.info == sent.info
    assert str(got.id).isdigit()
    assert got.date == dt.date(2026, 3, 14)
    assert int(got.threat_level_id) == 2 and int(got.analysis) == 1 and int(got.distribution) == 1
    assert got.published is False
    assert got.Orgc.name == "CERT-A" and got.Org.name == "CERT-A"
    assert {str(a.uuid) for a in got.attributes} == {str(a.uuid) for a in sent.attributes}
    for a in got.attributes:
        assert str(a.event_id) == str(got.id)
        assert int(a.distribution) == 5  # attributes default to "inherit"
    by_type = {a.type: a for a in got.attributes}
    assert by_type["ip-dst"].to_ids is True and by_type["ip-dst"].comment == "c2 server"
    assert by_type["domain"].to_ids is False
    assert by_type["ip-dst"].category == "Network activity"
    assert [t.name for t in by_type["ip-dst"].tags] == [t.name for t in sent.attributes[0].tags]
    assert {t.name for t in got.tags} == {t.name for t in sent.tags}
    assert len(got.objects) == 1
    o = got.objects[0]
    assert o.name == "domain-ip" and str(o.uuid) == str(sent.objects[0].uuid)
    assert o.template_uuid == sent.objects[0].template_uuid
    assert {a.object_relation for a in o.attributes} == {"domain", "ip"}
    assert int(got.attribute_count) == 5


def _digits(d: dict, keys, what: str):
    for k in keys:
        assert isinstance(d.get(k), str) and d[k].isdigit(), f"{what}.{k} = {d.get(k, '<absent>')!r}"


def test_event_wire_encoding(admin, created):
    """MISP's encoding: ids, timestamps, levels as decimal strings; flags as booleans."""
    _, got = created
    ev = ok(admin.get_event(got.id))["Event"]
    _digits(ev, ("id", "timestamp", "publish_timestamp", "distribution", "threat_level_id", "analysis",
                 "attribute_count", "sharing_group_id"), "Event")
    assert isinstance(ev["published"], bool)
    assert isinstance(ev["date"], str) and len(ev["date"]) == 10


def test_event_org_ids(admin, created, org_a):
    _, got = created
    ev = ok(admin.get_event(got.id))["Event"]
    _digits(ev, ("org_id", "orgc_id"), "Event")
    assert ev["org_id"] == ev["orgc_id"] == str(org_a["id"])


def test_attribute_wire_encoding(admin, created):
    _, got = created
    ev = ok(admin.get_event(got.id))["Event"]
    for a in ev["Attribute"]:
        _digits(a, ("id", "event_id", "timestamp", "distribution", "sharing_group_id", "object_id"), "Attribute")
        assert a["object_id"] == "0"
        assert isinstance(a["to_ids"], bool) and isinstance(a["deleted"], bool)
        assert isinstance(a["disable_correlation"], bool)


def test_object_wire_encoding(admin, created):
    _, got = created
    ev = ok(admin.get_event(got.id))["Event"]
    o = ev["Object"][0]
    _digits(o, ("id", "event_id", "timestamp", "distribution", "template_version", "sharing_group_id"), "Object")
    for a in o["Attribute"]:
        _digits(a, ("id", "object_id"), "Object.Attribute")
        assert a["object_id"] == o["id"]


def test_new_event_default_distribution(admin):
    ev = MISPEvent()
    ev.info = f"no distribution {tok()}"
    got = ok(admin.add_event(ev))["Event"]
    assert got["distribution"] == "1"


def test_add_event_wrapped_in_event_key(admin):
    t = tok()
    body = {"Event": {"info": f"wrapped {t}", "distribution": "0",
                      "Attribute": [{"type": "ip-src", "value": next_ip()}]}}
    got = ok(admin.direct_call("events/add", body))
    assert got["Event"]["info"] == f"wrapped {t}"
    assert len(got["Event"]["Attribute"]) == 1


def test_add_event_duplicate_uuid_refused(admin, created):
    sent, _ = created
    before = len(ok(admin.events()))
    again = MISPEvent()
    again.info = "same uuid again"
    again.uuid = sent.uuid
    body = misp_error(admin.add_event(again), 404)
    assert "already exists" in body["message"]
    assert len(ok(admin.events())) == before
    assert ok(admin.get_event(sent.uuid))["Event"]["info"] == sent.info


def test_get_event_by_id_and_uuid(admin, created):
    _, got = created
    by_id = ok(admin.get_event(got.id, pythonify=True))
    by_uuid = ok(admin.get_event(str(got.uuid), pythonify=True))
    by_obj = ok(admin.get_event(got, pythonify=True))
    assert by_id.to_json() == by_uuid.to_json() == by_obj.to_json()
    assert str(by_id.uuid) == str(got.uuid)
    assert len(by_id.attributes) == 3 and len(by_id.objects) == 1


def test_get_event_unknown(admin):
    for x in (str(uuid.uuid4()), "987654321"):
        body = misp_error(admin.get_event(x), 404)
        assert body["name"] == "Invalid event."


def test_event_exists(admin, created):
    _, got = created
    assert admin.event_exists(got.id) is True
    assert admin.event_exists(str(got.uuid)) is True
    assert admin.event_exists(str(uuid.uuid4())) is False
    assert admin.event_exists(987654321) is False


def test_update_event_edited_parts_without_timestamps(admin):
    t = tok()
    ev = MISPEvent()
    ev.info = f"to update {t}"
    ev.add_attribute("ip-dst", next_ip(), comment="first")
    ev.add_attribute("domain", f"keep-{t}.example.org", comment="untouched")
    made = ok(admin.add_event(ev, pythonify=True))
    time.sleep(1.1)  # so that new timestamps differ from the creation's

    loaded = ok(admin.get_event(made.uuid, pythonify=True))
    assert loaded.edited is False
    old_ts = int(loaded.timestamp.timestamp())
    old_attr_ts = {str(a.uuid): int(a.timestamp.timestamp()) for a in loaded.attributes}
    edited = next(a for a in loaded.attributes if a.type == "ip-dst")
    untouched = next(a for a in loaded.attributes if a.type == "domain")
    loaded.info = f"updated {t}"
    edited.comment = "second"
    new_attr = loaded.add_attribute("url", f"https://new-{t}.example.org/x")

    # What PyMISP sends: the edited event and attribute lose their timestamps.
    wire = json.loads(loaded.to_json())
    assert "timestamp" not in wire
    wired = {a["uuid"]: a for a in wire["Attribute"]}
    assert "timestamp" not in wired[str(edited.uuid)]
    assert "timestamp" in wired[str(untouched.uuid)]

    upd = ok(admin.update_event(loaded, pythonify=True))
    assert upd.info == f"updated {t}"
    assert int(upd.timestamp.timestamp()) > old_ts
    attrs = {str(a.uuid): a for a in upd.attributes}
    assert attrs[str(edited.uuid)].comment == "second"
    assert int(attrs[str(edited.uuid)].timestamp.timestamp()) > old_attr_ts[str(edited.uuid)]
    assert attrs[str(untouched.uuid)].comment == "untouched"
    assert int(attrs[str(untouched.uuid)].timestamp.timestamp()) == old_attr_ts[str(untouched.uuid)]
    assert str(new_attr.uuid) in attrs
    # And it is stored.
    again = ok(admin.get_event(made.id))["Event"]
    assert again["info"] == f"updated {t}"
    assert {a["uuid"] for a in again["Attribute"]} == set(attrs)


def test_update_event_stale_child_not_applied(admin):
    """A child whose timestamp is not newer than the stored one is left alone."""
    t = tok()
    ev = MISPEvent()
    ev.info = f"stale child {t}"
    ev.add_attribute("ip-dst", next_ip(), comment="stored")
    made = ok(admin.add_event(ev))["Event"]
    a = made["Attribute"][0]
    body = {"info": f"stale child {t} edited", "uuid": made["uuid"],
            "Attribute": [{**a, "comment": "stale"}]}  # keeps its stored timestamp
    upd = ok(admin.direct_call(f"events/edit/{made['uuid']}", body))
    assert upd["Event"]["info"] == f"stale child {t} edited"
    stored = ok(admin.get_event(made["uuid"]))["Event"]["Attribute"][0]
    assert stored["comment"] == "stored"
    assert stored["timestamp"] == a["timestamp"]


def test_update_event_not_newer_refused(admin):
    """A whole event resent with its stored timestamp is 'not newer' (MISP: 403)."""
    ev = MISPEvent()
    ev.info = f"not newer {tok()}"
    made = ok(admin.add_event(ev))["Event"]
    body = dict(made)
    body["info"] = "should not be applied"
    err = misp_error(admin.direct_call(f"events/edit/{made['uuid']}", body), 403)
    assert "newer" in json.dumps(err)
    assert ok(admin.get_event(made["id"]))["Event"]["info"] == ev.info


def test_update_event_by_numeric_id(admin):
    ev = MISPEvent()
    ev.info = f"edit by id {tok()}"
    made = ok(admin.add_event(ev, pythonify=True))
    made.info = made.info + " (edited)"
    upd = ok(admin.update_event(made, event_id=int(made.id)))
    assert upd["Event"]["info"].endswith("(edited)")


def test_delete_event(admin):
    ev = MISPEvent()
    ev.info = f"to delete {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    made = ok(admin.add_event(ev, pythonify=True))
    before = len(ok(admin.events()))
    r = ok(admin.delete_event(made.id))
    assert r["saved"] is True and r["success"] is True
    assert r["message"] == "Event deleted."
    assert "url" in r and "name" in r
    assert admin.event_exists(made.uuid) is False
    misp_error(admin.get_event(made.uuid), 404)
    assert len(ok(admin.events())) == before - 1
    assert str(made.uuid) not in event_uuids(ok(admin.events()))


def test_delete_event_by_uuid(admin):
    ev = MISPEvent()
    ev.info = f"to delete by uuid {tok()}"
    made = ok(admin.add_event(ev, pythonify=True))
    r = ok(admin.delete_event(made))  # a MISPEvent: PyMISP puts its uuid in the path
    assert r["success"] is True
    assert admin.event_exists(made.id) is False


def test_delete_unknown_event(admin):
    before = len(ok(admin.events()))
    body = misp_error(admin.delete_event(str(uuid.uuid4())), 403)
    assert body.get("saved") is False
    assert "Event was not deleted." in json.dumps(body)
    assert len(ok(admin.events())) == before


def _published(client, eid):
    ev = ok(client.get_event(eid))["Event"]
    return ev if ev["published"] is True and int(ev["publish_timestamp"]) > 0 else None


def test_publish_unpublish(admin):
    ev = MISPEvent()
    ev.info = f"publish me {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    made = ok(admin.add_event(ev, pythonify=True))
    assert made.published is False
    r = ok(admin.publish(made))
    assert r["saved"] is True and r["success"] is True
    assert r["message"] in ("Job queued", "Event published without alerts")
    published = wait_until(lambda: _published(admin, made.id))
    assert published, "the event was not published"
    assert int(published["publish_timestamp"]) >= int(time.time()) - 120
    r = ok(admin.unpublish(made.id))
    assert r["saved"] is True and r["success"] is True
    assert wait_until(lambda: ok(admin.get_event(made.id))["Event"]["published"] is False)


def test_publish_with_alert(publisher_a):
    ev = MISPEvent()
    ev.info = f"alert me {tok()}"
    made = ok(publisher_a.add_event(ev, pythonify=True))
    r = ok(publisher_a.publish(made.id, alert=True))  # events/alert/<id>
    assert r["success"] is True
    assert wait_until(lambda: _published(publisher_a, made.id))


def test_publish_unknown_event(admin):
    misp_error(admin.publish(str(uuid.uuid4())), 403, 404)


def test_events_index_rows(admin, created):
    _, got = created
    rows = ok(admin.events())
    assert isinstance(rows, list)
    row = next(r for r in rows if r.get("uuid") == str(got.uuid))
    assert "Event" not in row
    missing = INDEX_ROW_FIELDS - set(row)
    assert not missing, f"events/index row lacks {sorted(missing)}: {row}"
    assert "Attribute" not in row and "Object" not in row
    assert row["attribute_count"] == "5"
    assert row["Orgc"]["name"] == "CERT-A"
    assert {et["Tag"]["name"] for et in row["EventTag"]} == {t.name for t in got.tags}


def test_events_index_pythonify(admin, created):
    _, got = created
    evs = ok(admin.events(pythonify=True))
    assert all(isinstance(e, MISPEvent) for e in evs)
    mine = next(e for e in evs if str(e.uuid) == str(got.uuid))
    assert mine.info == got.info
    assert mine.attributes == []


@pytest.fixture(scope="module")
def index_set(admin):
    """Three events for search_index: published+T1, unpublished+T2, old date."""
    t = tok()
    prefix = f"sidx-{t}"
    tag1, tag2 = f"sluis-test:sidx-{t}-1", f"sluis-test:sidx-{t}-2"
    e1 = MISPEvent(); e1.info = f"{prefix} one"; e1.add_tag(tag1); e1.add_attribute("ip-dst", next_ip())
    e2 = MISPEvent(); e2.info = f"{prefix} two"; e2.add_tag(tag2); e2.add_attribute("ip-dst", next_ip())
    e3 = MISPEvent(); e3.info = f"{prefix} three"; e3.date = dt.date(2020, 1, 15)
    made = [ok(admin.add_event(e, pythonify=True)) for e in (e1, e2, e3)]
    ok(admin.publish(made[0]))
    assert wait_until(lambda: _published(admin, made[0].id))
    return {"prefix": prefix, "tags": (tag1, tag2), "events": made,
            "uuids": [str(e.uuid) for e in made]}


def test_search_index_eventinfo(admin, index_set):
    u = index_set["uuids"]
    assert event_uuids(ok(admin.search_index(eventinfo=index_set["prefix"]))) == set(u)
    assert event_uuids(ok(admin.search_index(eventinfo=f"%{index_set['prefix']}%"))) == set(u)
    assert event_uuids(ok(admin.search_index(eventinfo=f"{index_set['prefix']} two"))) == {u[1]}
    assert ok(admin.search_index(eventinfo=f"no such info {tok()}")) == []


def test_search_index_published(admin, index_set):
    u = index_set["uuids"]
    p = index_set["prefix"]
    assert event_uuids(ok(admin.search_index(eventinfo=p, published=True))) == {u[0]}
    assert event_uuids(ok(admin.search_index(eventinfo=p, published=False))) == {u[1], u[2]}


def test_search_index_tags(admin, index_set):
    u = index_set["uuids"]
    t1, t2 = index_set["tags"]
    assert event_uuids(ok(admin.search_index(tags=[t1]))) == {u[0]}
    assert event_uuids(ok(admin.search_index(tags=[t1, t2]))) == {u[0], u[1]}
    # "Using ! in front of a value means NOT" (search_index's documentation).
    assert event_uuids(ok(admin.search_index(eventinfo=index_set["prefix"], tags=[f"!{t2}"]))) == {u[0], u[2]}


def test_search_index_eventid(admin, index_set):
    e = index_set["events"]
    assert event_uuids(ok(admin.search_index(eventid=e[1].id))) == {index_set["uuids"][1]}


def test_search_index_dates_and_timestamp(admin, index_set):
    u = index_set["uuids"]
    p = index_set["prefix"]
    assert event_uuids(ok(admin.search_index(eventinfo=p, date_to="2020-12-31"))) == {u[2]}
    assert event_uuids(ok(admin.search_index(eventinfo=p, date_from="2021-01-01"))) == {u[0], u[1]}
    assert event_uuids(ok(admin.search_index(eventinfo=p, timestamp=int(time.time()) - 3600))) == set(u)
    assert ok(admin.search_index(eventinfo=p, timestamp=int(time.time()) + 3600)) == []
    assert event_uuids(ok(admin.search_index(eventinfo=p, timestamp="1d"))) == set(u)


def test_search_index_org(admin, index_set):
    p = index_set["prefix"]
    assert event_uuids(ok(admin.search_index(eventinfo=p, org="CERT-A"))) == set(index_set["uuids"])
    assert ok(admin.search_index(eventinfo=p, org="CERT-B")) == []


def test_search_index_limit_page(admin, index_set):
    p = index_set["prefix"]
    page1 = ok(admin.search_index(eventinfo=p, limit=2, page=1))
    page2 = ok(admin.search_index(eventinfo=p, limit=2, page=2))
    assert len(page1) == 2 and len(page2) == 1
    assert event_uuids(page1) | event_uuids(page2) == set(index_set["uuids"])


def test_search_index_sort(admin, index_set):
    p = index_set["prefix"]
    asc = ok(admin.search_index(eventinfo=p, sort="id"))  # direction: asc
    ids = [int(r["id"]) for r in asc]
    assert ids == sorted(ids) and len(ids) == 3
    desc = ok(admin.search_index(eventinfo=p, sort="id", desc=True))
    ids = [int(r["id"]) for r in desc]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3


def test_search_index_pythonify(admin, index_set):
    evs = ok(admin.search_index(eventinfo=index_set["prefix"], pythonify=True))
    assert len(evs) == 3 and all(isinstance(e, MISPEvent) for e in evs)
    assert all(e.attributes == [] for e in evs)


def test_add_and_edit_with_metadata_answer_no_content(admin):
    """`events/add/metadata:1` and `events/edit/<id>/metadata:1` answer the
    event without its attributes (MISP's `fetchEvent(…, metadata)`; PyMISP's
    live `test_event_add_update_metadata`), while storing them."""
    ev = MISPEvent()
    ev.info = f"metadata {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    got = ok(admin.add_event(ev, metadata=True, pythonify=True))
    assert len(got.attributes) == 0 and got.info == ev.info
    assert len(ok(admin.get_event(got.id, pythonify=True)).attributes) == 1
    got.info = ev.info + " edited"
    got.add_attribute("domain", f"meta-{tok()}.example")
    edited = ok(admin.update_event(got, metadata=True, pythonify=True))
    assert len(edited.attributes) == 0 and edited.info == ev.info + " edited"
    assert len(ok(admin.get_event(got.id, pythonify=True)).attributes) == 2


def test_extended_events(admin, user_b):
    """An event that extends another (`extends_uuid`, set by an update as
    PyMISP's live `test_extend_event` does) keeps it, and `events/view/<id>`
    with `extended` shows the extensions' attributes and objects inside the
    extended event with `extensionEvents` keyed by id
    (`Event::__mergeExtensions`); only extensions the caller can see."""
    first = MISPEvent()
    first.info = f"extended {tok()}"
    first.distribution = 1
    first.add_attribute("ip-dst", next_ip())
    first = ok(admin.add_event(first, pythonify=True))
    second = MISPEvent()
    second.info = f"extension {tok()}"
    second.distribution = 1
    ext_value = f"ext-{tok()}.example"
    second.add_attribute("domain", ext_value)
    second = ok(admin.add_event(second, pythonify=True))
    private = MISPEvent()
    private.info = f"private extension {tok()}"
    private.distribution = 0
    private.add_attribute("domain", f"private-{tok()}.example")
    private = ok(admin.add_event(private, pythonify=True))
    got = ok(admin.update_event({"extends_uuid": str(first.uuid)}, event_id=second.id, pythonify=True))
    assert str(got.extends_uuid) == str(first.uuid)
    ok(admin.update_event({"extends_uuid": str(first.uuid)}, event_id=private.id))
    plain = ok(admin.get_event(first.id, pythonify=True))
    assert len(plain.attributes) == 1
    merged = ok(admin.get_event(first.id, extended=True))["Event"]
    values = {a["value"] for a in merged["Attribute"]}
    assert ext_value in values and len(values) == 3
    assert set(merged["extensionEvents"]) == {str(second.id), str(private.id)}
    assert merged["extensionEvents"][str(second.id)]["info"] == second.info
    seen_by_b = ok(user_b.get_event(first.id, extended=True))["Event"]
    assert set(seen_by_b["extensionEvents"]) == {str(second.id)}
    assert {a["value"] for a in seen_by_b["Attribute"]} == values - {private.attributes[0].value}


def test_a_user_may_unpublish_but_not_publish(admin, user_a):
    """MISP's ACL: `events/publish` needs perm_publish, `events/unpublish`
    only perm_modify (`ACLComponent`), so a User (role 3) unpublishes its
    organisation's event but cannot publish it."""
    ev = MISPEvent()
    ev.info = f"unpublish as user {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    made = ok(user_a.add_event(ev, pythonify=True))
    misp_error(user_a.publish(made.id), 403)
    ok(admin.publish(made.id))
    assert ok(user_a.get_event(made.id, pythonify=True)).published
    r = ok(user_a.unpublish(made.id))
    assert r["message"] == "Event unpublished."
    assert not ok(user_a.get_event(made.id, pythonify=True)).published
