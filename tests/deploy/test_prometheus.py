"""Prometheus configuration, alert rules and the Grafana dashboard, checked offline.

promtool does the real validation (config, rules, rule unit tests, PromQL syntax); the rest
holds the files to the services' metric contract below, so renaming a metric in one place
and not the other fails here rather than on an empty dashboard or a silent alert.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
CONFIGS = {
    None: PROMETHEUS_DIR / "prometheus.yml",
    "cluster": PROMETHEUS_DIR / "prometheus-cluster.yml",
}
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "lookalike.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE_FILE = REPO / "compose.yaml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

# The metrics the services expose (scrape job -> metric -> type). Histograms are exposed as
# <name>_bucket, <name>_sum and <name>_count.
METRICS: dict[str, dict[str, str]] = {
    "ingest": {
        "lookalike_ingest_events_total": "counter",
        "lookalike_ingest_dlq_total": "counter",
        "lookalike_ingest_event_duration_seconds": "histogram",
        "lookalike_ingest_stage_duration_seconds": "histogram",
        "lookalike_ingest_fetched_bytes_total": "counter",
        "lookalike_ingest_in_flight": "gauge",
        "lookalike_ingest_consumer_lag": "gauge",
    },
    "matcher": {
        "lookalike_matcher_index_images": "gauge",
        "lookalike_matcher_ready": "gauge",
        "lookalike_matcher_search_duration_seconds": "histogram",
        "lookalike_matcher_verify_candidates": "histogram",
        "lookalike_matcher_replay_lag_records": "gauge",
        "lookalike_matcher_replay_lag_seconds": "gauge",
    },
    "gateway": {
        "lookalike_gateway_requests_total": "counter",
        "lookalike_gateway_search_duration_seconds": "histogram",
        "lookalike_gateway_first_hit_seconds": "histogram",
        "lookalike_gateway_backend_duration_seconds": "histogram",
        "lookalike_gateway_warnings_total": "counter",
    },
}
# Standard series: Prometheus' own `up` and the client library's process collector.
STANDARD = re.compile(r"^(up|process_[a-z_]+)$")
SERVICE_PORTS = {"ingest": 8082, "matcher": 8081, "gateway": 8080}

# Alerts the operations runbook promises, and the ones whose unit tests must cover both a
# firing and a quiet case.
REQUIRED_ALERTS = {
    "LookalikeServiceDown",
    "LookalikeIngestLagGrowing",
    "LookalikeIngestDeadLetters",
    "LookalikeMatcherNotReady",
    "LookalikeMatcherReplayLagging",
    "LookalikeGatewaySearchSlow",
    "LookalikeGatewayErrors",
}
UNIT_TESTED_BOTH_WAYS = {"LookalikeIngestDeadLetters", "LookalikeServiceDown"}


def series_names() -> dict[str, str]:
    """Every series name the services expose, mapped to its metric type."""
    names = {}
    for metrics in METRICS.values():
        for name, kind in metrics.items():
            if kind == "histogram":
                names.update(
                    {f"{name}_{suffix}": "counter" for suffix in ("bucket", "sum", "count")}
                )
            else:
                names[name] = kind
    return names


# ------------------------------------------------------------------------------- PromQL helpers

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan"}  # fmt: skip
_RATE_OF = re.compile(r"\b(?:rate|irate|increase)\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def grafana_to_promql(expr: str) -> str:
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (label values and functions left out)."""
    expr = _STRING.sub('""', grafana_to_promql(expr))
    expr = _MATCHERS.sub("", expr)
    expr = _RANGE.sub("", expr)
    expr = _GROUPING.sub("", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        before = expr[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # the exponent or unit of a number: 1e3, 5m
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


# ------------------------------------------------------------------------------- fixtures


def run_promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> None:
    result = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query on the dashboard."""
    return [
        (panel.get("title", ""), target["expr"])
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def compose_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]


# ------------------------------------------------------------------------------- promtool


@pytest.mark.parametrize("config", sorted(CONFIGS.values()), ids=lambda path: path.name)
def test_prometheus_config_passes_promtool_check_config(promtool: str, config: Path) -> None:
    run_promtool(promtool, "check", "config", config.name)


def test_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", ALERTS.name)


def test_alert_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", ALERTS_TEST.name)


def test_dashboard_queries_are_valid_promql(
    promtool: str, dashboard: dict[str, Any], tmp_path: Path
) -> None:
    # promtool has no offline query check, but it parses the expression of a recording rule.
    rules = [
        {"record": f"dashboard:query_{index}", "expr": grafana_to_promql(expr)}
        for index, (_, expr) in enumerate(dashboard_expressions(dashboard))
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", path.name, cwd=tmp_path)


# ------------------------------------------------------------------------------- scrape config


@pytest.mark.parametrize("profile", sorted(CONFIGS, key=str), ids=lambda p: p or "single")
def test_prometheus_scrapes_itself_and_every_service_of_its_stack(profile: str | None) -> None:
    config = yaml.safe_load(CONFIGS[profile].read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: {t for static in job["static_configs"] for t in static["targets"]}
        for job in config["scrape_configs"]
    }
    assert targets.pop("prometheus") == {"localhost:9090"}
    expected: dict[str, set[str]] = {job: set() for job in SERVICE_PORTS}
    for name, service in compose_services().items():
        in_stack = set(service.get("profiles", [])) == ({profile} if profile else set())
        command = service.get("command") or []
        job = command[0].removeprefix("lookalike_") if "build" in service and command else None
        if in_stack and job in expected:
            expected[job].add(f"{name}:{SERVICE_PORTS[job]}")
    assert targets == expected


@pytest.mark.parametrize("config", sorted(CONFIGS.values()), ids=lambda path: path.name)
def test_prometheus_loads_the_alert_rules_relative_to_its_config(config: Path) -> None:
    rule_files = yaml.safe_load(config.read_text(encoding="utf-8"))["rule_files"]
    assert rule_files == [ALERTS.name]


# ------------------------------------------------------------------------------- alert rules


def test_alerts_cover_lag_dlq_matcher_latency_errors_and_down_services(
    alert_rules: list[dict[str, Any]],
) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert REQUIRED_ALERTS <= set(names), sorted(REQUIRED_ALERTS - set(names))


def test_every_alert_waits_has_a_severity_and_explains_itself_with_a_runbook_link(
    alert_rules: list[dict[str, Any]],
) -> None:
    for rule in alert_rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for`, a single bad scrape would page"
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        assert annotations.get("runbook_url") == f"docs/operations.md#{name.lower()}", name


def test_runbook_links_point_at_sections_of_the_operations_doc(
    alert_rules: list[dict[str, Any]],
) -> None:
    if not OPERATIONS_DOC.exists():
        pytest.skip("docs/operations.md is not written yet")
    headings = re.findall(r"^#+\s+(.+?)\s*$", OPERATIONS_DOC.read_text(encoding="utf-8"), re.M)
    anchors = {
        re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings
    }
    for rule in alert_rules:
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no section for #{anchor} in docs/operations.md"


def test_unit_tests_show_dlq_and_service_down_alerts_both_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]:
        for check in test.get("alert_rule_test", []):
            cases.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    for name in UNIT_TESTED_BOTH_WAYS:
        assert cases.get(name) == {True, False}, f"{name}: cases {cases.get(name)}"


# ------------------------------------------------------------------------------- metric contract


def test_alerts_and_dashboard_only_query_metrics_the_services_expose(
    alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    known = series_names()
    queries = [(rule["alert"], rule["expr"]) for rule in alert_rules]
    queries += dashboard_expressions(dashboard)
    for where, expr in queries:
        unknown = {
            name for name in metric_names(expr) if name not in known and not STANDARD.match(name)
        }
        assert not unknown, f"{where}: {sorted(unknown)} is not a metric the services expose"


def test_rates_are_only_taken_of_counters(
    alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    known = series_names()
    queries = [(rule["alert"], rule["expr"]) for rule in alert_rules]
    queries += dashboard_expressions(dashboard)
    for where, expr in queries:
        for name in _RATE_OF.findall(expr):
            assert known.get(name) == "counter", f"{where}: rate() of {name}, not a counter"


def test_dashboard_shows_every_metric_of_every_service(dashboard: dict[str, Any]) -> None:
    shown = set()
    for _, expr in dashboard_expressions(dashboard):
        shown |= metric_names(expr)
    for metrics in METRICS.values():
        for name, kind in metrics.items():
            series = f"{name}_bucket" if kind == "histogram" else name
            assert series in shown, f"{name} is on no panel"


def test_metric_extraction_sees_through_promql_syntax() -> None:
    # Guards the helper the contract tests rely on.
    expr = (
        "histogram_quantile(0.99, sum by (stage, le) "
        '(rate(foo_bucket{stage="a"}[$__rate_interval]))) > 1e3'
        " and on (job) bar offset 5m unless deriv(sum(baz)[15m:1m]) > 0"
    )
    assert metric_names(expr) == {"foo_bucket", "bar", "baz"}


# ------------------------------------------------------------------------------- Grafana


def test_dashboard_is_valid_grafana_json_with_unique_ids_on_a_24_column_grid(
    dashboard: dict[str, Any],
) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    panels = all_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel.get("targets"), f"{panel['title']}: no query"
            for target in panel["targets"]:
                assert target["refId"] and target["expr"], panel["title"]


def test_dashboard_has_a_row_per_part_of_the_system(dashboard: dict[str, Any]) -> None:
    rows = [panel["title"].lower() for panel in dashboard["panels"] if panel["type"] == "row"]
    for part in ("ingest", "dead-letter", "stage", "matcher", "gateway"):
        assert any(part in row for row in rows), f"no row about {part}: {rows}"


def test_dashboard_queries_a_provisioned_datasource_by_uid(dashboard: dict[str, Any]) -> None:
    provisioned = {
        source["uid"]: source
        for source in yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    }
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    uids = set(provisioned)
    if "datasource" in variables:
        variable = variables["datasource"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] in provisioned, "default data source is not provisioned"
        uids.add("${datasource}")
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        sources = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
        for source in sources:
            assert source["type"] == "prometheus" and source["uid"] in uids, panel["title"]
    default = [uid for uid, source in provisioned.items() if source.get("isDefault")]
    assert len(default) == 1


def test_grafana_provisioning_matches_the_compose_services_and_mounts() -> None:
    services = compose_services()
    for source in yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]:
        match = re.fullmatch(r"http://([\w-]+):9090", source["url"])
        assert match and match[1] in services, f"{source['name']}: {source['url']}"
        assert "prometheus" in services[match[1]]["image"], f"{match[1]} is not a Prometheus"
    [provider] = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    grafana_mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in services["grafana"]["volumes"]
        if volume.startswith("./")
    }
    assert grafana_mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
