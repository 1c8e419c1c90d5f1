"""Structured output: checking a requested format (``"json"`` or a JSON Schema) before asking,
and the model's answer against it afterwards.

Ollama constrains the answer with the schema, but not every model or server version honours
it fully, so the answer is still validated here; a mismatch is a StructuredOutputError whose
few short lines can be shown to a person, or fed back for a retry.

A fenced answer (the whole answer one ```json block) is accepted: models trained on chat
habitually wrap JSON that way and the content is unambiguous. JSON with prose around it is
refused: which part is the answer would be a guess, and the retry asks again.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from bot.core.errors import InvalidRequestError, StructuredOutputError

log = logging.getLogger(__name__)

MAX_SCHEMA_BYTES = 20_000
MAX_SCHEMA_DEPTH = 32  # nested objects and arrays
MAX_SCHEMA_NODES = 5_000
MAX_ERRORS = 3
MAX_ERROR_CHARS = 200
_FENCED = re.compile(r"\A\s*```[ \t]*(?:json\b)?(.*?)```\s*\Z", re.S | re.I)


def check_format(format: object) -> None:
    """Refuse a format that is not None, "text", "json" or a valid, reasonably small JSON
    Schema, saying why (InvalidRequestError)."""
    if format is None or format in ("text", "json"):
        return
    if not isinstance(format, dict):
        raise InvalidRequestError('format must be "text", "json" or a JSON schema object.')
    _check_shape(format)
    try:
        size = len(json.dumps(format, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"The JSON schema is not JSON: {exc}.") from None
    if size > MAX_SCHEMA_BYTES:
        raise InvalidRequestError(
            f"The JSON schema is too large ({size:,} bytes; at most {MAX_SCHEMA_BYTES:,})."
        )
    validator = _validator_class(format)
    try:
        validator.check_schema(format)
    except SchemaError as exc:
        raise InvalidRequestError(
            f"The JSON schema is invalid: {_short(exc.message)} (at {exc.json_path})."
        ) from None


def _check_shape(schema: dict[str, Any]) -> None:
    """Bound depth and size before anything recurses into the schema (json.dumps would hit
    the recursion limit on a deep one, and a cycle would never end), and refuse what would
    be unsafe to validate with."""
    stack: list[tuple[object, int]] = [(schema, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidRequestError(
                f"The JSON schema is nested too deeply (at most {MAX_SCHEMA_DEPTH} levels)."
            )
        if nodes > MAX_SCHEMA_NODES:
            raise InvalidRequestError(
                f"The JSON schema is too large (more than {MAX_SCHEMA_NODES:,} parts)."
            )
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                # Nothing is fetched from outside: only the schema's own definitions.
                raise InvalidRequestError(
                    f"The JSON schema refers to {ref!r}; only references inside the schema "
                    "(starting with '#') are supported."
                )
            if isinstance(node.get("pattern"), str) or isinstance(
                node.get("patternProperties"), dict
            ):
                # Python's regular expressions backtrack: a pattern like (a+)+$ could keep
                # the bot busy for hours on a short answer, so none are run.
                raise InvalidRequestError(
                    "The JSON schema uses a regular expression (pattern); "
                    "patterns are not supported."
                )
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _validator_class(schema: dict[str, Any]) -> type[Validator]:
    if "$schema" not in schema:
        return validator_for(schema)
    # With a default, an unknown draft gives None instead of a deprecation warning.
    known = isinstance(schema["$schema"], str) and validator_for(schema, default=None)
    if not known:
        raise InvalidRequestError(
            f"The JSON schema's $schema {schema['$schema']!r} is not a JSON Schema draft "
            "we know (leave it out to use the latest)."
        )
    return known


def validate_answer(content: str, format: str | dict[str, Any]) -> Any:
    """The answer parsed as JSON, and valid against the schema when ``format`` is one;
    raises StructuredOutputError listing at most a few short problems.

    ``format`` "text" asks for nothing: the content comes back as it is.
    """
    if format == "text":
        return content
    value = _parse(content)
    if not isinstance(format, dict):
        return value
    validator = _validator_class(format)(format)
    try:
        errors = _first(validator.iter_errors(value))
    except Unresolvable as exc:  # a "#/..." reference to nowhere in the schema
        problem = _short(f"the schema's reference cannot be resolved: {exc}")
        raise StructuredOutputError([problem], content) from None
    except RecursionError:
        raise StructuredOutputError(["the answer is nested too deeply"], content) from None
    if errors:
        problems = [f"at {e.json_path}: {_short(e.message)}" for e in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            problems[-1] += " (and more)"
        raise StructuredOutputError(problems, content)
    return value


def _first(errors: Iterable[ValidationError]) -> list[ValidationError]:
    # One more than shown, to know whether there are more, without listing them all.
    return list(itertools.islice(errors, MAX_ERRORS + 1))


def _parse(content: str) -> Any:
    fenced = _FENCED.match(content)
    start = fenced.start(1) if fenced else 0
    try:
        return json.loads(content[start : fenced.end(1)] if fenced else content,
                          parse_constant=_no_constant)  # fmt: skip
    except json.JSONDecodeError as exc:
        # Where it failed in the whole answer, fence included, as a person sees it.
        line = content.count("\n", 0, start + exc.pos) + 1
        column = start + exc.pos - content.rfind("\n", 0, start + exc.pos)
        problem = f"{exc.msg} at line {line}, column {column}"
        if not exc.doc.strip():
            problem = "it is empty"
        raise StructuredOutputError([f"the answer is not valid JSON: {problem}"], content) from None
    except ValueError as exc:  # NaN or Infinity, which JSON does not have
        problem = _short(f"the answer is not valid JSON: {exc}")
        raise StructuredOutputError([problem], content) from None
    except RecursionError:
        raise StructuredOutputError(["the answer is nested too deeply"], content) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"


def render_json(value: Any) -> str:
    """``value`` as pretty-printed JSON for a ```json code block."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    # A string holding ``` would close the code block early; \u0060 is the same JSON value.
    return text.replace("```", "\\u0060\\u0060\\u0060")
