"""A JSON Schema for W3C PROV-JSON documents, written for these tests from the structure the
W3C Member Submission "PROV-JSON" (2013-04-24, https://www.w3.org/Submission/prov-json/) describes:

- a document is an object whose optional members are `prefix` (prefix -> namespace IRI),
  one member per PROV element kind (`entity`, `activity`, `agent`) and one per relation
  kind (`wasGeneratedBy`, `used`, ...), plus `bundle`;
- each of those maps an identifier (a qualified name; relations may use blank nodes `_:x`)
  to a record: an object of attributes;
- relation records name their participants with the `prov:` keys of the PROV-DM relation
  (e.g. `used` has `prov:activity`, `prov:entity`, `prov:time`); the first one is required;
- an attribute value is a string, number or boolean, a typed literal `{"$": ..., "type": ...}`
  (optionally `lang`), or an array of those; times are xsd:dateTime literals.
"""

from __future__ import annotations

from typing import Any

QNAME = r"^(_:)?[A-Za-z_][A-Za-z0-9_.-]*(:[A-Za-z0-9_.\-]*)?$"

_literal: dict[str, Any] = {
    "oneOf": [
        {"type": ["string", "number", "boolean"]},
        {
            "type": "object",
            "properties": {
                "$": {"type": ["string", "number", "boolean"]},
                "type": {"type": "string", "pattern": QNAME},
                "lang": {"type": "string"},
            },
            "required": ["$"],
            "additionalProperties": False,
        },
    ]
}
_value = {"oneOf": [_literal, {"type": "array", "items": _literal, "minItems": 1}]}
_datetime = {
    "oneOf": [
        {"type": "string", "format": "date-time"},
        {
            "type": "object",
            "properties": {"$": {"type": "string", "format": "date-time"}, "type": {"const": "xsd:dateTime"}},
            "required": ["$"],
        },
    ]
}
_id = {"type": "string", "pattern": QNAME}

# relation kind -> (required participant, other participants, time members)
RELATIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "wasGeneratedBy": ("prov:entity", ("prov:activity",), ("prov:time",)),
    "used": ("prov:activity", ("prov:entity",), ("prov:time",)),
    "wasInformedBy": ("prov:informed", ("prov:informant",), ()),
    "wasStartedBy": ("prov:activity", ("prov:trigger", "prov:starter"), ("prov:time",)),
    "wasEndedBy": ("prov:activity", ("prov:trigger", "prov:ender"), ("prov:time",)),
    "wasInvalidatedBy": ("prov:entity", ("prov:activity",), ("prov:time",)),
    "wasDerivedFrom": (
        "prov:generatedEntity",
        ("prov:usedEntity", "prov:activity", "prov:generation", "prov:usage"),
        (),
    ),
    "wasAttributedTo": ("prov:entity", ("prov:agent",), ()),
    "wasAssociatedWith": ("prov:activity", ("prov:agent", "prov:plan"), ()),
    "actedOnBehalfOf": ("prov:delegate", ("prov:responsible", "prov:activity"), ()),
    "wasInfluencedBy": ("prov:influencee", ("prov:influencer",), ()),
    "specializationOf": ("prov:specificEntity", ("prov:generalEntity",), ()),
    "alternateOf": ("prov:alternate1", ("prov:alternate2",), ()),
    "hadMember": ("prov:collection", ("prov:entity",), ()),
}


def _relation_schema(required: str, others: tuple[str, ...], times: tuple[str, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {name: _id for name in (required, *others)}
    properties.update({name: _datetime for name in times})
    record = {
        "type": "object",
        "properties": properties,
        "required": [required],
        "patternProperties": {QNAME: _value},
        "additionalProperties": False,
    }
    return {"type": "object", "propertyNames": {"pattern": QNAME}, "additionalProperties": record}


_element_record = {
    "type": "object",
    "properties": {"prov:startTime": _datetime, "prov:endTime": _datetime},
    "patternProperties": {QNAME: _value},
    "additionalProperties": False,
}
_elements = {"type": "object", "propertyNames": {"pattern": QNAME}, "additionalProperties": _element_record}

PROV_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "W3C PROV-JSON document (structure of the 2013 Member Submission)",
    "type": "object",
    "properties": {
        "prefix": {
            "type": "object",
            "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_.-]*$"},
            "additionalProperties": {"type": "string", "format": "uri"},
        },
        "entity": _elements,
        "activity": _elements,
        "agent": _elements,
        "bundle": {"type": "object"},
        **{kind: _relation_schema(*spec) for kind, spec in RELATIONS.items()},
    },
    "additionalProperties": False,
}


def undeclared_prefixes(document: dict[str, Any]) -> set[str]:
    """Prefixes used in identifiers, attribute names and QName values that the document does not declare
    (`prov`, `xsd` and blank nodes `_` are predefined)."""
    declared = set(document.get("prefix", {})) | {"prov", "xsd", "_"}
    used: set[str] = set()

    def note(name: str) -> None:
        if ":" in name:
            used.add(name.split(":", 1)[0])

    for kind, records in document.items():
        if kind == "prefix":
            continue
        for identifier, record in records.items():
            note(identifier)
            for key, value in record.items():
                note(key)
                if isinstance(value, str) and key in {"prov:entity", "prov:activity", "prov:agent"}:
                    note(value)
                if isinstance(value, dict) and value.get("type") == "prov:QUALIFIED_NAME":
                    note(str(value["$"]))
    return used - declared
