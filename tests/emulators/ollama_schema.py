"""Structured output: what `format` makes a model write, and how the emulator can break it.

A real server turns `format` into a grammar (llm/server.go at v0.12.6): "json" is any JSON
object (grammarJSON's root is `object`), a schema object becomes the schema's grammar, and
the model can write nothing else. The emulator writes a minimal instance of the schema
instead: the required properties only (and as many more as minProperties asks), one item
per array unless minItems wants more, the first enum value, numbers pulled into their
range. `pattern` is not honoured: no generic way to invent a matching string.

Tests of a bot's validation and retry need answers that are wrong on purpose: violate()
drops a required property, gives a property the wrong type, or cuts the JSON short.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MISSING: Final = "missing"  # a required property left out
WRONG_TYPE: Final = "type"  # a property (or the whole answer) of the wrong type
INVALID: Final = "invalid"  # not JSON at all: cut in the middle
AUTO: Final = "auto"  # missing if something is required, else type, else invalid
VIOLATIONS: Final = (AUTO, MISSING, WRONG_TYPE, INVALID)

_FORMATS: Final = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
_WRONG: Final = {
    "string": 0,
    "integer": "not an integer",
    "number": "not a number",
    "boolean": "not a boolean",
    "null": "not null",
    "array": "not an array",
    "object": "not an object",
}


def format_error(fmt: object) -> str | None:
    """The error Completion() returns for a `format` it cannot use, else None. Go quotes
    the raw JSON of the value with %q; the emulator re-encodes it compactly, as the
    official client sends it."""
    if fmt is None or fmt == "" or fmt == "json" or isinstance(fmt, dict):
        return None
    raw = json.dumps(fmt, separators=(",", ":"), ensure_ascii=False)
    return f'invalid format: {go_quote(raw)}; expected "json" or a valid JSON Schema object'


def go_quote(text: str) -> str:
    """strconv.Quote, which fmt's %q uses for a byte slice."""
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f"}
    escapes |= {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = []
    for char in text:
        code = ord(char)
        if char in escapes:
            out.append(escapes[char])
        elif char == " " or char.isprintable():
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _resolve(schema: Any, root: Any) -> dict[str, Any]:
    """Follow $ref (a JSON pointer into the root: "#/$defs/Name") and merge allOf."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        target: Any = root
        for part in str(schema["$ref"]).removeprefix("#").strip("/").split("/"):
            if part:
                key = part.replace("~1", "/").replace("~0", "~")
                target = target.get(key, {}) if isinstance(target, dict) else {}
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
        seen += 1
    if not isinstance(schema, dict):
        return {}
    if parts := schema.get("allOf"):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in parts:
            sub = _resolve(part, root)
            merged["properties"] = {**merged.get("properties", {}), **sub.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *sub.get("required", [])]
            merged.update({k: v for k, v in sub.items() if k not in ("properties", "required")})
        return merged
    return schema


def schema_type(schema: dict[str, Any]) -> str | None:
    """The one type the emulator writes for a schema: the first non-null one."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
    return kind if isinstance(kind, str) else None


def instance(schema: Any, root: Any = None, variant: int = 0) -> Any:
    """A minimal value valid under `schema`; `variant` makes array items distinct."""
    top = root is None
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][variant % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if options := schema.get(key):
            usable = [o for o in options if _resolve(o, root).get("type") != "null"]
            return instance((usable or options)[0], root, variant)
    kind = schema_type(schema)
    if kind == "object":
        return _object(schema, root, variant)
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), 1)
        count = min(count, int(schema.get("maxItems", count)))
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        return [
            instance(prefix[i] if i < len(prefix) else items, root, variant + i)
            for i in range(count)
        ]
    if kind in ("integer", "number"):
        return _number(schema, kind, variant)
    if kind == "boolean":
        return variant % 2 == 1
    if kind == "null":
        return None
    if kind is None and top:
        return {}  # an unconstrained answer: the emulator still writes an object
    return _string(schema, variant)


def _object(schema: dict[str, Any], root: Any, variant: int) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    names = [n for n in schema.get("required") or [] if isinstance(n, str)]
    wanted = int(schema.get("minProperties", 0))
    names += [n for n in properties if n not in names][: max(0, wanted - len(names))]
    value = {}
    for name in names:
        sub = properties.get(name, extra if isinstance(extra, dict) else {"type": "string"})
        value[name] = instance(sub, root, variant)
    return value


def _number(schema: dict[str, Any], kind: str, variant: int) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = 1 if kind == "integer" else 0.5
    # Draft 4 wrote exclusiveMinimum: true beside minimum; later drafts give the bound.
    if ex_low is True:
        ex_low, low = low, None
    if ex_high is True:
        ex_high, high = high, None
    value: float = variant
    if _is_number(low) and value < low:
        value = low
    if _is_number(ex_low) and value <= ex_low:
        value = ex_low + step
    if _is_number(high) and value > high:
        value = high
    if _is_number(ex_high) and value >= ex_high:
        value = ex_high - step
    if isinstance(multiple := schema.get("multipleOf"), int | float) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    return int(value) if kind == "integer" else float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string(schema: dict[str, Any], variant: int) -> str:
    text = _FORMATS.get(str(schema.get("format")), "example" + (str(variant) if variant else ""))
    text = text.ljust(int(schema.get("minLength", 0)), "x")
    return text[: int(schema["maxLength"])] if "maxLength" in schema else text


def with_text(schema: dict[str, Any], value: Any, text: str) -> Any:
    """Put the scripted text in the first required plain-string property, so that the
    structured answer still carries what the test scripted (or the echo)."""
    schema = _resolve(schema, schema)
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties") or {}
    for name in value:
        sub = _resolve(properties.get(name, {}), schema)
        plain = sub.get("type") == "string" and not {"enum", "const", "format", "pattern"} & set(
            sub
        )
        if plain and int(sub.get("minLength", 0)) <= len(text) <= sub.get("maxLength", math.inf):
            return {**value, name: text}
    return value


def violate(value: Any, schema: Any, mode: str) -> str:
    """The JSON text of `value` made invalid under `schema` in the way `mode` says; a mode
    that does not apply (nothing required, nothing typed) falls back to the next one."""
    root = _resolve(schema, schema) if isinstance(schema, dict) else {}
    present = value if isinstance(value, dict) else {}
    required = [n for n in root.get("required") or [] if n in present]
    if mode == AUTO:
        mode = MISSING if required else WRONG_TYPE if schema_type(root) else INVALID
    if mode == MISSING and required:
        return json.dumps({k: v for k, v in present.items() if k != required[0]})
    if mode in (MISSING, WRONG_TYPE):
        if (first := next(iter(present), None)) is not None:
            sub = _resolve((root.get("properties") or {}).get(first, {}), schema)
            if (kind := schema_type(sub)) in _WRONG:
                return json.dumps({**present, first: _WRONG[kind]})
        if (kind := schema_type(root)) in _WRONG:
            return json.dumps(_WRONG[kind])
    text = json.dumps(value)
    return text[: max(1, len(text) // 2)]


def reply(text: str, fmt: str | dict[str, Any], violation: str | None = None) -> str:
    """The answer under `format`. Scripted text that is already a JSON object (or, under a
    schema, any JSON) goes out as scripted; other text is wrapped ("json":
    {"response": text}) or replaced by the schema's minimal instance carrying it."""
    try:
        scripted = json.loads(text)
    except ValueError:
        scripted = None
        parsed = False
    else:
        parsed = isinstance(scripted, dict) or isinstance(fmt, dict)
    if isinstance(fmt, dict):
        value = scripted if parsed else with_text(fmt, instance(fmt), text)
    else:
        value = scripted if parsed else {"response": text}
    if violation is None:
        return text if parsed else json.dumps(value)
    # "json" promises an object: a JSON string instead breaks that promise.
    return violate(value, fmt if isinstance(fmt, dict) else {"type": "object"}, violation)
