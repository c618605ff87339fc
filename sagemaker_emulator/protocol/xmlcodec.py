"""XML bodies shaped by a botocore model (rest-xml payloads and query responses).

Mirrors botocore's XML parser rules in reverse: member ``locationName``s,
wrapped vs ``flattened`` lists and maps, and attributes. One codec serves S3
and the query services (STS, IAM) alike.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree as ET
from xml.parsers import expat

from botocore.model import Shape

from .values import parse_scalar_text, scalar_text

_INTEGER = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _member_name(name: str, member: Shape) -> str:
    return member.serialization.get("name", name)


# ---------------------------------------------------------------- output
def append_value(parent: ET.Element, name: str, shape: Shape, value: Any) -> None:
    """Append ``value`` under ``parent`` as element(s) named ``name``."""
    kind = shape.type_name
    flattened = shape.serialization.get("flattened", False)
    if kind == "list":
        item_shape = shape.member
        if flattened:
            item_name = item_shape.serialization.get("name", name)
            for item in value:
                append_value(parent, item_name, item_shape, item)
        else:
            wrapper = ET.SubElement(parent, name)
            item_name = item_shape.serialization.get("name", "member")
            for item in value:
                append_value(wrapper, item_name, item_shape, item)
        return
    if kind == "map":
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        if flattened:
            for key, item in value.items():
                entry = ET.SubElement(parent, name)
                append_value(entry, key_name, shape.key, key)
                append_value(entry, value_name, shape.value, item)
        else:
            wrapper = ET.SubElement(parent, name)
            for key, item in value.items():
                entry = ET.SubElement(wrapper, "entry")
                append_value(entry, key_name, shape.key, key)
                append_value(entry, value_name, shape.value, item)
        return
    element = ET.SubElement(parent, name)
    if kind == "structure":
        fill_structure(element, shape, value)
    else:
        element.text = scalar_text(shape, value)


def fill_structure(element: ET.Element, shape: Shape, value: dict[str, Any]) -> None:
    for name, member in shape.members.items():
        item = value.get(name)
        if item is None:
            continue
        location = member.serialization.get("location")
        if location in ("header", "headers", "statusCode", "uri", "querystring"):
            continue
        if member.serialization.get("xmlAttribute"):
            element.set(_member_name(name, member), scalar_text(member, item))
            continue
        append_value(element, _member_name(name, member), member, item)


def structure_element(root_name: str, shape: Shape, value: dict[str, Any], namespace: str | None) -> ET.Element:
    root = ET.Element(root_name)
    if namespace:
        root.set("xmlns", namespace)
    fill_structure(root, shape, value)
    return root


def to_bytes(element: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8")


# ---------------------------------------------------------------- input
def read_value(shape: Shape, elements: list[ET.Element]) -> Any:
    """Decode the element(s) that carry one member (several for flattened lists)."""
    kind = shape.type_name
    if kind == "list":
        if shape.serialization.get("flattened", False):
            return [read_value(shape.member, [e]) for e in elements]
        items: list[Any] = []
        for wrapper in elements:
            items.extend(read_value(shape.member, [child]) for child in wrapper)
        return items
    if kind == "map":
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        entries = elements if shape.serialization.get("flattened", False) else [
            child for wrapper in elements for child in wrapper
        ]
        out: dict[str, Any] = {}
        for entry in entries:
            children = {_local(c.tag): c for c in entry}
            if key_name in children:
                key = children[key_name].text or ""
                val = children.get(value_name)
                out[key] = read_value(shape.value, [val]) if val is not None else None
        return out
    element = elements[-1]
    if kind == "structure":
        return read_structure(shape, element)
    text = element.text or ""
    if kind in ("integer", "long") and not _INTEGER.fullmatch(text.strip()):
        raise ValueError(f"not an integer: {text[:40]!r}")  # int() would take "1_0", "٣" or 4,000 digits
    return parse_scalar_text(shape, text)


def read_structure(shape: Shape, element: ET.Element) -> dict[str, Any]:
    children: dict[str, list[ET.Element]] = {}
    for child in element:
        children.setdefault(_local(child.tag), []).append(child)
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        if member.serialization.get("xmlAttribute"):
            attr = _member_name(name, member)
            for key, val in element.attrib.items():
                if _local(key) == attr.rsplit(":", 1)[-1]:
                    out[name] = parse_scalar_text(member, val)
            continue
        key = _member_name(name, member)
        if member.type_name == "list" and member.serialization.get("flattened", False):
            key = member.member.serialization.get("name", key)
        if key in children:
            out[name] = read_value(member, children[key])
    return out


#: deeper than any AWS request body nests (S3's deepest, lifecycle rules, is about 6 levels)
MAX_DEPTH = 64


class RefusedXML(ET.ParseError):
    """A document that declares a DTD or entities: refused before anything in it is expanded."""


def _refuse(*_: object) -> None:
    raise RefusedXML("DTDs and entity declarations are not accepted")


def _check_no_dtd(body: bytes) -> None:
    """Scan with expat and stop at the first DOCTYPE or entity declaration, or at absurd nesting.

    Why a separate pass: ElementTree's C parser gives no hook to refuse a DTD, and a DTD is how
    "billion laughs" and external-entity bodies work. No AWS request body has one, nor nests
    deeper than a handful of levels, so refusing both outright (as MalformedXML) is safe and
    faithful, and nothing is built for a body that will be refused.
    """
    scanner = expat.ParserCreate()
    depth = [0]

    def start(*_: object) -> None:
        depth[0] += 1
        if depth[0] > MAX_DEPTH:
            raise RefusedXML(f"elements nested deeper than {MAX_DEPTH} levels")

    def end(*_: object) -> None:
        depth[0] -= 1

    scanner.StartElementHandler = start
    scanner.EndElementHandler = end
    scanner.StartDoctypeDeclHandler = _refuse
    scanner.EntityDeclHandler = _refuse
    scanner.UnparsedEntityDeclHandler = _refuse
    scanner.ExternalEntityRefHandler = _refuse
    try:
        scanner.Parse(body, True)
    except expat.ExpatError as exc:
        raise ET.ParseError(str(exc)) from exc


def parse_document(shape: Shape, body: bytes) -> dict[str, Any]:
    """Decode an XML request body; any document that is not plain, well-formed XML of the shape raises ParseError."""
    _check_no_dtd(body)
    root = ET.fromstring(body)
    try:
        return read_structure(shape, root)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. <PartNumber>abc</PartNumber>
        raise ET.ParseError(f"invalid value: {exc}") from exc
