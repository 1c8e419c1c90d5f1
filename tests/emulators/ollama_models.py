"""The emulator's model catalogue and how real Ollama describes models on the wire.

Field names follow api/types.go (ListModelResponse, ProcessModelResponse, ShowResponse,
ProgressResponse) so that clients parsing those answers see what a real server sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from .ollama_text import normalize_name, parameter_count, rfc3339, sha256_hex

# A fixed install time keeps /api/tags answers identical from one run to the next.
INSTALLED_AT: Final = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)

_STOP_TOKENS: Final = {
    "llama": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "qwen3": ("<|im_start|>", "<|im_end|>"),
    "gemma3": ("<end_of_turn>",),
}
# types/model/capability.go at v0.12.6: all a server can report in /api/show.
CAPABILITIES: Final = ("completion", "tools", "insert", "vision", "embedding", "thinking")
# The tool-call tag of each family's template (what tools/template.go's parseTag finds);
# families not listed write bare JSON, as llama3.2's template does.
_TOOL_TAGS: Final = {"qwen3": "<tool_call>", "qwen2": "<tool_call>", "qwen2.5": "<tool_call>"}
IGNORE: Final = "ignore"
REFUSE: Final = "refuse"


@dataclass
class EmulatedModel:
    name: str  # a name given without a tag gets ":latest", as in Ollama
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    size: int = 2_019_393_189
    context_length: int = 8192  # the trained maximum /api/show reports, not what runs
    # What /api/show lists, in the order given (a real server lists completion or
    # embedding first, then vision, tools, insert, thinking); it also decides what the
    # emulator refuses: tools, thinking, a suffix (insert), chat at all (completion).
    capabilities: tuple[str, ...] = ("completion",)
    embedding_length: int = 64  # dimension of the vectors /api/embed returns
    # How many characters one token of this model's tokenizer covers on average: tokenizers
    # differ by family, and a client can only learn it from prompt_eval_count.
    chars_per_token: float = 4.0
    # How the model writes a tool call: after this tag, or "{" for a bare JSON object;
    # None takes the family's (see _TOOL_TAGS).
    tool_tag: str | None = None
    # Prompt tokens one image costs a vision model (ollama_images explains the default).
    tokens_per_image: int = 768
    # Images sent to a model without "vision": IGNORE (a text architecture: they never
    # reach the model) or REFUSE (a vision architecture without its vision weights: 500).
    images_without_vision: str = IGNORE

    def __post_init__(self) -> None:
        self.name = normalize_name(self.name)
        unknown = set(self.capabilities) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {CAPABILITIES}")
        if self.images_without_vision not in (IGNORE, REFUSE):
            raise ValueError(f"images_without_vision must be {IGNORE!r} or {REFUSE!r}")

    @property
    def tool_call_tag(self) -> str:
        return self.tool_tag or _TOOL_TAGS.get(self.family, "{")

    @property
    def digest(self) -> str:
        return sha256_hex(self.name)

    @property
    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    json: dict[str, Any] | None
    time: float  # time.monotonic() on arrival
    headers: dict[str, str] = field(default_factory=dict)
    # chat and generate: every image of the request, decoded, in message order
    images: list[bytes] = field(default_factory=list)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.json or {}).get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools the request offered, as sent."""
        return list((self.json or {}).get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return [str((t.get("function") or {}).get("name")) for t in self.tools]

    @property
    def tool_messages(self) -> list[dict[str, Any]]:
        """The tool results the client sent back (role "tool", with tool_name if any)."""
        return [m for m in self.messages if m.get("role") == "tool"]


def default_models() -> list[EmulatedModel]:
    return [
        EmulatedModel(
            "llama3.2:latest", context_length=131_072, capabilities=("completion", "tools")
        ),
        EmulatedModel(
            "qwen3:latest",
            family="qwen3",
            parameter_size="8.2B",
            size=5_225_387_923,
            context_length=40960,
            capabilities=("completion", "tools", "thinking"),
        ),
        EmulatedModel(
            "nomic-embed-text:latest",
            family="nomic-bert",
            parameter_size="137M",
            quantization_level="F16",
            size=274_302_450,
            context_length=2048,
            capabilities=("embedding",),
            embedding_length=768,
        ),
    ]


def vision_model() -> EmulatedModel:
    """gemma3 as Ollama 0.12.6 shows it: vision, no tools (its template has none)."""
    return EmulatedModel(
        "gemma3:latest",
        family="gemma3",
        parameter_size="4.3B",
        size=3_338_801_804,
        context_length=131_072,
        capabilities=("completion", "vision"),
        tokens_per_image=256,  # gemma3's mm_tokens_per_image
    )


def second_embedding_model() -> EmulatedModel:
    """mxbai-embed-large as Ollama shows it: another embedding model, for a change of
    EMBEDDING_MODEL (its vectors are unrelated to nomic-embed-text's, and longer)."""
    return EmulatedModel(
        "mxbai-embed-large:latest",
        family="bert",
        parameter_size="334M",
        quantization_level="F16",
        size=669_615_493,
        context_length=512,
        capabilities=("embedding",),
        embedding_length=1024,
    )


def extended_models() -> list[EmulatedModel]:
    """The default catalogue, a vision model and a second embedding model. Not the
    default: tests elsewhere assert the exact list of three models that /api/tags shows."""
    return [*default_models(), vision_model(), second_embedding_model()]


def listing(model: EmulatedModel, modified_at: datetime) -> dict[str, Any]:
    """One entry of GET /api/tags."""
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": rfc3339(modified_at),
        "size": model.size,
        "digest": model.digest,
        "details": model.details,
    }


def running(model: EmulatedModel, expires_at: datetime, num_ctx: int) -> dict[str, Any]:
    """One entry of GET /api/ps; the emulator pretends every model fits in VRAM."""
    return {
        "name": model.name,
        "model": model.name,
        "size": model.size,
        "digest": model.digest,
        "details": model.details,
        "expires_at": rfc3339(expires_at),
        "size_vram": model.size,
        "context_length": num_ctx,  # the window it was loaded with, not the trained maximum
    }


def show(model: EmulatedModel, modified_at: datetime) -> dict[str, Any]:
    """The body of POST /api/show."""
    stops = _STOP_TOKENS.get(model.family, ("</s>",))
    return {
        "license": "Emulated model licence: for tests only.",
        "modelfile": f"# Modelfile generated by the emulator\nFROM {model.name}\n",
        # Ollama pads parameter names to a column, one `name value` pair per line.
        "parameters": "\n".join(f"{'stop':<30} {json.dumps(s)}" for s in stops),
        "template": "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}",
        "details": model.details,
        "model_info": {
            "general.architecture": model.family,
            "general.parameter_count": parameter_count(model.parameter_size),
            "general.quantization_version": 2,
            f"{model.family}.context_length": model.context_length,
            f"{model.family}.embedding_length": model.embedding_length,
        },
        "capabilities": list(model.capabilities),
        "modified_at": rfc3339(modified_at),
    }


def pull_progress(model: EmulatedModel) -> Iterator[dict[str, Any]]:
    """The download lines of POST /api/pull, between "pulling manifest" and the end."""
    for layer, total in {"model": model.size, "template": 1_429, "params": 96}.items():
        digest = "sha256:" + sha256_hex(f"{model.name}/{layer}")
        line = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total}
        # Go omits `completed` while it is 0, hence no such key on the first line.
        yield line
        for step in range(1, 5):
            yield {**line, "completed": total * step // 4}
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
