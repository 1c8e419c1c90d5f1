"""The request manager's model and host methods: what the Ollama hosts have (the union, and
which host has what), details, pulls (to one host or all), health and each host's figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.core.hosts.host import HostReport
from bot.core.hosts.pool import HostPool
from bot.core.model_catalog import HostedModel, ModelCatalog
from bot.core.ollama_client import OllamaClient
from bot.core.types import HealthStatus, ModelDetails, ModelInfo, PullProgress


class ModelMethods:
    """Mixed into OllamaRequestManager, which provides ``hosts`` and ``catalog``."""

    @property
    def hosts(self) -> HostPool:
        raise NotImplementedError

    @property
    def catalog(self) -> ModelCatalog:
        raise NotImplementedError

    @property
    def client(self) -> OllamaClient:
        """The first host's client (the only one with a single OLLAMA_HOST)."""
        return self.hosts.hosts[0].client

    @property
    def host_labels(self) -> list[str]:
        """The hosts, as their URLs without credentials, in configuration order."""
        return [h.label for h in self.hosts.hosts]

    async def list_models(self, force_refresh: bool = False) -> list[ModelInfo]:
        """Every model of every host (in rotation), once each."""
        return await self.catalog.list(force_refresh=force_refresh)

    async def hosted_models(self, force_refresh: bool = False) -> list[HostedModel]:
        """Every model, with the hosts that have it."""
        return await self.catalog.hosted(force_refresh=force_refresh)

    async def is_model_available(self, name: str) -> bool:
        return await self.catalog.is_available(name)

    async def show_model(self, name: str) -> ModelDetails:
        return await self.catalog.show(name)

    async def pull_model(
        self,
        name: str,
        progress: Callable[[PullProgress], Any] | None = None,
        host: str | None = None,
    ) -> bool:
        """Download a model to ``host`` (a label of ``host_labels``), or to every host."""
        return await self.catalog.pull(name, progress, host)

    async def health_check(self) -> HealthStatus:
        """Healthy when a host answers (with several, each one's result is in host_reports)."""
        return await self.catalog.health()

    def host_reports(self) -> list[HostReport]:
        """Each host: in rotation or not, answers in flight and waiting, answers, errors."""
        return self.hosts.reports()
