"""objects/*: add (with a real template), view, edit, delete (soft and hard)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from pymisp import MISPEvent, MISPObject

from misp_helpers import misp_error, next_ip, ok, tok


@pytest.fixture
def event(admin):
    ev = MISPEvent()
    ev.info = f"object tests {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    return ok(admin.add_event(ev, pythonify=True))


def domain_ip(t: str | None = None) -> MISPObject:
    t = t or tok()
    o = MISPObject("domain-ip")
    o.add_attribute("domain", value=f"obj-{t}.example.org")
    o.add_attribute("ip", value=next_ip())
    o.comment = f"object {t}"
    return o


def test_add_object(admin, event):
    o = domain_ip()
    # What PyMISP sends: flat object, distribution "5", template identity.
    wire = json.loads(o.to_json())
    assert wire["name"] == "domain-ip" and wire["template_uuid"] and wire["template_version"]
    got = ok(admin.add_object(event, o, pythonify=True))
    assert isinstance(got, MISPObject)
    assert str(got.uuid) == str(o.uuid)
    assert str(got.id).isdigit() and str(got.event_id) == str(event.id)
    assert got.name == "domain-ip" and got["meta-category"] == "network"
    assert got.template_uuid == o.template_uuid
    assert str(got.template_version) == str(o.template_version)
    assert int(got.distribution) == 5
    assert got.comment == o.comment
    rel = {a.object_relation: a for a in got.attributes}
    assert set(rel) == {"domain", "ip"}
    assert rel["domain"].value == o.get_attributes_by_relation("domain")[0].value
    assert rel["ip"].type == "ip-dst"
    for a in got.attributes:
        assert str(a.object_id) == str(got.id) and str(a.event_id) == str(event.id)
    ev = ok(admin.get_event(event.id, pythonify=True))
    assert [str(x.uuid) for x in ev.objects] == [str(o.uuid)]


def test_add_object_raw_answer_shape(admin, event):
    r = ok(admin.add_object(event.id, domain_ip()))
    ob = r["Object"]
    for k in ("id", "event_id", "timestamp", "distribution", "sharing_group_id", "template_version"):
        assert isinstance(ob.get(k), str) and ob[k].isdigit(), f"Object.{k} = {ob.get(k)!r}"
    assert isinstance(ob["deleted"], bool) and ob["deleted"] is False
    assert len(ob["Attribute"]) == 2


def test_add_object_to_unknown_event(admin):
    misp_error(admin.add_object(str(uuid.uuid4()), domain_ip()), 403, 404)


def test_add_object_invalid_attribute_refused(admin, event):
    before = ok(admin.get_event(event.id))
    body = {"name": "domain-ip", "meta-category": "network", "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734",
            "template_version": "11", "distribution": "5", "sharing_group_id": "0",
            "Attribute": [{"object_relation": "ip", "type": "ip-dst", "value": "this is not an ip"}]}
    misp_error(admin.direct_call(f"objects/add/{event.id}", body))
    assert ok(admin.get_event(event.id)) == before


def test_get_object(admin, event):
    o = ok(admin.add_object(event, domain_ip(), pythonify=True))
    by_id = ok(admin.get_object(o.id))
    by_uuid = ok(admin.get_object(str(o.uuid)))
    assert by_id == by_uuid
    assert by_id["Object"]["uuid"] == str(o.uuid) and len(by_id["Object"]["Attribute"]) == 2
    py = ok(admin.get_object(o, pythonify=True))
    assert isinstance(py, MISPObject) and py.name == "domain-ip"


def test_get_object_unknown(admin):
    misp_error(admin.get_object(str(uuid.uuid4())), 403, 404, 405)


def test_update_object(admin, event):
    o = ok(admin.add_object(event, domain_ip(), pythonify=True))
    loaded = ok(admin.get_object(o.uuid, pythonify=True))
    loaded.comment = "updated comment"
    loaded.add_attribute("port", value="8443")
    got = ok(admin.update_object(loaded, pythonify=True))
    assert got.comment == "updated comment"
    rel = {a.object_relation: a.value for a in got.attributes}
    assert rel.get("port") == "8443"
    assert {"domain", "ip", "port"} <= set(rel)
    stored = ok(admin.get_object(o.id))["Object"]
    assert stored["comment"] == "updated comment" and len(stored["Attribute"]) == 3


def test_delete_object_soft(admin, event):
    o = ok(admin.add_object(event, domain_ip(), pythonify=True))
    r = ok(admin.delete_object(o))
    assert r.get("saved") is True and r.get("success") is True
    assert r["message"] == "Object deleted"
    ev = ok(admin.get_event(event.id, pythonify=True))
    assert str(o.uuid) not in {str(x.uuid) for x in ev.objects}
    ev = ok(admin.get_event(event.id, deleted=True))
    gone = next(x for x in ev["Event"]["Object"] if x["uuid"] == str(o.uuid))
    assert gone["deleted"] is True


def test_delete_object_hard(admin, event):
    o = ok(admin.add_object(event, domain_ip(), pythonify=True))
    r = ok(admin.delete_object(o.id, hard=True))
    assert r["message"] == "Object deleted"
    ev = ok(admin.get_event(event.id, deleted=True))
    assert str(o.uuid) not in {x["uuid"] for x in ev["Event"].get("Object", [])}
    misp_error(admin.get_object(o.uuid), 403, 404, 405)


def test_delete_object_unknown(admin):
    misp_error(admin.delete_object(str(uuid.uuid4())), 403, 404)


def test_event_update_keeps_unchanged_objects_and_deletes_marked_ones(admin):
    """An event update (PyMISP `update_event`) leaves an object it sends back
    unchanged with its timestamp, and deletes an object marked `deleted`
    (`MispObject::editObject`: an incoming timestamp not newer than the stored
    one skips the object; `deleted` soft-deletes it and its attributes)."""
    ev = MISPEvent()
    ev.info = f"objects in updates {tok()}"
    keep = ev.add_object(name="domain-ip")
    keep.add_attribute("domain", value=f"keep-{tok()}.example")
    keep.add_attribute("ip", value=next_ip())
    drop = ev.add_object(name="domain-ip")
    drop.add_attribute("domain", value=f"drop-{tok()}.example")
    drop.add_attribute("ip", value=next_ip())
    made = ok(admin.add_event(ev, pythonify=True))
    time.sleep(1.1)
    before = {str(o.uuid): int(o.timestamp.timestamp()) for o in made.objects}
    made.info = ev.info + " (edited)"
    for o in made.objects:
        if str(o.uuid) == str(drop.uuid):
            o.delete()
    got = ok(admin.update_event(made, pythonify=True))
    assert got.info == ev.info + " (edited)"
    live = {str(o.uuid): o for o in got.objects if not o.deleted}
    assert str(drop.uuid) not in live, "an object marked deleted is still live"
    assert int(live[str(keep.uuid)].timestamp.timestamp()) == before[str(keep.uuid)]
    view = ok(admin.get_event(made.id, pythonify=True))
    assert {str(o.uuid) for o in view.objects} == {str(keep.uuid)}


def test_delete_with_update(admin):
    """PyMISP's live `test_delete_with_update`: `update_attribute` and
    `update_object` with `deleted = True` soft-delete (MISP's `editObject` /
    `editAttribute` save the flag), and the event fetched with `deleted`
    shows both as deleted."""
    ev = MISPEvent()
    ev.info = f"delete with update {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    obj = MISPObject("file")
    obj.add_attribute("filename", f"foo-{tok()}")
    ev.add_object(obj)
    first = ok(admin.add_event(ev, pythonify=True))
    first.attributes[0].deleted = True
    deleted_attribute = ok(admin.update_attribute(first.attributes[0], pythonify=True))
    assert deleted_attribute.deleted
    first.objects[0].deleted = True
    deleted_object = ok(admin.update_object(first.objects[0], pythonify=True))
    assert deleted_object.deleted
    again = ok(admin.get_event(first, deleted=True, pythonify=True))
    assert again.attributes[0].deleted
    assert again.objects[0].deleted


def test_object_templates(user_a):
    """`objectTemplates/index` and `objectTemplates/view/<uuid>` (PyMISP's
    live `test_object_template`: find 'file' in the index, then view it by
    uuid), in `ObjectTemplatesController`'s shapes."""
    rows = ok(user_a.object_templates())
    assert rows and all(set(r) >= {"ObjectTemplate", "Organisation"} for r in rows)
    file_row = next(r["ObjectTemplate"] for r in rows if r["ObjectTemplate"]["name"] == "file")
    assert file_row["meta-category"] == "file" and file_row["id"].isdigit()
    assert isinstance(file_row["requirements"]["requiredOneOf"], list)
    t = ok(user_a.get_object_template(file_row["uuid"], pythonify=True))
    assert t.name == "file"
    raw = ok(user_a.get_object_template(file_row["id"]))
    relations = {e["object_relation"]: e for e in raw["ObjectTemplateElement"]}
    assert relations["filename"]["type"] == "filename"
    assert relations["md5"]["type"] == "md5"
    misp_error(user_a.get_object_template("999999"), 404)
