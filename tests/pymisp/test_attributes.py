"""attributes/*: add (single and list), view, HEAD, edit, delete (soft and hard),
restore."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from pymisp import MISPAttribute, MISPEvent

from misp_helpers import all_attributes, misp_error, next_ip, ok, tok


@pytest.fixture
def event(admin):
    ev = MISPEvent()
    ev.info = f"attribute tests {tok()}"
    ev.add_attribute("ip-dst", next_ip(), comment="seed")
    return ok(admin.add_event(ev, pythonify=True))


def attr(type_: str, value: str, **kw) -> MISPAttribute:
    a = MISPAttribute()
    a.from_dict(type=type_, value=value, **kw)
    return a


def event_attr_uuids(client, eid, **kw) -> set[str]:
    return {a["uuid"] for a in all_attributes(ok(client.get_event(eid, **kw)))}


def test_add_attribute_single(admin, event):
    a = attr("domain", f"single-{tok()}.example.com", comment="added alone", to_ids=False)
    a.uuid = str(uuid.uuid4())
    got = ok(admin.add_attribute(event, a, pythonify=True))
    assert isinstance(got, MISPAttribute)
    assert str(got.uuid) == a.uuid
    assert str(got.id).isdigit()
    assert str(got.event_id) == str(event.id)
    assert got.value == a.value and got.type == "domain" and got.category == "Network activity"
    assert got.comment == "added alone" and got.to_ids is False
    assert int(got.distribution) == 5
    assert a.uuid in event_attr_uuids(admin, event.id)


def test_add_attribute_raw_answer_shape(admin, event):
    r = ok(admin.add_attribute(event.id, {"type": "ip-src", "value": next_ip()}))
    assert set(r) >= {"Attribute"}
    a = r["Attribute"]
    for k in ("id", "event_id", "object_id", "timestamp", "distribution", "sharing_group_id"):
        assert isinstance(a.get(k), str) and a[k].isdigit(), f"Attribute.{k} = {a.get(k)!r}"
    assert a["object_id"] == "0"
    assert isinstance(a["to_ids"], bool) and isinstance(a["deleted"], bool)
    assert a["deleted"] is False


def test_add_attribute_server_defaults(admin, event):
    """Category and to_ids left out get MISP's sane defaults for the type."""
    h = ok(admin.direct_call(f"attributes/add/{event.id}", {"type": "sha256", "value": "a" * 64}))["Attribute"]
    assert h["category"] == "Payload delivery" and h["to_ids"] is True
    t = ok(admin.direct_call(f"attributes/add/{event.uuid}", {"type": "text", "value": f"note {tok()}"}))["Attribute"]
    assert t["category"] == "Other" and t["to_ids"] is False
    assert t["distribution"] == "5"


def test_add_attribute_with_tags_and_distribution(admin, event):
    t = f"sluis-test:attr-{tok()}"
    a = attr("url", f"https://tagged-{tok()}.example.com/", distribution=0, Tag=[{"name": t}])
    got = ok(admin.add_attribute(event, a))
    assert got["Attribute"]["distribution"] == "0"
    view = ok(admin.get_attribute(got["Attribute"]["uuid"]))["Attribute"]
    assert t in {x["name"] for x in view.get("Tag", [])}


def test_add_attribute_list(admin, event):
    values = [next_ip(), next_ip(), f"list-{tok()}.example.com"]
    attrs = [attr("ip-dst", values[0]), attr("ip-dst", values[1]), attr("domain", values[2])]
    r = ok(admin.add_attribute(event, attrs))
    assert isinstance(r["Attribute"], list) and len(r["Attribute"]) == 3
    assert "errors" not in r
    assert {a["value"] for a in r["Attribute"]} == set(values)
    stored = {a["value"] for a in all_attributes(ok(admin.get_event(event.id)))}
    assert set(values) <= stored


def test_add_attribute_list_pythonify_with_failure(admin, event):
    dup = event.attributes[0].value  # already in the event
    fresh = next_ip()
    r = admin.add_attribute(event, [attr("ip-dst", fresh), attr("ip-dst", dup), attr("domain", f"ok-{tok()}.example.com")],
                            pythonify=True)
    assert isinstance(r, dict) and "attributes" in r, r
    assert len(r["attributes"]) == 2 and all(isinstance(a, MISPAttribute) for a in r["attributes"])
    assert "errors" in r and r["errors"], r
    assert fresh in {a["value"] for a in all_attributes(ok(admin.get_event(event.id)))}


def test_add_attribute_duplicate_refused(admin, event):
    before = ok(admin.get_event(event.id))
    r = admin.add_attribute(event, attr("ip-dst", event.attributes[0].value))
    body = misp_error(r, 403)
    assert body.get("saved") is False
    assert "value" in body.get("errors", {}), body
    assert "A similar attribute already exists for this event." in json.dumps(body["errors"]["value"])
    assert ok(admin.get_event(event.id)) == before


def test_add_attribute_to_unknown_event(admin):
    misp_error(admin.add_attribute(str(uuid.uuid4()), attr("ip-dst", next_ip())), 403, 404)


def test_get_attribute_by_id_and_uuid(admin, event):
    seed = event.attributes[0]
    by_id = ok(admin.get_attribute(seed.id))
    by_uuid = ok(admin.get_attribute(str(seed.uuid)))
    assert by_id == by_uuid
    a = by_id["Attribute"]
    assert a["uuid"] == str(seed.uuid) and a["value"] == seed.value and a["event_id"] == str(event.id)
    py = ok(admin.get_attribute(seed, pythonify=True))
    assert isinstance(py, MISPAttribute) and py.value == seed.value


def test_get_attribute_unknown(admin):
    # MISP itself answers 405 "Invalid attribute"; 404 is as good for PyMISP.
    body = misp_error(admin.get_attribute(str(uuid.uuid4())), 404, 405)
    assert "attribute" in body["message"].lower()


def test_attribute_exists(admin, event):
    seed = event.attributes[0]
    assert admin.attribute_exists(seed.id) is True
    assert admin.attribute_exists(str(seed.uuid)) is True
    assert admin.attribute_exists(str(uuid.uuid4())) is False


def test_update_attribute_whole(admin, event):
    a = ok(admin.get_attribute(event.attributes[0], pythonify=True))
    old_ts = int(a.timestamp.timestamp())
    time.sleep(1.1)
    a.comment = "edited whole"
    a.to_ids = False
    got = ok(admin.update_attribute(a, pythonify=True))
    assert got.comment == "edited whole" and got.to_ids is False
    assert int(got.timestamp.timestamp()) > old_ts
    stored = ok(admin.get_attribute(a.uuid))["Attribute"]
    assert stored["comment"] == "edited whole" and stored["to_ids"] is False
    assert stored["value"] == event.attributes[0].value


def test_update_attribute_partial(admin, event):
    seed = event.attributes[0]
    got = ok(admin.update_attribute({"comment": "partial edit"}, attribute_id=str(seed.uuid)))
    assert got["Attribute"]["comment"] == "partial edit"
    stored = ok(admin.get_attribute(seed.id))["Attribute"]
    assert stored["comment"] == "partial edit"
    assert stored["value"] == seed.value and stored["type"] == seed.type
    assert stored["category"] == seed.category and stored["to_ids"] is seed.to_ids


def test_update_attribute_invalid_value_refused(admin, event):
    seed = event.attributes[0]
    before = ok(admin.get_attribute(seed.uuid))
    body = misp_error(admin.update_attribute({"value": "not an ip address"}, attribute_id=str(seed.uuid)), 403)
    assert body.get("saved") is False
    assert ok(admin.get_attribute(seed.uuid)) == before


def test_update_attribute_unknown(admin):
    misp_error(admin.update_attribute({"comment": "x"}, attribute_id=str(uuid.uuid4())), 403, 404)


def test_delete_attribute_soft_and_restore(admin, event):
    a = ok(admin.add_attribute(event, attr("ip-dst", next_ip()), pythonify=True))
    r = ok(admin.delete_attribute(a.id))
    assert r["message"] == "Attribute deleted."
    assert str(a.uuid) not in event_attr_uuids(admin, event.id)
    with_deleted = {x["uuid"]: x for x in all_attributes(ok(admin.get_event(event.id, deleted=True)))}
    assert with_deleted[str(a.uuid)]["deleted"] is True
    assert admin.attribute_exists(str(event.attributes[0].uuid)) is True
    # Already soft-deleted: 404.
    misp_error(admin.delete_attribute(a.uuid), 404)
    restored = ok(admin.restore_attribute(a.uuid, pythonify=True))
    assert isinstance(restored, MISPAttribute)
    assert str(restored.uuid) == str(a.uuid) and restored.deleted is False
    assert str(a.uuid) in event_attr_uuids(admin, event.id)


def test_delete_attribute_hard(admin, event):
    a = ok(admin.add_attribute(event, attr("domain", f"hard-{tok()}.example.com"), pythonify=True))
    r = ok(admin.delete_attribute(a, hard=True))
    assert r["message"] == "Attribute deleted."
    assert str(a.uuid) not in event_attr_uuids(admin, event.id, deleted=True)
    assert admin.attribute_exists(a.uuid) is False
    misp_error(admin.get_attribute(a.uuid), 404, 405)


def test_delete_attribute_hard_after_soft(admin, event):
    a = ok(admin.add_attribute(event, attr("ip-src", next_ip()), pythonify=True))
    ok(admin.delete_attribute(a.uuid))
    ok(admin.delete_attribute(a.uuid, hard=True))
    assert str(a.uuid) not in event_attr_uuids(admin, event.id, deleted=True)


def test_delete_attribute_unknown(admin):
    misp_error(admin.delete_attribute(str(uuid.uuid4())), 404)


def test_restore_attribute_unknown(admin):
    misp_error(admin.restore_attribute(str(uuid.uuid4())), 403, 404)


def test_attribute_statistics(admin):
    """`attributes/attributeStatistics/type` and `/category/percentage`
    answer MISP's shapes (`AttributesController::attributeStatistics`):
    counts as strings, percentages as PHP prints round(x, 3) with '%'."""
    ev = MISPEvent()
    ev.info = f"statistics {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    ok(admin.add_event(ev))
    by_type = ok(admin.attributes_statistics(context="type"))
    assert isinstance(by_type, dict) and by_type
    assert all(isinstance(v, str) and v.isdigit() for v in by_type.values())
    assert int(by_type["ip-dst"]) >= 1
    pct = ok(admin.attributes_statistics(context="category", percentage=True))
    assert all(v.endswith("%") for v in pct.values())
    assert abs(sum(float(v[:-1]) for v in pct.values()) - 100) < 0.01
    misp_error(admin.direct_call("attributes/attributeStatistics/colour"), 405)


def test_tag_statistics(admin):
    """`tags/tagStatistics/<percentage>/<keysort>`: `{"tags": {name: "n"},
    "taxonomies": []}` (`TagsController::tagStatistics`; no taxonomy enabled)."""
    name = f"sluis-stats:{tok()}"
    ev = MISPEvent()
    ev.info = f"tag statistics {tok()}"
    ev.add_tag(name)
    ok(admin.add_event(ev))
    stats = ok(admin.tags_statistics())
    assert stats["taxonomies"] == []
    assert stats["tags"][name] == "1"
    pct = ok(admin.tags_statistics(percentage=True, name_sort=True))
    assert pct["tags"][name].endswith("%")
