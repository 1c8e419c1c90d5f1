"""Helpers for the runner's tests: what the Ollama emulator was asked."""

from __future__ import annotations

from tests.emulators.ollama_server import OllamaEmulator


def asked_prompts(emu: OllamaEmulator) -> list[str]:
    """The last user message of every chat/generate request, in arrival order."""
    asked = []
    for request in emu.requests:
        if request.path == "/api/chat" and request.messages:
            asked.append(request.messages[-1]["content"])
        elif request.path == "/api/generate" and request.json and request.json.get("prompt"):
            asked.append(request.json["prompt"])
    return asked
