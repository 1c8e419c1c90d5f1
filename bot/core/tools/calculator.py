"""The calculator tool's arithmetic: a tokenizer and a recursive-descent parser of our own
(no eval, no ast). Input length, nesting and the size of every intermediate number are
bounded, so no expression can hang the event loop or fill the memory."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from bot.core.tools.registry import ToolError

Number = int | float

MAX_EXPRESSION_CHARS = 500
MAX_NESTING = 40  # parentheses, signs and exponents inside one another
# Integers stay exact, so their size is what bounds time and memory: about 1000 digits
# (also well under Python's 4300-digit limit on printing an int).
MAX_RESULT_BITS = 3322
MAX_ROUND_DIGITS = 100
MAX_FUNCTION_ARGS = 50

_TOO_LARGE = "the result is too large"
_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>\*\*|//|[-+*/%(),])",
    re.ASCII,  # "\d" would otherwise take any script's digits
)
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "/": operator.truediv, "//": operator.floordiv, "%": operator.mod,
}  # fmt: skip
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(value)
    # round(5, -10**6) would build 10**10**6 first.
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise ToolError(f"round's digits must be a whole number from -{MAX_ROUND_DIGITS} "
                        f"to {MAX_ROUND_DIGITS}")  # fmt: skip
    return round(value, digits)


# name: (function, fewest arguments, most arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (math.sqrt, 1, 1), "abs": (abs, 1, 1), "round": (_round, 1, 2),
    "min": (min, 1, MAX_FUNCTION_ARGS), "max": (max, 1, MAX_FUNCTION_ARGS),
    "log": (math.log, 1, 2), "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
}  # fmt: skip


def _checked(value: object) -> Number:
    if isinstance(value, complex):  # (-8) ** (1/3)
        raise ToolError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(_TOO_LARGE)
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise ToolError(_TOO_LARGE)
    assert isinstance(value, int | float)
    return value


def _apply(op: str, left: Number, right: Number) -> Number:
    try:
        if op != "**":
            return _checked(_BINARY[op](left, right))
        # Refuse 10**10**10 before computing it: |left| >= 2 makes the result at least
        # ``right`` bits long, and log2 gives its length exactly enough.
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and (right > MAX_RESULT_BITS or right * math.log2(abs(left)) > MAX_RESULT_BITS)
        ):
            raise ToolError(_TOO_LARGE)
        return _checked(left**right)
    except ZeroDivisionError:
        shown = f"{format_number(left)} {op} {format_number(right)}"
        raise ToolError(f"division by zero in {shown}") from None
    except OverflowError:
        raise ToolError(_TOO_LARGE) from None


class _Parser:
    """Recursive descent with Python's precedence: ``-2**2`` is -4, ``2**-1`` is 0.5 and
    ``2**3**2`` is 2**9."""

    def __init__(self, tokens: list[tuple[str, str, int]]) -> None:
        self._tokens = tokens  # (kind, text, position)
        self._at = 0
        self._depth = 0

    def parse(self) -> Number:
        value = self._sum()
        if self._at < len(self._tokens):
            _, text, position = self._tokens[self._at]
            raise ToolError(f"unexpected {text!r} at position {position + 1}")
        return value

    def _accept(self, *ops: str) -> str | None:
        if self._at < len(self._tokens):
            kind, text, _ = self._tokens[self._at]
            if kind == "op" and text in ops:
                self._at += 1
                return text
        return None

    def _expect(self, op: str) -> None:
        if self._accept(op) is None:
            found = self._tokens[self._at][1] if self._at < len(self._tokens) else "the end"
            raise ToolError(f"expected {op!r} but found {found!r}")

    def _sum(self) -> Number:
        value = self._product()
        while (op := self._accept("+", "-")) is not None:
            value = _apply(op, value, self._product())
        return value

    def _product(self) -> Number:
        value = self._unary()
        while (op := self._accept("*", "/", "//", "%")) is not None:
            value = _apply(op, value, self._unary())
        return value

    def _unary(self) -> Number:
        # Every way of nesting (parentheses, signs, exponents) passes here.
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise ToolError(f"the expression is nested too deeply (over {MAX_NESTING})")
            if (op := self._accept("+", "-")) is not None:
                value = self._unary()
                return _checked(-value if op == "-" else value)
            base = self._primary()
            if self._accept("**") is not None:
                return _apply("**", base, self._unary())
            return base
        finally:
            self._depth -= 1

    def _primary(self) -> Number:
        if self._at >= len(self._tokens):
            raise ToolError("the expression ends too early")
        kind, text, position = self._tokens[self._at]
        self._at += 1
        if kind == "number":
            return _checked(float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "name":
            return self._name(text)
        if text == "(":
            value = self._sum()
            self._expect(")")
            return value
        raise ToolError(f"unexpected {text!r} at position {position + 1}")

    def _name(self, name: str) -> Number:
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name not in _FUNCTIONS:
            known = ", ".join([*_CONSTANTS, *_FUNCTIONS])
            raise ToolError(f"unknown name {name!r} (known: {known})")
        function, fewest, most = _FUNCTIONS[name]
        if self._accept("(") is None:
            raise ToolError(f"{name} needs its arguments in parentheses, e.g. {name}(2)")
        args = [self._sum()]
        while self._accept(",") is not None:
            args.append(self._sum())
        self._expect(")")
        if not fewest <= len(args) <= most:
            wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
            raise ToolError(f"{name} takes {wanted} argument(s), not {len(args)}")
        try:
            return _checked(function(*args))
        except (ValueError, ZeroDivisionError):  # sqrt(-1), log(0), log(2, 1)
            shown = ", ".join(format_number(a) for a in args)
            raise ToolError(f"{name}({shown}) is not defined") from None
        except OverflowError:
            raise ToolError(_TOO_LARGE) from None


def _tokenize(expression: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(expression):
        if expression[position].isspace():
            position += 1
            continue
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ToolError(
                f"unexpected character {expression[position]!r} at position {position + 1}"
            )
        assert match.lastgroup is not None
        tokens.append((match.lastgroup, match.group(), position))
        position = match.end()
    return tokens


def evaluate(expression: str) -> Number:
    """The value of an arithmetic ``expression``; raises ToolError saying what is wrong."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is too long (at most {MAX_EXPRESSION_CHARS} characters)")
    tokens = _tokenize(expression)
    if not tokens:
        raise ToolError("the expression is empty")
    return _Parser(tokens).parse()


def format_number(value: Number) -> str:
    # 15 significant digits hide binary noise: 0.1 + 0.2 shows as 0.3.
    return format(value, ".15g") if isinstance(value, float) else str(value)
