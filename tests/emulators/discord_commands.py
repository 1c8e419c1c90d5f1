"""Application command registration checks (what Discord rejects on a bulk overwrite)."""

from __future__ import annotations

import re
from typing import Any

_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
# Sub-command (1) and group (2) through attachment (11), the last type Discord defines.
_OPTION_TYPES = tuple(range(1, 12))
_TYPE_CHOICES_MESSAGE = "Value must be one of {" + ", ".join(map(str, _OPTION_TYPES)) + "}."


def _name_errors(name: object, *, chat_input: bool) -> dict[str, Any] | None:
    if not isinstance(name, str) or not (
        _NAME_RE.match(name) if chat_input else 1 <= len(name) <= 32
    ):
        return {
            "_errors": [
                {"code": "APPLICATION_COMMAND_INVALID_NAME", "message": "Command name is invalid"}
            ]
        }
    if chat_input and name != name.lower():
        return {
            "_errors": [
                {"code": "APPLICATION_COMMAND_INVALID_NAME", "message": "Command name is invalid"}
            ]
        }
    return None


def _options_errors(options: list[dict[str, Any]]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if len(options) > 25:
        errors["_errors"] = [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}
        ]
    seen_optional = False
    names: set[str] = set()
    for i, opt in enumerate(options):
        oerr: dict[str, Any] = {}
        if opt.get("type") not in _OPTION_TYPES:
            oerr["type"] = {
                "_errors": [
                    {
                        "code": "BASE_TYPE_CHOICES",
                        "message": _TYPE_CHOICES_MESSAGE,
                    }
                ]
            }
        nerr = _name_errors(opt.get("name"), chat_input=True)
        if nerr:
            oerr["name"] = nerr
        if opt.get("name") in names:
            oerr["name"] = {
                "_errors": [
                    {
                        "code": "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                        "message": "Option name already exists",
                    }
                ]
            }
        names.add(str(opt.get("name")))
        desc = opt.get("description") or ""
        if not 1 <= len(desc) <= 100:
            oerr["description"] = {
                "_errors": [
                    {
                        "code": "BASE_TYPE_BAD_LENGTH",
                        "message": "Must be between 1 and 100 in length.",
                    }
                ]
            }
        if len(opt.get("choices") or []) > 25:
            oerr["choices"] = {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}
                ]
            }
        if opt.get("type") in (1, 2):
            sub = _options_errors(opt.get("options") or [])
            if sub:
                oerr["options"] = sub
        elif opt.get("required"):
            if seen_optional:
                oerr["required"] = {
                    "_errors": [
                        {
                            "code": "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                            "message": (
                                "Required options must be placed before non-required options"
                            ),
                        }
                    ]
                }
        else:
            seen_optional = True
        if oerr:
            errors[str(i)] = oerr
    return errors


def validate_commands(commands: list[dict[str, Any]]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if sum(1 for c in commands if int(c.get("type") or 1) == 1) > 100:
        errors["_errors"] = [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 100 or fewer in length."}
        ]
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        ctype = int(cmd.get("type") or 1)
        cerr: dict[str, Any] = {}
        nerr = _name_errors(cmd.get("name"), chat_input=ctype == 1)
        if nerr:
            cerr["name"] = nerr
        key = (str(cmd.get("name")), ctype)
        if key in seen:
            cerr["name"] = {
                "_errors": [
                    {
                        "code": "APPLICATION_COMMAND_ALREADY_EXISTS",
                        "message": "Application command names must be unique",
                    }
                ]
            }
        seen.add(key)
        if ctype == 1 and not 1 <= len(cmd.get("description") or "") <= 100:
            cerr["description"] = {
                "_errors": [
                    {
                        "code": "BASE_TYPE_BAD_LENGTH",
                        "message": "Must be between 1 and 100 in length.",
                    }
                ]
            }
        oerr = _options_errors(cmd.get("options") or [])
        if oerr:
            cerr["options"] = oerr
        if cerr:
            errors[str(i)] = cerr
    return errors
