"""Who sees and who may change what, through PyMISP: distribution 0/1/4,
per-attribute distribution, sharing-group membership, roles (user, publisher,
read-only) and sync keys."""

from __future__ import annotations

import uuid

import pytest
import requests
from pymisp import MISPEvent, MISPSharingGroup, MISPUser
from pymisp.exceptions import PyMISPError

from conftest import ROLE_SYNC, connect
from misp_helpers import all_attributes, attr_values, event_uuids, misp_error, next_ip, ok, tok, wait_until


def make_event(client, distribution: int, sharing_group_id=None, **kw):
    t = tok()
    ev = MISPEvent()
    ev.info = f"visibility d{distribution} {t}"
    ev.distribution = distribution
    if sharing_group_id is not None:
        ev.sharing_group_id = sharing_group_id
    ev.add_tag(f"sluis-test:vis-{t}")
    ev.add_attribute("ip-dst", next_ip())
    ev.add_attribute("domain", f"vis-{t}.example.com")
    made = ok(client.add_event(ev, pythonify=True))
    return made, t


def invisible_to(client, made, t):
    """Asserts every read path hides the event from `client`."""
    ip = made.attributes[0].value
    body = misp_error(client.get_event(made.id), 404)
    assert body["name"] == "Invalid event."
    misp_error(client.get_event(str(made.uuid)), 404)
    assert client.event_exists(made.uuid) is False
    assert str(made.uuid) not in event_uuids(ok(client.events()))
    assert ok(client.search_index(eventinfo=made.info)) == []
    assert ok(client.search(controller="events", value=ip)) == []
    assert ok(client.search(controller="attributes", value=ip)) == {"Attribute": []}
    assert ok(client.search(controller="events", tags=f"sluis-test:vis-{t}")) == []
    text = client.search(controller="attributes", value=ip, return_format="csv")
    assert isinstance(text, str) and ip not in text


def visible_to(client, made):
    assert ok(client.get_event(made.uuid))["Event"]["uuid"] == str(made.uuid)
    assert client.event_exists(made.id) is True
    assert str(made.uuid) in event_uuids(ok(client.events()))
    assert event_uuids(ok(client.search_index(eventinfo=made.info))) == {str(made.uuid)}
    ip = made.attributes[0].value
    assert event_uuids(ok(client.search(controller="events", value=ip))) == {str(made.uuid)}
    assert attr_values(ok(client.search(controller="attributes", value=ip))) == [ip]


# ------------------------------------------------------------------ get/index paths (no restSearch)


def test_org_only_event_hidden_from_other_org_get_and_index(user_a, user_b):
    made, _ = make_event(user_a, 0)
    body = misp_error(user_b.get_event(made.id), 404)
    assert body["name"] == "Invalid event."
    misp_error(user_b.get_event(str(made.uuid)), 404)
    assert user_b.event_exists(made.uuid) is False
    assert str(made.uuid) not in event_uuids(ok(user_b.events()))
    assert ok(user_b.search_index(eventinfo=made.info)) == []
    assert ok(user_b.search_index(eventid=made.id)) == []
    # Same organisation: visible.
    assert ok(user_a.get_event(made.id))["Event"]["uuid"] == str(made.uuid)


def test_invisible_and_unknown_answer_alike(user_a, user_b):
    made, _ = make_event(user_a, 0)
    hidden = misp_error(user_b.get_event(made.uuid), 404)
    unknown = misp_error(user_b.get_event(str(uuid.uuid4())), 404)
    assert {k: v for k, v in hidden.items() if k != "url"} == {k: v for k, v in unknown.items() if k != "url"}


def test_org_only_event_hidden_everywhere(user_a, user_b, publisher_a):
    made, t = make_event(user_a, 0)
    invisible_to(user_b, made, t)
    visible_to(publisher_a, made)


def test_community_event_visible_to_other_org(user_a, user_b):
    made, _ = make_event(user_a, 1)
    visible_to(user_b, made)


def test_attribute_distribution_zero_redacted(user_a, user_b):
    t = tok()
    ev = MISPEvent()
    ev.info = f"mixed distribution {t}"
    ev.distribution = 1
    shared = ev.add_attribute("ip-dst", next_ip())
    private = ev.add_attribute("ip-dst", next_ip(), distribution=0)
    made = ok(user_a.add_event(ev, pythonify=True))
    seen = {a["value"] for a in all_attributes(ok(user_b.get_event(made.id)))}
    assert seen == {shared.value}
    assert ok(user_b.get_event(made.id))["Event"]["attribute_count"] == "1"
    row = next(r for r in ok(user_b.search_index(eventinfo=made.info)))
    assert row["attribute_count"] == "1"
    assert {a["value"] for a in all_attributes(ok(user_a.get_event(made.id)))} == {shared.value, private.value}


def test_attribute_distribution_zero_redacted_in_search(user_a, user_b):
    ev = MISPEvent()
    ev.info = f"mixed distribution search {tok()}"
    ev.distribution = 1
    private = ev.add_attribute("ip-dst", next_ip(), distribution=0)
    ev.add_attribute("ip-dst", next_ip())
    made = ok(user_a.add_event(ev, pythonify=True))
    assert ok(user_b.search(controller="attributes", value=private.value)) == {"Attribute": []}
    assert ok(user_b.search(controller="events", value=private.value)) == []
    r = ok(user_b.search(controller="events", eventid=made.id))
    assert private.value not in {a["value"] for a in all_attributes(r[0])}


@pytest.fixture
def sg(admin, user_a, org_a):
    s = MISPSharingGroup()
    s.name = f"vis sg {tok()}"
    s.releasability = "test"
    return ok(user_a.add_sharing_group(s, pythonify=True))


def test_sharing_group_event_visible_after_add_org_get_and_index(user_a, user_b, org_b, sg):
    made, _ = make_event(user_a, 4, sharing_group_id=sg.id)
    assert int(ok(user_a.get_event(made.id))["Event"]["sharing_group_id"]) == int(sg.id)
    misp_error(user_b.get_event(made.id), 404)
    assert ok(user_b.search_index(eventinfo=made.info)) == []
    ok(user_a.add_org_to_sharing_group(sg, org_b["uuid"]))
    assert ok(user_b.get_event(made.id))["Event"]["uuid"] == str(made.uuid)
    assert event_uuids(ok(user_b.search_index(eventinfo=made.info))) == {str(made.uuid)}
    ok(user_a.remove_org_from_sharing_group(sg, org_b["uuid"]))
    misp_error(user_b.get_event(made.id), 404)


def test_sharing_group_event_visible_after_add_org_search(user_a, user_b, org_b, sg):
    made, t = make_event(user_a, 4, sharing_group_id=sg.id)
    invisible_to(user_b, made, t)
    ok(user_a.add_org_to_sharing_group(sg.uuid, org_b["uuid"]))
    visible_to(user_b, made)


def test_sharing_group_attribute_in_community_event(user_a, user_b, org_b, sg):
    ev = MISPEvent()
    ev.info = f"sg attribute {tok()}"
    ev.distribution = 1
    a = ev.add_attribute("ip-dst", next_ip(), distribution=4, sharing_group_id=sg.id)
    made = ok(user_a.add_event(ev, pythonify=True))
    assert all_attributes(ok(user_b.get_event(made.id))) == []
    ok(user_a.add_org_to_sharing_group(sg, org_b["uuid"]))
    assert [x["value"] for x in all_attributes(ok(user_b.get_event(made.id)))] == [a.value]


# ------------------------------------------------------------------ who may change what


def test_other_org_cannot_modify(user_a, user_b, admin):
    made, _ = make_event(user_a, 1)
    before = ok(admin.get_event(made.id))
    ev = ok(user_b.get_event(made.id, pythonify=True))
    ev.info = "hijacked"
    body = misp_error(user_b.update_event(ev), 403, 404)
    assert body["message"]
    misp_error(user_b.delete_event(made.id), 403, 404)
    misp_error(user_b.publish(made.id), 403, 404)
    assert ok(admin.get_event(made.id)) == before


def test_other_org_cannot_add_attribute(user_a, user_b, admin):
    made, _ = make_event(user_a, 1)
    before = ok(admin.get_event(made.id))
    # direct_call: PyMISP's add_attribute would retry a 403 as a proposal.
    r = user_b.direct_call(f"attributes/add/{made.id}", {"type": "ip-dst", "value": next_ip()})
    misp_error(r, 403, 404)
    assert ok(admin.get_event(made.id)) == before


@pytest.fixture
def readonly_target(user_a, admin):
    made, _ = make_event(user_a, 1)
    return made, len(ok(admin.events())), ok(admin.get_event(made.id))


def assert_unchanged(admin, target):
    made, count, before = target
    assert len(ok(admin.events())) == count
    assert ok(admin.get_event(made.id)) == before


def test_readonly_cannot_write_events(readonly_a, admin, readonly_target):
    made = readonly_target[0]
    ev = MISPEvent()
    ev.info = f"read-only write {tok()}"
    body = misp_error(readonly_a.add_event(ev), 403)
    assert body["message"]
    mine = ok(readonly_a.get_event(made.id, pythonify=True))  # reading is fine
    mine.info = "read-only edit"
    misp_error(readonly_a.update_event(mine), 403)
    misp_error(readonly_a.delete_event(made.id), 403)
    misp_error(readonly_a.publish(made.id), 403)
    misp_error(readonly_a.unpublish(made.id), 403)
    assert_unchanged(admin, readonly_target)


def test_readonly_cannot_add_attribute(readonly_a, admin, readonly_target):
    made = readonly_target[0]
    misp_error(readonly_a.direct_call(f"attributes/add/{made.id}", {"type": "ip-dst", "value": next_ip()}), 403)
    assert_unchanged(admin, readonly_target)


def test_readonly_cannot_sight(readonly_a, admin, readonly_target):
    made = readonly_target[0]
    misp_error(readonly_a.add_sighting({"source": "ro"}, made.attributes[0]), 403)
    misp_error(readonly_a.add_sighting({"source": "ro", "value": made.attributes[0].value}), 403)
    assert ok(admin.sightings(made)) == []


def test_readonly_cannot_tag(readonly_a, admin, readonly_target):
    made = readonly_target[0]
    misp_error(readonly_a.tag(made, "tlp:red"), 403)
    assert_unchanged(admin, readonly_target)


def test_readonly_cannot_manage_sharing_groups(readonly_a, admin):
    before = len(ok(admin.sharing_groups()))
    s = MISPSharingGroup()
    s.name = f"ro sg {tok()}"
    misp_error(readonly_a.add_sharing_group(s), 403)
    assert len(ok(admin.sharing_groups())) == before


def test_user_cannot_publish_publisher_can(user_a, publisher_a):
    made, _ = make_event(user_a, 1)
    misp_error(user_a.publish(made.id), 403)
    assert ok(user_a.get_event(made.id))["Event"]["published"] is False
    ok(publisher_a.publish(made.id))
    assert wait_until(lambda: ok(publisher_a.get_event(made.id))["Event"]["published"] is True)


def test_user_cannot_publish_via_add(user_a):
    ev = MISPEvent()
    ev.info = f"published on add {tok()}"
    ev.published = True
    made = ok(user_a.add_event(ev))
    assert made["Event"]["published"] is False


def test_same_org_user_can_edit(user_a, publisher_a):
    made, _ = make_event(user_a, 0)
    ev = ok(publisher_a.get_event(made.id, pythonify=True))
    ev.info = ev.info + " (colleague)"
    upd = ok(publisher_a.update_event(ev))
    assert upd["Event"]["info"].endswith("(colleague)")


def test_site_admin_sees_everything(user_b, admin):
    made, _ = make_event(user_b, 0)
    assert ok(admin.get_event(made.id))["Event"]["Orgc"]["name"] == "CERT-B"


def test_sync_key_refused(admin, node, org_b):
    u = MISPUser()
    u.email = f"sync-{tok()}@cert-b.example"
    u.org_id = org_b["id"]
    u.role_id = ROLE_SYNC
    user = ok(admin.add_user(u))["User"]
    key = admin.get_new_authkey(user["id"])
    with pytest.raises(PyMISPError) as e:
        connect(node, key)
    assert "403" in str(e.value) or "401" in str(e.value)
    # Refused on every path, reads and writes alike.
    h = {"Authorization": key, "Accept": "application/json", "content-type": "application/json"}
    for method, path, body in (("GET", "events/index", None), ("POST", "events/add", b'{"info": "sync write"}'),
                               ("GET", "servers/getVersion", None)):
        r = requests.request(method, f"{node.url}/{path}", headers=h, data=body, verify=node.ca, timeout=30)
        assert r.status_code in (401, 403), (path, r.status_code, r.text)
        assert r.json().get("message")
