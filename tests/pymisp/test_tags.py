"""tags/attachTagToObject, tags/removeTagFromObject (events and attributes), tags/index."""

from __future__ import annotations

import uuid

import pytest
from pymisp import MISPEvent, MISPTag

from misp_helpers import misp_error, next_ip, ok, tok


@pytest.fixture
def event(admin):
    ev = MISPEvent()
    ev.info = f"tag tests {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    return ok(admin.add_event(ev, pythonify=True))


def event_tags(client, eid) -> dict[str, dict]:
    return {t["name"]: t for t in ok(client.get_event(eid))["Event"].get("Tag", [])}


def attribute_tags(client, aid) -> dict[str, dict]:
    return {t["name"]: t for t in ok(client.get_attribute(aid))["Attribute"].get("Tag", [])}


def assert_tag_success(r: dict, verb: str):
    assert r.get("saved") is True and r.get("success") is True, r
    assert verb in r["message"] and r["name"] == r["message"], r
    assert "url" in r


def test_tag_and_untag_event(admin, event):
    name = f"sluis-test:tag-{tok()}"
    r = ok(admin.tag(event, name))  # a MISPEvent: its uuid is sent
    assert_tag_success(r, "successfully attached")
    tags = event_tags(admin, event.id)
    assert name in tags and tags[name]["local"] is False
    r = ok(admin.untag(str(event.uuid), name))
    assert_tag_success(r, "successfully removed")
    assert name not in event_tags(admin, event.id)


def test_tag_event_local(admin, event):
    name = f"sluis-test:local-{tok()}"
    ok(admin.tag(str(event.uuid), name, local=True))
    assert event_tags(admin, event.id)[name]["local"] is True


def test_tag_with_misptag(admin, event):
    t = MISPTag()
    t.name = f"sluis-test:misptag-{tok()}"
    ok(admin.tag(event, t))
    assert t.name in event_tags(admin, event.id)


def test_tag_and_untag_attribute(admin, event):
    a = event.attributes[0]
    name = f"sluis-test:attr-tag-{tok()}"
    r = ok(admin.tag(a, name))
    assert_tag_success(r, "successfully attached")
    assert name in attribute_tags(admin, a.uuid)
    # Attribute tags do not become event tags.
    assert name not in event_tags(admin, event.id)
    ev = ok(admin.get_event(event.id, pythonify=True))
    assert name in {t.name for t in ev.attributes[0].tags}
    r = ok(admin.untag(str(a.uuid), name))
    assert_tag_success(r, "successfully removed")
    assert name not in attribute_tags(admin, a.uuid)


def test_tag_unknown_uuid(admin):
    misp_error(admin.tag(str(uuid.uuid4()), "tlp:green"), 403, 404)


def test_untag_absent_tag(admin, event):
    before = event_tags(admin, event.id)
    r = admin.untag(event, f"sluis-test:never-attached-{tok()}")
    misp_error(r, 403, 404)
    assert event_tags(admin, event.id) == before


def test_tags_index(admin, event):
    name = f"sluis-test:index-{tok()}"
    ok(admin.tag(event, name))
    tags = ok(admin.tags())  # PyMISP returns the value of 'Tag'
    assert isinstance(tags, list)
    names = {t["name"] for t in tags}
    assert name in names
    py = ok(admin.tags(pythonify=True))
    assert all(isinstance(t, MISPTag) for t in py)
    assert name in {t.name for t in py}
