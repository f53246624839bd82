"""Organisations (admin/organisations/add, organisations/index, organisations/view),
users (admin/users/add, admin/users/index, users/view/me) and auth_keys/add."""

from __future__ import annotations

import uuid

from pymisp import MISPOrganisation, MISPRole, MISPUser

from conftest import ROLE_PUBLISHER, ROLE_READ_ONLY, ROLE_USER, connect
from misp_helpers import misp_error, ok, tok


def test_add_organisation_with_uuid(admin):
    o = MISPOrganisation()
    o.name = f"CERT-X {tok()}"
    o.uuid = str(uuid.uuid4())
    o.description = "a partner CERT"
    o.nationality = "Belgium"
    o.sector = "Government"
    got = ok(admin.add_organisation(o, pythonify=True))
    assert isinstance(got, MISPOrganisation)
    assert got.name == o.name and str(got.uuid) == o.uuid
    assert str(got.id).isdigit()
    assert got.description == "a partner CERT" and got.nationality == "Belgium"


def test_add_organisation_duplicate_uuid_refused(admin, org_b):
    before = len(ok(admin.organisations(scope="all")))
    o = MISPOrganisation()
    o.name = "CERT-B again"
    o.uuid = org_b["uuid"]
    misp_error(admin.add_organisation(o), 403)
    assert len(ok(admin.organisations(scope="all"))) == before


def test_organisations_index(admin, org_a, org_b):
    rows = ok(admin.organisations())
    assert isinstance(rows, list)
    assert all("Organisation" in r for r in rows)
    names = {r["Organisation"]["name"] for r in rows}
    assert {"CERT-A", "CERT-B"} <= names
    py = ok(admin.organisations(scope="all", pythonify=True))
    assert all(isinstance(o, MISPOrganisation) for o in py)
    assert org_b["uuid"] in {str(o.uuid) for o in py}


def test_get_organisation(admin, org_b):
    by_id = ok(admin.get_organisation(org_b["id"]))
    by_uuid = ok(admin.get_organisation(org_b["uuid"]))
    assert by_id == by_uuid
    assert by_id["Organisation"]["name"] == "CERT-B"
    py = ok(admin.get_organisation(org_b["uuid"], pythonify=True))
    assert isinstance(py, MISPOrganisation) and py.name == "CERT-B"
    assert admin.organisation_exists(org_b["uuid"]) is True
    misp_error(admin.get_organisation(str(uuid.uuid4())), 404)


def test_non_admin_cannot_add_organisation(user_a, admin):
    before = len(ok(admin.organisations(scope="all")))
    o = MISPOrganisation()
    o.name = f"rogue {tok()}"
    misp_error(user_a.add_organisation(o), 403)
    assert len(ok(admin.organisations(scope="all"))) == before


def test_add_user_and_key(admin, node, org_b):
    u = MISPUser()
    u.email = f"analyst-{tok()}@cert-b.example"
    u.org_id = org_b["id"]
    u.role_id = ROLE_PUBLISHER
    got = ok(admin.add_user(u, pythonify=True))
    assert isinstance(got, MISPUser)
    assert got.email == u.email and str(got.org_id) == str(org_b["id"]) and str(got.role_id) == str(ROLE_PUBLISHER)
    key = admin.get_new_authkey(got.id)
    assert isinstance(key, str) and len(key) >= 32
    m = connect(node, key)
    me = ok(m.get_user("me"))
    assert me["User"]["email"] == u.email
    assert me["Role"]["perm_publish"] is True and me["Role"]["perm_site_admin"] is False


def test_users_index(admin, accounts):
    accounts.create("CERT-B", ROLE_USER)
    rows = ok(admin.users())
    assert isinstance(rows, list)
    emails = {r["User"]["email"] for r in rows}
    assert admin._current_user.email in emails
    assert accounts.users[("CERT-B", ROLE_USER)]["email"] in emails
    py = ok(admin.users(pythonify=True))
    assert all(isinstance(u, MISPUser) for u in py)


def test_get_user_me(user_a, readonly_b, accounts):
    me = ok(user_a.get_user())
    assert me["User"]["email"] == accounts.users[("CERT-A", ROLE_USER)]["email"]
    assert me["Role"]["perm_add"] is True and me["Role"]["perm_publish"] is False
    user, role, settings = readonly_b.get_user("me", pythonify=True, expanded=True)
    assert isinstance(user, MISPUser) and isinstance(role, MISPRole)
    assert user.email == accounts.users[("CERT-B", ROLE_READ_ONLY)]["email"]
    assert role.perm_add is False
    assert isinstance(settings, list)


def test_non_admin_cannot_add_user_or_list_users(user_a, admin, org_a):
    before = len(ok(admin.users()))
    u = MISPUser()
    u.email = f"sneaky-{tok()}@example.org"
    u.org_id = org_a["id"]
    u.role_id = 1
    misp_error(user_a.add_user(u), 403)
    misp_error(user_a.users(), 403)
    assert len(ok(admin.users())) == before


def test_user_cannot_mint_keys_for_others(user_a, admin):
    other = admin._current_user.id
    r = user_a.direct_call(f"auth_keys/add/{other}", {})
    misp_error(r, 403, 404)


def test_get_new_authkey_for_self(node, user_a):
    key = user_a.get_new_authkey()  # auth_keys/add/me
    m = connect(node, key)
    assert ok(m.get_user())["User"]["email"] == ok(user_a.get_user())["User"]["email"]


# Issue 12: provisioning answers as MISP 2.5 does.


def test_add_user_answers_a_key_to_log_in_with(admin, node, org_b):
    """`admin/users/add` answers the new user's key in clear as `User.authkey`
    (MISP with advanced auth keys: `UsersController::admin_add` replaces the
    legacy column with the key `AuthKey::createnewkey` made), and the password
    as stars; PyMISP's live suite logs in with that key."""
    u = MISPUser()
    u.email = f"provisioned-{tok()}@cert-b.example"
    u.org_id = org_b["id"]
    u.role_id = ROLE_USER
    raw = ok(admin.add_user(u))
    user = raw["User"]
    assert user["password"] == "******"
    assert isinstance(user["id"], str) and user["id"].isdigit()
    assert isinstance(user["role_id"], str) and user["role_id"] == str(ROLE_USER)
    assert user["disabled"] is False and user["server_id"] == "0"
    key = user["authkey"]
    assert isinstance(key, str) and len(key) == 40
    m = connect(node, key)
    assert ok(m.get_user())["User"]["email"] == u.email


def test_edit_user_changes_what_it_says(admin, node, org_a, org_b):
    """`admin/users/edit/<id>` saves every field it is given and answers the
    user as stored (`UsersController::admin_edit`): an e-mail change is kept,
    normalised; a role change too; an e-mail another user has is refused."""
    u = MISPUser()
    u.email = f"before-{tok()}@cert-b.example"
    u.org_id = org_b["id"]
    u.role_id = ROLE_USER
    created = ok(admin.add_user(u, pythonify=True))
    new_email = f"After-{tok()}@CERT-B.example"
    got = ok(admin.update_user({"email": new_email, "role_id": ROLE_PUBLISHER}, created.id))
    assert got["User"]["email"] == new_email.lower()
    assert got["User"]["role_id"] == str(ROLE_PUBLISHER)
    assert got["User"]["password"] == "******"
    again = ok(admin.get_user(created.id))
    assert again["User"]["email"] == new_email.lower()
    taken = admin._current_user.email
    misp_error(admin.update_user({"email": taken}, created.id), 403)
    assert ok(admin.get_user(created.id))["User"]["email"] == new_email.lower()


def test_edit_organisation_changes_the_name(admin):
    """`admin/organisations/edit/<id>` keeps what it is sent, keeps what it is
    not, and answers `{"Organisation": …}` as stored
    (`OrganisationsController::admin_edit`)."""
    o = MISPOrganisation()
    o.name = f"CERT-E {tok()}"
    o.uuid = str(uuid.uuid4())
    o.sector = "Energy"
    created = ok(admin.add_organisation(o, pythonify=True))
    r = ok(admin.direct_call(f"admin/organisations/edit/{created.id}", {"name": "blah " + tok()}))
    assert r["Organisation"]["name"].startswith("blah ")
    assert r["Organisation"]["sector"] == "Energy"
    assert r["Organisation"]["uuid"] == o.uuid
    view = ok(admin.get_organisation(o.uuid))
    assert view["Organisation"]["name"] == r["Organisation"]["name"]
    misp_error(
        admin.direct_call(f"admin/organisations/edit/{created.id}", {"uuid": str(uuid.uuid4())}),
        403,
    )
    misp_error(admin.direct_call("admin/organisations/edit/999999", {"name": "x"}), 404)


def test_non_admin_cannot_edit_organisations(user_a, org_b):
    misp_error(user_a.direct_call(f"admin/organisations/edit/{org_b['id']}", {"name": "mine"}), 403)


def test_user_search(admin, accounts, org_b):
    """`admin/users/index/value:<s>/searchorg:<o>` (PyMISP `users(search=,
    organisation=)`) filters as MISP's `UsersController::admin_index` does:
    PyMISP's live `test_user_search` finds exactly one user by e-mail."""
    u, _ = accounts.create("CERT-B", ROLE_PUBLISHER)
    email = u["email"]
    hits = ok(admin.users(search=email))
    assert [h["User"]["email"] for h in hits] == [email]
    by_org = ok(admin.users(search=email, organisation=org_b["id"]))
    assert [h["User"]["email"] for h in by_org] == [email]
    assert by_org[0]["Organisation"]["id"] == str(org_b["id"])
    assert ok(admin.users(search=email, organisation=admin._current_user.org_id)) == []
    everyone_b = ok(admin.users(organisation=org_b["id"]))
    assert everyone_b and all(h["Organisation"]["id"] == str(org_b["id"]) for h in everyone_b)
    assert ok(admin.users(search=f"nobody-{tok()}")) == []


def test_organisation_search(admin, org_b):
    """`organisations/index/scope:all/searchall:<s>` (PyMISP
    `organisations(search=)`): only matching organisations, as MISP's
    `OrganisationsController::index` (its live `test_org_search`)."""
    found = ok(admin.organisations(scope="all", search="CERT-B"))
    assert [o["Organisation"]["name"] for o in found] == ["CERT-B"]
    assert ok(admin.organisations(scope="all", search=f"nothing-{tok()}")) == []


def test_roles_index_and_default_role(admin, user_a, org_b):
    """`roles/index` lists MISP's roles with `default` and `permission`
    (`RolesController::index`); `admin/roles/set_default/<id>` answers
    "Default role set." (PyMISP's live `test_roles`), and a user added with
    no role gets it."""
    rows = ok(admin.roles())
    by_id = {r["Role"]["id"]: r["Role"] for r in rows}
    assert {"1", "2", "3", "4", "5", "6"} <= set(by_id)
    assert by_id["4"]["permission"] == "3" and by_id["6"]["permission"] == "0"
    assert ok(admin.set_default_role(4))["message"] == "Default role set."
    rows = ok(admin.roles())
    assert [r["Role"]["id"] for r in rows if r["Role"]["default"]] == ["4"]
    u = MISPUser()
    u.email = f"defaulted-{tok()}@cert-b.example"
    u.org_id = org_b["id"]
    assert ok(admin.add_user(u))["User"]["role_id"] == "4"
    misp_error(user_a.set_default_role(3), 403)
    assert ok(admin.set_default_role(3))["message"] == "Default role set."
