"""The end-to-end world fixture, for the security tests that run the real bot."""

from __future__ import annotations

from tests.e2e.conftest import w

__all__ = ["w"]
