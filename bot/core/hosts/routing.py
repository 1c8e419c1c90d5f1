"""Which hosts may answer a question, and which of them is best.

A question goes to a host that has its model (the first model of its chain that some host
has: the chosen one, else a fallback) and is in rotation. Among those with a free slot it
prefers one where the model is loaded already (no load time, and Ollama keeps the prompt
cached there), then the one with the most free slots, then the first configured.

When no host is known to have any model of the chain (lists not read yet, or a model
nobody has), every host may answer: the one asked says what it lacks, and generation
falls back as with a single server. When none of those is in rotation, they are asked
anyway: the question then fails (or is retried) as it would with one server that is down.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.core.hosts.host import Host


def placement(hosts: Sequence[Host], models: Sequence[str]) -> tuple[str, list[Host]]:
    """The model of the chain that will be asked for, and the hosts that have it."""
    for model in models:
        having = [h for h in hosts if h.has(model)]
        if having:
            return model, having
    return models[0], list(hosts)


def eligible(
    hosts: Sequence[Host], models: Sequence[str], exclude: Collection[Host] = ()
) -> list[Host]:
    """The hosts that may answer (never empty while ``hosts`` minus ``exclude`` is not)."""
    _, having = placement(hosts, models)
    candidates = [h for h in having if h not in exclude]
    return [h for h in candidates if h.up] or candidates


def alternatives(
    hosts: Sequence[Host], models: Sequence[str], exclude: Collection[Host]
) -> list[Host]:
    """Hosts in rotation that have the model and were not tried: where a failed question
    may move (empty: it stays, and is retried where it is)."""
    _, having = placement(hosts, models)
    return [h for h in having if h.up and h not in exclude]


def best(free: Sequence[Host], model: str) -> Host:
    """Warm first, then the most free slots, then configuration order (``min`` is stable)."""
    return min(free, key=lambda h: (not h.is_warm(model), -h.free))
