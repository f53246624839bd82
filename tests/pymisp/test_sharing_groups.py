"""sharing_groups/* (PyMISP says sharingGroups/*): add, view, index, addOrg,
removeOrg, delete."""

from __future__ import annotations

import uuid

from pymisp import MISPSharingGroup

from misp_helpers import misp_error, ok, tok


def new_sg(name: str | None = None) -> MISPSharingGroup:
    sg = MISPSharingGroup()
    sg.name = name or f"sg {tok()}"
    sg.releasability = "CERT-A and invited partners"
    sg.description = "made by the PyMISP suite"
    sg.uuid = str(uuid.uuid4())
    return sg


def member_uuids(sg_json: dict) -> set[str]:
    return {o["Organisation"]["uuid"] for o in sg_json.get("SharingGroupOrg", [])}


def test_add_sharing_group(admin, org_a):
    sent = new_sg()
    got = ok(admin.add_sharing_group(sent, pythonify=True))
    assert isinstance(got, MISPSharingGroup)
    assert got.name == sent.name and str(got.uuid) == sent.uuid
    assert got.releasability == sent.releasability and got.description == sent.description
    assert str(got.id).isdigit()
    assert got.organisation_uuid == org_a["uuid"]
    # The creator organisation is a member.
    assert org_a["uuid"] in {str(o.Organisation.uuid) for o in got.SharingGroupOrg}


def test_add_sharing_group_raw_shape(admin, org_a):
    r = ok(admin.add_sharing_group(new_sg()))
    assert set(r) >= {"SharingGroup", "Organisation", "SharingGroupOrg"}
    assert r["Organisation"]["uuid"] == org_a["uuid"]
    assert org_a["uuid"] in member_uuids(r)


def test_get_sharing_group(admin):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    by_id = ok(admin.get_sharing_group(made.id))
    by_uuid = ok(admin.get_sharing_group(str(made.uuid)))
    assert by_id == by_uuid
    assert by_id["SharingGroup"]["name"] == made.name
    py = ok(admin.get_sharing_group(made, pythonify=True))
    assert isinstance(py, MISPSharingGroup) and py.name == made.name
    assert admin.sharing_group_exists(made.id) is True
    assert admin.sharing_group_exists(str(uuid.uuid4())) is False


def test_get_sharing_group_unknown(admin):
    misp_error(admin.get_sharing_group(str(uuid.uuid4())), 404)


def test_sharing_groups_index(admin):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    rows = ok(admin.sharing_groups())
    assert isinstance(rows, list)
    assert str(made.uuid) in {r["SharingGroup"]["uuid"] for r in rows}
    py = ok(admin.sharing_groups(pythonify=True))
    assert all(isinstance(s, MISPSharingGroup) for s in py)
    assert made.name in {s.name for s in py}


def test_add_and_remove_org(admin, org_b):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    assert org_b["uuid"] not in member_uuids(ok(admin.get_sharing_group(made.id)))
    r = ok(admin.add_org_to_sharing_group(made, org_b["uuid"]))
    assert r["saved"] is True and r["success"] is True
    assert org_b["uuid"] in member_uuids(ok(admin.get_sharing_group(made.id)))
    r = ok(admin.remove_org_from_sharing_group(made.id, org_b["uuid"]))
    assert r["saved"] is True and r["success"] is True
    assert org_b["uuid"] not in member_uuids(ok(admin.get_sharing_group(made.id)))


def test_add_org_by_local_id_with_extend(admin, org_b):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    ok(admin.add_org_to_sharing_group(made.id, org_b["id"], extend=True))
    sg = ok(admin.get_sharing_group(made.id))
    entry = next(o for o in sg["SharingGroupOrg"] if o["Organisation"]["uuid"] == org_b["uuid"])
    assert entry["extend"] is True


def test_add_org_unknown(admin):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    misp_error(admin.add_org_to_sharing_group(made.id, str(uuid.uuid4())), 403, 404)
    misp_error(admin.add_org_to_sharing_group(str(uuid.uuid4()), "CERT-A"), 403, 404)


def test_delete_sharing_group(admin):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    r = ok(admin.delete_sharing_group(made))
    assert r["saved"] is True and r["success"] is True
    # MISP's message (PyMISP's live test_sharing_group checks it).
    assert r["message"] == "SharingGroup deleted"
    misp_error(admin.get_sharing_group(made.id), 404)
    assert str(made.uuid) not in {r["SharingGroup"]["uuid"] for r in ok(admin.sharing_groups())}


def test_delete_sharing_group_unknown(admin):
    misp_error(admin.delete_sharing_group(str(uuid.uuid4())), 403, 404)


def test_sharing_group_visible_to_members_only(admin, user_b, org_b):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    misp_error(user_b.get_sharing_group(made.id), 403, 404)
    assert str(made.uuid) not in {r["SharingGroup"]["uuid"] for r in ok(user_b.sharing_groups())}
    ok(admin.add_org_to_sharing_group(made.id, org_b["uuid"]))
    assert ok(user_b.get_sharing_group(made.id))["SharingGroup"]["uuid"] == str(made.uuid)


def test_non_member_cannot_change_group(admin, user_b, org_b):
    made = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    ok(admin.add_org_to_sharing_group(made.id, org_b["uuid"]))  # a member without extend
    misp_error(user_b.add_org_to_sharing_group(made.id, org_b["uuid"], extend=True), 403, 404)
    misp_error(user_b.delete_sharing_group(made.id), 403, 404)
    assert ok(admin.get_sharing_group(made.id))["SharingGroup"]["name"] == made.name


# Issue 12: MISP's shapes (SharingGroupsController).


def test_sharing_group_orgs_carry_org_ids(admin, org_a, org_b):
    """Each `SharingGroupOrg` entry has `org_id` and `sharing_group_id`, the
    local ids MISP's rows carry, as strings."""
    r = ok(admin.add_sharing_group(new_sg()))
    sg_id = r["SharingGroup"]["id"]
    ok(admin.add_org_to_sharing_group(sg_id, org_b["id"]))
    got = ok(admin.get_sharing_group(sg_id))
    by_uuid = {o["Organisation"]["uuid"]: o for o in got["SharingGroupOrg"]}
    assert by_uuid[org_b["uuid"]]["org_id"] == str(org_b["id"])
    assert by_uuid[org_a["uuid"]]["org_id"] == str(org_a["id"])
    assert all(o["sharing_group_id"] == str(sg_id) for o in got["SharingGroupOrg"])


def test_edit_sharing_group_answers_the_group(admin, user_b):
    """`sharing_groups/edit/<id>` changes what it is sent and answers
    `{"SharingGroup": …}` (PyMISP's live test reads
    `r['SharingGroup']['releasability']`); a non-member gets 404."""
    sg = ok(admin.add_sharing_group(new_sg(), pythonify=True))
    r = ok(admin.update_sharing_group({"releasability": "Testing updated", "name": sg.name + " v2"}, sg.id))
    assert r["SharingGroup"]["releasability"] == "Testing updated"
    assert r["SharingGroup"]["name"] == sg.name + " v2"
    assert ok(admin.get_sharing_group(sg.id))["SharingGroup"]["releasability"] == "Testing updated"
    misp_error(user_b.update_sharing_group({"name": "taken over"}, sg.id), 404)
    assert ok(admin.get_sharing_group(sg.id))["SharingGroup"]["name"] == sg.name + " v2"
