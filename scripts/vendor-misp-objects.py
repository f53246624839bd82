#!/usr/bin/env python3
"""Vendor the MISP object templates into a compact JSON file for sluis.

Reads misp-objects' ``objects/*/definition.json`` and
``relationships/definition.json`` and writes ``src/model/data/object-templates.json``
(relative to the crate root), which ``src/model/template.rs`` embeds with
``include_str!``.

Only what object validation needs is kept (per template: name, uuid, version,
meta-category, description, required, requiredOneOf; per relation: misp-attribute,
categories, multiple, disable_correlation, to_ids; the two boolean flags are
written only when true, as they default to false). Descriptions of relations,
sane_default, values_list and ui-priority are dropped to keep the embedded file
small. Output is deterministic (sorted keys, templates sorted by name,
relationship names sorted, no indentation) so that re-running the script on the
same input gives a byte-identical file and diffs stay reviewable.

Usage: scripts/vendor-misp-objects.py MISP_OBJECTS_DIR
       (a checkout of github.com/MISP/misp-objects, or PyMISP's pymisp/data/misp-objects;
       the repository never reads anything outside itself, so the source is named
       explicitly each time)

Attribution: see src/model/data/NOTICE.md (BSD 2-Clause, CIRCL and MISP contributors).
Standard library only.
"""

import glob
import json
import os
import sys

OUT_REL = os.path.join("src", "model", "data", "object-templates.json")


def fail(msg):
    sys.exit("vendor-misp-objects: " + msg)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def compact_relation(tname, rel, spec):
    if not isinstance(spec.get("misp-attribute"), str):
        fail("template %r relation %r has no misp-attribute" % (tname, rel))
    out = {"misp-attribute": spec["misp-attribute"]}
    # The two flags default to false in MISP; writing them only when true
    # roughly halves the per-relation size (6000+ relations).
    for flag in ("multiple", "disable_correlation"):
        if spec.get(flag, False):
            out[flag] = True
    if "categories" in spec:
        out["categories"] = list(spec["categories"])
    if "to_ids" in spec:
        out["to_ids"] = bool(spec["to_ids"])
    return out


def compact_template(path):
    d = load_json(path)
    for key in ("name", "uuid", "version", "meta-category", "description", "attributes"):
        if key not in d:
            fail("%s: missing %r" % (path, key))
    name = d["name"]
    attrs = d["attributes"]
    # Keep source order of the requirement lists: error messages quote them.
    required = list(d.get("required", []))
    one_of = list(d.get("requiredOneOf", []))
    for rel in required + one_of:
        if rel not in attrs:
            fail("template %r requires unknown relation %r" % (name, rel))
    if not isinstance(d["version"], int) or d["version"] < 0:
        fail("template %r has a non-integer version %r" % (name, d["version"]))
    return {
        "name": name,
        "uuid": d["uuid"],
        "version": d["version"],
        "meta-category": d["meta-category"],
        "description": d["description"],
        "required": required,
        "requiredOneOf": one_of,
        "attributes": {rel: compact_relation(name, rel, spec) for rel, spec in attrs.items()},
    }


def main(argv):
    if len(argv) != 2:
        fail("usage: vendor-misp-objects.py MISP_OBJECTS_DIR (a misp-objects checkout)")
    src = argv[1]
    paths = sorted(glob.glob(os.path.join(src, "objects", "*", "definition.json")))
    if not paths:
        fail("no objects/*/definition.json under %r" % src)

    templates = {}
    uuids = set()
    for path in paths:
        t = compact_template(path)
        if t["name"] in templates:
            fail("duplicate template name %r" % t["name"])
        if t["uuid"] in uuids:
            fail("duplicate template uuid %r" % t["uuid"])
        templates[t["name"]] = t
        uuids.add(t["uuid"])

    vocab = load_json(os.path.join(src, "relationships", "definition.json"))
    relationships = sorted({v["name"] for v in vocab["values"]})
    if not relationships:
        fail("empty relationships vocabulary")

    out = {
        "generated_by": "scripts/vendor-misp-objects.py",
        "relationships": relationships,
        "relationships_version": vocab.get("version"),
        "templates": [templates[n] for n in sorted(templates)],
    }
    crate_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = os.path.join(crate_root, OUT_REL)
    data = (json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            + "\n").encode("utf-8")
    with open(out_path, "wb") as f:
        f.write(data)
    print("wrote %s: %d templates, %d relationships, %d bytes"
          % (out_path, len(templates), len(relationships), len(data)))


if __name__ == "__main__":
    main(sys.argv)
