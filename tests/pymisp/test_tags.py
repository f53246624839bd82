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


# Issue 12: the tag catalogue (MISP's TagsController; PyMISP's test_tags).


def test_tags_in_views_have_ids_and_colours(admin, event):
    """Tags on events and attributes carry the catalogue's numeric id and a
    colour (MISP's default for a tag created without one: '#' and the first
    six hex digits of the MD5 of its name, `Tag::tagColor`)."""
    import hashlib

    name = f"sluis-test:colour-{tok()}"
    ok(admin.tag(event, name))
    ok(admin.tag(event.attributes[0], name))
    t = event_tags(admin, event.id)[name]
    assert isinstance(t["id"], str) and t["id"].isdigit(), t
    assert t["colour"] == "#" + hashlib.md5(name.encode()).hexdigest()[:6], t
    at = attribute_tags(admin, event.attributes[0].id)[name]
    assert at["id"] == t["id"] and at["colour"] == t["colour"]
    row = ok(admin.get_tag(t["id"]))
    assert row["name"] == name and row["id"] == t["id"]
    assert row["count"] == 1 and row["attribute_count"] == 1
    assert row["exportable"] is True and row["hide_tag"] is False


def test_tag_catalogue_add_edit_search_delete(admin):
    """PyMISP's live `test_tags`, step by step: add (string ids echoed),
    disable and enable (`hide_tag` a boolean), search with a LIKE pattern,
    rename, delete ('Tag deleted.')."""
    base = f"sluis catalogue {tok()}"
    t = MISPTag()
    t.name = base
    t.exportable = False
    t.org_id = 1
    t.user_id = 1
    new = ok(admin.add_tag(t, pythonify=True))
    assert new.name == base and new.exportable is False
    assert str(new.org_id) == "1" and str(new.user_id) == "1"
    again = ok(admin.add_tag({"name": base.upper()}))
    assert again["Tag"]["id"] == str(new.id)  # MISP's REST shortcut
    hidden = ok(admin.disable_tag(new, pythonify=True))
    assert hidden.hide_tag is True
    shown = ok(admin.enable_tag(hidden, pythonify=True))
    assert shown.hide_tag is False
    found = ok(admin.search_tags(base[:12] + "%", pythonify=True))
    assert base in {x.name for x in found}
    assert admin.search_tags(f"not a tag {tok()}") == []
    shown.name = base + " renamed"
    renamed = ok(admin.update_tag(shown, pythonify=True))
    assert renamed.name == base + " renamed"
    assert ok(admin.get_tag(new.id))["name"] == base + " renamed"
    gone = ok(admin.delete_tag(renamed))
    assert gone["message"] == "Tag deleted."
    misp_error(admin.get_tag(new.id), 404, 405)


def test_tag_restrictions_and_editor_rights(admin, user_a, event, org_b):
    """A tag restricted to an organisation cannot be attached by another
    ("This tag can only be set by a fixed organisation."); a user who is not a
    tag editor attaches catalogue tags but cannot create one by attaching it,
    nor add one (`tags/add` needs perm_tag_editor)."""
    only_b = ok(admin.add_tag({"name": f"only-b {tok()}", "org_id": org_b["id"]}))["Tag"]
    r = admin.tag(event, only_b["name"])
    ok(r)  # a site admin may
    ev = MISPEvent()
    ev.info = f"restricted tags {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    own = ok(user_a.add_event(ev, pythonify=True))
    err = misp_error(user_a.tag(own, only_b["name"]), 403)
    assert "fixed organisation" in str(err), err
    known = ok(admin.add_tag({"name": f"known {tok()}"}))["Tag"]
    assert_tag_success(ok(user_a.tag(own, known["name"])), "successfully attached")
    err = misp_error(user_a.tag(own, f"unknown {tok()}"), 403)
    assert "insufficient privileges to create it" in str(err), err
    misp_error(user_a.add_tag({"name": f"user-made {tok()}"}), 403)


def test_tags_on_invisible_data_stay_hidden(admin, user_a, user_b):
    """A tag is derived data of what it tags: one that is only on another
    organisation's private event is not in `tags/index`, `tags/search` or
    `tags/view` for a user who cannot see that event (answered as an unknown
    tag), while a tag on no data is listed for everyone, as MISP lists its tag
    table. (MISP lists every tag of its table to everyone: sluis is stricter.)"""
    secret = f"case:operation-{tok()}"
    ev = MISPEvent()
    ev.info = f"private {tok()}"
    ev.distribution = 0
    ev.add_attribute("ip-dst", next_ip())
    ev.add_tag(secret)
    made = ok(user_a.add_event(ev, pythonify=True))
    row = next(t for t in ok(admin.tags()) if t["name"] == secret)
    assert secret in {t["name"] for t in ok(user_a.tags())}
    assert secret not in {t["name"] for t in ok(user_b.tags())}
    assert user_b.search_tags(secret) == []
    misp_error(user_b.get_tag(row["id"]), 404, 405)
    assert ok(user_a.get_tag(row["id"]))["name"] == secret
    free = ok(admin.add_tag({"name": f"free {tok()}"}))["Tag"]
    assert free["name"] in {t["name"] for t in ok(user_b.tags())}
    assert made.id
