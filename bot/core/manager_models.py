"""The request manager's model and host methods: what the Ollama hosts have (the union, and
which host has what), details, pulls (to one host or all), health and each host's figures;
what a model can take (its window, files, images) and embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot.core.hosts.host import HostReport
from bot.core.hosts.pool import HostPool
from bot.core.model_catalog import HostedModel, ModelCatalog
from bot.core.ollama_client import OllamaClient
from bot.core.types import HealthStatus, ModelDetails, ModelInfo, PullProgress

if TYPE_CHECKING:
    from bot.core.context_window import ContextWindow, TokenEstimator
    from bot.core.documents import Document
    from bot.core.embedding import Embedder
    from bot.core.services import Services


class ModelMethods:
    """Mixed into OllamaRequestManager, which provides ``hosts``, ``catalog``, ``services``
    and ``default_model``."""

    default_model: str

    @property
    def services(self) -> Services:
        raise NotImplementedError

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

    # what a model can take ----------------------------------------------------------------
    async def context_window(
        self, model: str | None = None, num_ctx: int | None = None
    ) -> ContextWindow:
        """The window a query on ``model`` runs with: ``num_ctx``, else the default, capped
        at the model's maximum."""
        return await self.services.executor.planner.context_window(
            model or self.default_model, num_ctx
        )

    async def ensure_fits(
        self,
        documents: Sequence[Document],
        model: str | None = None,
        num_ctx: int | None = None,
        num_predict: int | None = None,
    ) -> None:
        """Refuse files whose text alone would not fit the model's context window, before
        asking (AttachmentError TOO_LONG naming the largest)."""
        planner = self.services.executor.planner
        await planner.ensure_fits(documents, model or self.default_model, num_ctx, num_predict)

    async def ensure_can_see(self, model: str | None = None) -> None:
        """Refuse, before asking, images for a model that cannot see them when no
        VISION_MODEL can stand in (VisionUnavailableError)."""
        await self.services.executor.planner.model_that_sees(model)

    @property
    def tokens(self) -> TokenEstimator:
        """Token estimates per model, learned from the answers so far."""
        return self.services.executor.planner.tokens

    async def embed(
        self, texts: str | Sequence[str], model: str | None = None
    ) -> list[list[float]]:
        """Embed texts with ``model`` (default EMBEDDING_MODEL): one unit vector each."""
        items = [texts] if isinstance(texts, str) else list(texts)
        return (await self.embedder.embed(items, model=model)).vectors.tolist()

    @property
    def embedder(self) -> Embedder:
        return self.services.embedder
