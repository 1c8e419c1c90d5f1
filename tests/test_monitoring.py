"""The compose `monitoring` profile: the Grafana dashboard queries only metrics a running bot
serves, and the provisioning files, Prometheus and compose point at one another."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bot import OllamaRequestManager
from bot.ops.http_api import DiscordStatus, start_http_server
from tests.emulators.ollama_server import OllamaEmulator

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "ollacord.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = MONITORING / "grafana" / "provisioning" / "dashboards" / "ollacord.yml"
PROMETHEUS = MONITORING / "prometheus.yml"
# Series Prometheus itself adds to every scrape, not served by the bot.
PROMETHEUS_OWN = {"up"}

# PromQL words that are not metric names: functions and aggregations (always called), and
# the keywords and modifiers that stand alone.
FUNCTIONS = {
    "abs", "absent", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp_max",
    "clamp_min", "count", "count_over_time", "delta", "deriv", "floor", "group",
    "histogram_quantile", "idelta", "increase", "irate", "label_replace", "max",
    "max_over_time", "min", "min_over_time", "quantile", "rate", "resets", "round", "scalar",
    "sort", "sort_desc", "stddev", "sum", "sum_over_time", "time", "topk", "vector",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"


class FakeDiscord:
    def __call__(self) -> DiscordStatus:
        return DiscordStatus(True, 0.05)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # collapsed rows hold theirs


def graph_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(board["panels"]) if p["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression the dashboard runs, template variables' included."""
    found = [t["expr"] for p in graph_panels(board) for t in p.get("targets", [])]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else query or ""
        # Grafana's label_values(metric, label) is not PromQL: its metric is what matters.
        found += re.findall(r"label_values\(\s*([^,\s)]+)", text)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (as written: with _total, _bucket...)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values may hold anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, [5m] or [$__rate_interval]
    text = re.sub(GROUPING, " ", text)  # label names after by, on...
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set()
    for name, call in re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        if call:
            assert name in FUNCTIONS, f"unknown PromQL function {name}() in {expr}"
        elif name.lower() not in KEYWORDS:
            names.add(name)
    return names


def missing_metrics(exprs: list[str], served: set[str]) -> dict[str, set[str]]:
    """Each expression's metric names the bot does not serve."""
    missing = {expr: metric_names(expr) - served - PROMETHEUS_OWN for expr in exprs}
    return {expr: names for expr, names in missing.items() if names}


async def served_sample_names(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> set[str]:
    """The sample names of a bot's real GET /metrics after an answer and a tool call (labelled
    series appear only once something happened)."""
    server = await start_http_server(manager, FakeDiscord(), port=0, discord_429=lambda: 0)
    try:
        await manager.query(prompt="hello")
        ollama_emu.script_tools([[("calculator", {"expression": "1+1"})]])
        await manager.ask(prompt="compute", toolset=manager.tools.select(["calculator"]))
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/metrics") as resp,
        ):
            assert resp.status == 200
            text = await resp.text()
    finally:
        await server.stop()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


# --- the dashboard's queries -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("ollacord_queue_depth", {"ollacord_queue_depth"}),
        ('up{job="ollacord"}', {"up"}),
        (
            'sum by (host) (rate(ollacord_host_errors_total{host=~"$host"}[$__rate_interval]))',
            {"ollacord_host_errors_total"},
        ),
        (
            'histogram_quantile(0.9, sum by (le) (rate(x_seconds_bucket{a="b}"}[5m]))) * 60',
            {"x_seconds_bucket"},
        ),
        ("sum(rate(a_sum[1m])) / sum(rate(a_count[1m])) > bool 1e3", {"a_sum", "a_count"}),
        ("sum(rate(a_total[5m] offset 1h)) by (model) or on(model) b", {"a_total", "b"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


async def test_every_metric_the_dashboard_queries_is_served(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    served = await served_sample_names(manager, ollama_emu)
    exprs = expressions(dashboard())
    assert len(exprs) >= 20
    assert missing_metrics(exprs, served) == {}
    # The check catches a panel asking for something the bot does not export.
    wrong = "sum(rate(ollacord_host_switches_total[5m]))"
    assert missing_metrics([wrong], served) == {wrong: {"ollacord_host_switches_total"}}
    # And the dashboard covers every family the bot exports.
    queried = set().union(*(metric_names(e) for e in exprs))
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in served}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in queried}
    assert families - shown == set()


def test_every_panel_has_a_title_a_description_and_the_provisioned_datasource() -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    board = dashboard()
    panels = graph_panels(board)
    assert len(panels) >= 15
    ids = [p["id"] for p in all_panels(board["panels"])]
    assert len(set(ids)) == len(ids)
    for panel in panels:
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_readme_lists_the_dashboards_panels() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Monitoring", 1)[1].split("\n## ", 1)[0]
    for panel in graph_panels(dashboard()):
        assert panel["title"] in section, panel["title"]


# --- provisioning, Prometheus and compose ------------------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts (./...)."""
    found = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = source
    return found


def host_path(service: dict[str, Any], container_path: str) -> Path:
    for target, source in mounts(service).items():
        if container_path == target or container_path.startswith(target + "/"):
            return ROOT / source / container_path.removeprefix(target).lstrip("/")
    raise AssertionError(f"{container_path} is not mounted from the repository")


def test_the_profile_adds_prometheus_and_grafana_only_on_loopback() -> None:
    config = compose()
    services = config["services"]
    for name, image in (("prometheus", "prom/prometheus:"), ("grafana", "grafana/grafana:")):
        service = services[name]
        assert service["profiles"] == ["monitoring"]
        assert service["image"].startswith(image)
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        data = [v.split(":")[0] for v in service["volumes"] if not v.startswith("./")]
        assert data and set(data) <= set(config["volumes"])
    # The bot never waits for the optional profile.
    assert not {"prometheus", "grafana"} & set(services["bot"]["depends_on"])


def test_prometheus_scrapes_the_bot_service_with_the_mounted_config() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    (flag,) = [a for a in prometheus["command"] if a.startswith("--config.file=")]
    assert host_path(prometheus, flag.split("=", 1)[1]) == PROMETHEUS
    (job,) = load_yaml(PROMETHEUS)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "bot" and host in services
    # The bot's port when .env does not set HTTP_PORT.
    assert services["bot"]["environment"]["HTTP_PORT"] == f"${{HTTP_PORT:-{port}}}"


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning / "datasources" / "prometheus.yml" == DATASOURCES
    assert provisioning / "dashboards" / "ollacord.yml" == PROVIDERS
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus"
    assert re.fullmatch(r"http://prometheus:9090/?", source["url"])
    assert "9090" in services["prometheus"]["ports"][0].rsplit(":", 1)[1]
    (provider,) = load_yaml(PROVIDERS)["providers"]
    folder = host_path(grafana, provider["options"]["path"])
    assert folder / "ollacord.json" == DASHBOARD and DASHBOARD.exists()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home) == DASHBOARD
    # Visitors without an account only look; the admin's password comes from .env.
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD"
    )
