"""events/restSearch and attributes/restSearch through PyMISP's search().

The module builds three events, all carrying one run tag so every search can be
scoped to them:
  A: published, tags run + A, attributes ip-dst (to_ids), domain (not to_ids),
     one attribute with its own tag, and a domain-ip object;
  B: unpublished, tags run + B, domain / url / ip-dst;
  OLD: made 30 days ago (client-supplied timestamps), date 2020-01-01.
Expected answers are computed from the events as stored.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from pymisp import MISPAttribute, MISPEvent, MISPObject

from misp_helpers import all_attributes, attr_values, event_uuids, next_ip, ok, tok, wait_until

# MISP's CsvExport::header(): default fields, `timestamp` renamed `date`, and every
# `-` turned into `_` (so object_meta-category is announced as object_meta_category).
CSV_HEADER = "uuid,event_id,category,type,value,comment,to_ids,date,object_relation,attribute_tag,object_uuid,object_name,object_meta_category"


class Data:
    pass


@pytest.fixture(scope="module")
def data(admin) -> Data:
    d = Data()
    t = tok()
    d.t = t
    d.run = f"sluis-test:search-{t}"
    d.tag_a, d.tag_b, d.tag_x = f"{d.run}-a", f"{d.run}-b", f"{d.run}-x"

    a = MISPEvent()
    a.info = f"search A {t}"
    a.distribution = 1
    for n in (d.run, d.tag_a, "tlp:green"):
        a.add_tag(n)
    d.ip_a = next_ip()
    a.add_attribute("ip-dst", d.ip_a, to_ids=True)
    d.dom_a = f"a-{t}.example.com"
    a.add_attribute("domain", d.dom_a, to_ids=False)
    o = MISPObject("domain-ip")
    d.dom_obj = f"obj-{t}.example.net"
    o.add_attribute("domain", value=d.dom_obj)
    o.add_attribute("ip", value=next_ip())
    a.add_object(o)
    d.a = ok(admin.add_event(a, pythonify=True))
    ok(admin.publish(d.a))
    assert wait_until(lambda: ok(admin.get_event(d.a.id))["Event"]["published"] is True)

    b = MISPEvent()
    b.info = f"search B {t}"
    b.distribution = 1
    for n in (d.run, d.tag_b):
        b.add_tag(n)
    d.dom_b = f"b-{t}.example.com"
    x = b.add_attribute("domain", d.dom_b, to_ids=True)
    x.add_tag(d.tag_x)
    d.url_b = f"https://b-{t}.example.com/path"
    b.add_attribute("url", d.url_b, to_ids=True)
    d.ip_b = next_ip()
    b.add_attribute("ip-dst", d.ip_b, to_ids=False)
    d.b = ok(admin.add_event(b, pythonify=True))

    d.old_ts = int(time.time()) - 30 * 86400
    d.ip_old = next_ip()
    old = ok(admin.direct_call("events/add", {
        "info": f"search OLD {t}", "date": "2020-01-01", "distribution": "1",
        "timestamp": str(d.old_ts), "Tag": [{"name": d.run}],
        "Attribute": [{"type": "ip-dst", "value": d.ip_old, "to_ids": True, "timestamp": str(d.old_ts)}],
    }))
    d.old = old["Event"]

    d.stored = {e["uuid"]: e for e in (ok(admin.get_event(u))["Event"]
                                       for u in (str(d.a.uuid), str(d.b.uuid), d.old["uuid"]))}
    d.ua, d.ub, d.uold = str(d.a.uuid), str(d.b.uuid), d.old["uuid"]
    return d


def values_of(d: Data, *uuids: str, pred=lambda a: True) -> set[str]:
    return {a["value"] for u in uuids for a in all_attributes(d.stored[u]) if pred(a)}


# ------------------------------------------------------------------ envelopes


def test_events_envelope(admin, data):
    r = ok(admin.search(controller="events", tags=data.run))
    assert isinstance(r, list) and all(set(e) == {"Event"} for e in r)
    assert event_uuids(r) == {data.ua, data.ub, data.uold}
    a = next(e["Event"] for e in r if e["Event"]["uuid"] == data.ua)
    assert {x["value"] for x in all_attributes(a)} == values_of(data, data.ua)
    assert a["Orgc"]["name"] == "CERT-A"
    assert {t["name"] for t in a["Tag"]} == {data.run, data.tag_a, "tlp:green"}


def test_attributes_envelope(admin, data):
    r = ok(admin.search(controller="attributes", tags=data.run))
    assert isinstance(r, dict) and set(r) == {"Attribute"}
    assert set(attr_values(r)) == values_of(data, data.ua, data.ub, data.uold)
    for a in r["Attribute"]:
        for k in ("id", "event_id", "object_id", "timestamp", "distribution"):
            assert isinstance(a.get(k), str) and a[k].isdigit(), f"Attribute.{k} = {a.get(k)!r}"
        assert isinstance(a["to_ids"], bool)
        assert a["Event"]["uuid"] in (data.ua, data.ub, data.uold)


def test_no_match(admin, data):
    assert ok(admin.search(controller="events", value=f"nothing-{tok()}.invalid")) == []
    assert ok(admin.search(controller="attributes", value=f"nothing-{tok()}.invalid")) == {"Attribute": []}


def test_pythonify(admin, data):
    evs = ok(admin.search(controller="events", tags=data.run, pythonify=True))
    assert all(isinstance(e, MISPEvent) for e in evs) and len(evs) == 3
    attrs = ok(admin.search(controller="attributes", tags=data.run, pythonify=True))
    assert all(isinstance(a, MISPAttribute) for a in attrs)
    assert {a.value for a in attrs} == values_of(data, data.ua, data.ub, data.uold)


# ------------------------------------------------------------------ value and type


def test_value_exact(admin, data):
    assert event_uuids(ok(admin.search(controller="events", value=data.ip_a))) == {data.ua}
    assert attr_values(ok(admin.search(controller="attributes", value=data.ip_a))) == [data.ip_a]


def test_value_wildcards(admin, data):
    suffix = f"%{data.t}.example.com"
    assert set(attr_values(ok(admin.search(controller="attributes", value=suffix)))) == {data.dom_a, data.dom_b}
    assert event_uuids(ok(admin.search(controller="events", value=suffix))) == {data.ua, data.ub}
    prefix = f"b-{data.t}%"
    assert set(attr_values(ok(admin.search(controller="attributes", value=prefix)))) == {data.dom_b}
    both = f"%-{data.t}.example.%"  # the url matches too: https://b-<t>.example.com/path
    assert set(attr_values(ok(admin.search(controller="attributes", value=both)))) == {
        data.dom_a, data.dom_b, data.dom_obj, data.url_b}


def test_value_list_is_or(admin, data):
    r = ok(admin.search(controller="attributes", value=[data.ip_a, data.ip_b]))
    assert set(attr_values(r)) == {data.ip_a, data.ip_b}


def test_type_attribute(admin, data):
    r = ok(admin.search(controller="attributes", type_attribute="domain", tags=data.run))
    # Object attributes are included.
    assert set(attr_values(r)) == {data.dom_a, data.dom_b, data.dom_obj}
    r = ok(admin.search(controller="attributes", type_attribute=["url", "ip-dst"], value=f"%{data.t}%"))
    assert set(attr_values(r)) == {data.url_b}


# ------------------------------------------------------------------ tags


def test_tags_events(admin, data):
    assert event_uuids(ok(admin.search(controller="events", tags=data.tag_a))) == {data.ua}
    assert event_uuids(ok(admin.search(controller="events", tags=[data.tag_a, data.tag_b]))) == {data.ua, data.ub}


def test_tags_attributes_match_event_tags(admin, data):
    r = ok(admin.search(controller="attributes", tags=data.tag_a))
    assert set(attr_values(r)) == values_of(data, data.ua)


def test_tags_attribute_level(admin, data):
    assert attr_values(ok(admin.search(controller="attributes", tags=data.tag_x))) == [data.dom_b]


def test_tags_not_via_complex_query(admin, data):
    q = admin.build_complex_query(or_parameters=[data.run], not_parameters=[data.tag_b])
    assert event_uuids(ok(admin.search(controller="events", tags=q))) == {data.ua, data.uold}
    q = admin.build_complex_query(or_parameters=[data.tag_a, data.tag_b], not_parameters=[data.tag_b])
    assert set(attr_values(ok(admin.search(controller="attributes", tags=q)))) == values_of(data, data.ua)


def test_tags_not_via_bang(admin, data):
    r = ok(admin.search(controller="events", tags=[data.run, f"!{data.tag_b}"]))
    assert event_uuids(r) == {data.ua, data.uold}


def test_tags_wildcard(admin, data):
    r = ok(admin.search(controller="events", tags=f"{data.run}-%"))
    assert event_uuids(r) == {data.ua, data.ub}


# ------------------------------------------------------------------ ids


def test_eventid(admin, data):
    assert event_uuids(ok(admin.search(controller="events", eventid=data.a.id))) == {data.ua}
    r = ok(admin.search(controller="attributes", eventid=data.b.id))
    assert set(attr_values(r)) == values_of(data, data.ub)
    # event_id (sic) is a synonym callers use.
    r = ok(admin.search(controller="attributes", event_id=data.b.id))
    assert set(attr_values(r)) == values_of(data, data.ub)


def test_uuid(admin, data):
    assert event_uuids(ok(admin.search(controller="events", uuid=data.ua))) == {data.ua}
    one = data.stored[data.ub]["Attribute"][0]
    r = ok(admin.search(controller="attributes", uuid=one["uuid"]))
    assert [a["uuid"] for a in r["Attribute"]] == [one["uuid"]]


# ------------------------------------------------------------------ time


def test_timestamp_relative(admin, data):
    r = ok(admin.search(controller="events", tags=data.run, timestamp="7d"))
    assert event_uuids(r) == {data.ua, data.ub}
    r = ok(admin.search(controller="attributes", tags=data.run, timestamp="7d"))
    assert set(attr_values(r)) == values_of(data, data.ua, data.ub)


def test_timestamp_range(admin, data):
    r = ok(admin.search(controller="events", tags=data.run, timestamp=(data.old_ts - 60, data.old_ts + 60)))
    assert event_uuids(r) == {data.uold}
    r = ok(admin.search(controller="attributes", tags=data.run, timestamp=data.old_ts + 60))
    assert set(attr_values(r)) == values_of(data, data.ua, data.ub)


def test_last_is_publish_timestamp(admin, data):
    r = ok(admin.search(controller="events", tags=data.run, last="7d"))
    assert event_uuids(r) == {data.ua}


def test_invalid_relative_time_matches_nothing(admin, data):
    assert ok(admin.search(controller="events", tags=data.run, timestamp="5x")) == []
    assert ok(admin.search(controller="attributes", tags=data.run, timestamp="5x")) == {"Attribute": []}


# ------------------------------------------------------------------ flags


def test_to_ids(admin, data):
    r = ok(admin.search(controller="attributes", tags=data.run, to_ids=1))
    want = values_of(data, data.ua, data.ub, data.uold, pred=lambda a: a["to_ids"] is True)
    assert set(attr_values(r)) == want and data.dom_a not in want
    r = ok(admin.search(controller="attributes", tags=data.run, to_ids="0"))
    assert set(attr_values(r)) == values_of(data, data.ua, data.ub, data.uold, pred=lambda a: a["to_ids"] is False)
    # Events come back with only the matching attributes.
    r = ok(admin.search(controller="events", eventid=data.b.id, to_ids=1))
    assert len(r) == 1
    assert {a["value"] for a in all_attributes(r[0])} == {data.dom_b, data.url_b}


def test_published(admin, data):
    assert event_uuids(ok(admin.search(controller="events", tags=data.run, published=True))) == {data.ua}
    assert event_uuids(ok(admin.search(controller="events", tags=data.run, published=False))) == {data.ub, data.uold}


def test_limit_page(admin, data):
    seen: list[str] = []
    for page in (1, 2, 3):
        r = ok(admin.search(controller="events", tags=data.run, limit=1, page=page))
        assert len(r) == 1, (page, r)
        seen.extend(event_uuids(r))
    assert set(seen) == {data.ua, data.ub, data.uold}
    assert ok(admin.search(controller="events", tags=data.run, limit=1, page=4)) == []
    everything = values_of(data, data.ua, data.ub, data.uold)
    got: list[str] = []
    page = 1
    while True:
        vals = attr_values(ok(admin.search(controller="attributes", tags=data.run, limit=3, page=page)))
        assert len(vals) <= 3
        if not vals:
            break
        got.extend(vals)
        page += 1
    assert len(got) == len(everything) and set(got) == everything


def test_metadata(admin, data):
    r = ok(admin.search(controller="events", tags=data.run, metadata=True))
    assert event_uuids(r) == {data.ua, data.ub, data.uold}
    for e in r:
        assert not e["Event"].get("Attribute") and not e["Event"].get("Object"), e


def test_include_event_tags(admin, data):
    r = ok(admin.search(controller="attributes", eventid=data.a.id, include_event_tags=True))
    assert r["Attribute"]
    for a in r["Attribute"]:
        tags = {t["name"]: t for t in a.get("Tag", [])}
        assert data.tag_a in tags, a
        assert int(tags[data.tag_a].get("inherited", 0)) == 1
    r = ok(admin.search(controller="attributes", eventid=data.a.id))
    for a in r["Attribute"]:
        assert data.tag_a not in {t["name"] for t in a.get("Tag", [])}


def test_soft_deleted_hidden(admin):
    t = tok()
    ev = MISPEvent()
    ev.info = f"soft delete search {t}"
    keep = ev.add_attribute("domain", f"keep-{t}.example.org")
    gone = ev.add_attribute("domain", f"gone-{t}.example.org")
    made = ok(admin.add_event(ev, pythonify=True))
    target = next(a for a in made.attributes if a.value == gone.value)
    target.delete()  # deleted = True; the attribute is now edited
    ok(admin.update_event(made))
    r = ok(admin.search(controller="attributes", value=f"%-{t}.example.org"))
    assert attr_values(r) == [keep.value]
    r = ok(admin.search(controller="events", value=gone.value))
    assert r == []


# ------------------------------------------------------------------ csv and text


def parse_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_attributes(admin, data):
    text = admin.search(controller="attributes", tags=data.run, return_format="csv")
    assert isinstance(text, str), text
    lines = text.splitlines()
    assert lines[0] == CSV_HEADER
    rows = parse_csv(text)
    assert {r["value"] for r in rows} == values_of(data, data.ua, data.ub, data.uold)
    by_value = {r["value"]: r for r in rows}
    a = by_value[data.ip_a]
    assert a["event_id"] == str(data.a.id) and a["type"] == "ip-dst" and a["category"] == "Network activity"
    assert a["to_ids"] in ("1", "True", "true")
    o = by_value[data.dom_obj]
    assert o["object_relation"] == "domain" and o["object_name"] == "domain-ip"
    assert o["object_meta_category"] == "network" and o["object_uuid"]
    assert by_value[data.dom_b]["attribute_tag"] == data.tag_x


def test_csv_events_controller(admin, data):
    text = admin.search(controller="events", eventid=data.b.id, return_format="csv")
    assert isinstance(text, str), text
    assert text.splitlines()[0] == CSV_HEADER
    assert {r["value"] for r in parse_csv(text)} == values_of(data, data.ub)


def test_csv_pythonify(admin, data):
    rows = admin.search(controller="attributes", value=data.ip_a, return_format="csv", pythonify=True)
    assert isinstance(rows, list) and len(rows) == 1, rows
    assert set(rows[0]) == set(CSV_HEADER.split(","))
    assert rows[0]["value"].strip('"') == data.ip_a


def test_csv_no_match_is_header_only(admin, data):
    text = admin.search(controller="attributes", value=f"nothing-{tok()}.invalid", return_format="csv")
    assert isinstance(text, str)
    assert [line for line in text.splitlines() if line] == [CSV_HEADER]


def test_text(admin, data):
    # MISP's TextExport is restrictive: without to_ids and published filters it
    # lists only to_ids attributes of published events (MispAttribute.php
    # 3192-3200, Event.php 7457-7465), one value per line, each once, ending "\n".
    published = [u for u in (data.ua, data.ub, data.uold) if data.stored[u]["published"]]
    text = admin.search(controller="attributes", tags=data.run, return_format="text")
    assert isinstance(text, str), text
    assert text.endswith("\n")
    lines = [line for line in text.split("\n") if line]
    assert len(lines) == len(set(lines))
    assert set(lines) == values_of(data, *published, pred=lambda a: a["to_ids"] is True)
    # Naming the filters lifts the defaults.
    text = admin.search(controller="attributes", tags=data.run, to_ids=0, published=[0, 1], return_format="text")
    assert {line for line in text.splitlines() if line} == values_of(
        data, data.ua, data.ub, data.uold, pred=lambda a: a["to_ids"] is False)
    # With only to_ids named, published is still implied.
    text = admin.search(controller="attributes", tags=data.run, type_attribute="ip-dst", to_ids=1, return_format="text")
    assert {line for line in text.splitlines() if line} == values_of(
        data, *published, pred=lambda a: a["type"] == "ip-dst" and a["to_ids"] is True)


def test_text_lists_each_value_once_and_an_empty_answer_is_one_newline(admin):
    # TextExport keeps values in a set (TextExport.php): a value held by two
    # attributes is one line, in first-seen order; nothing found is "\n".
    tag = f"sluis-test:text-{tok()}"
    e = MISPEvent()
    e.info = "text export"
    e.add_tag(tag)
    value = f"twice-{tok()}.example"
    e.add_attribute("domain", value, to_ids=True)
    e.add_attribute("hostname", value, to_ids=True)
    e.add_attribute("domain", f"once-{tok()}.example", to_ids=True)
    e = ok(admin.add_event(e, pythonify=True))
    ok(admin.publish(e))
    assert wait_until(lambda: ok(admin.get_event(e.id))["Event"]["published"] is True)
    for controller in ("attributes", "events"):
        text = admin.search(controller=controller, tags=tag, return_format="text")
        assert text.count(value + "\n") == 1, text
        assert len([line for line in text.split("\n") if line]) == 2
    empty = admin.search(controller="attributes", tags=f"nothing-{tok()}", return_format="text")
    assert empty == "\n"
