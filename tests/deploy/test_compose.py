"""compose.yaml, deploy/Dockerfile and .dockerignore, checked without a Docker daemon.

compose.yaml is read the way `docker compose` reads it with no .env file: YAML anchors and
merge keys resolved, `${VAR:-default}` replaced by its default, relative paths taken from the
repository root. Services are told apart by what they run: the lookalike image's module
(`command[0]`), or the image name for Kafka, Elasticsearch and nginx.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"
PYPROJECT = REPO / "pyproject.toml"

CLUSTER = "cluster"

INGEST = "lookalike_ingest"
MATCHER = "lookalike_matcher"
GATEWAY = "lookalike_gateway"
SETUP = "lookalike_stack"

# What each module cannot run without, from the service contract.
REQUIRED_SETTINGS = {
    INGEST: {
        "LOOKALIKE_KAFKA_BOOTSTRAP",
        "LOOKALIKE_ES_URL",
        "LOOKALIKE_INGEST_PORT",
        "LOOKALIKE_FILE_ROOT",
    },
    MATCHER: {"LOOKALIKE_KAFKA_BOOTSTRAP", "LOOKALIKE_MATCHER_PORT", "LOOKALIKE_MATCHER_DATA_DIR"},
    GATEWAY: {"LOOKALIKE_ES_URL", "LOOKALIKE_GATEWAY_PORT", "LOOKALIKE_MATCHER_URLS"},
    SETUP: {"LOOKALIKE_KAFKA_BOOTSTRAP", "LOOKALIKE_ES_URL", "LOOKALIKE_KAFKA_REPLICATION_FACTOR"},
}
PORT_SETTING = {
    INGEST: "LOOKALIKE_INGEST_PORT",
    MATCHER: "LOOKALIKE_MATCHER_PORT",
    GATEWAY: "LOOKALIKE_GATEWAY_PORT",
}
KAFKA_DATA = "/var/lib/kafka/data"
ES_DATA = "/usr/share/elasticsearch/data"

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# ------------------------------------------------------------------------------- reading


def interpolate(value: Any) -> Any:
    """Resolve `${VAR}` forms as compose does when VAR is unset (and `$$` to `$`)."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def default(match: re.Match[str]) -> str:
        if match["op"] in (":?", "?"):
            raise AssertionError(f"{match[0]} has no default: compose would refuse to start")
        return match["arg"] if match["op"] in (":-", "-") else ""

    return _VARIABLE.sub(default, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return {key: value for key, value in interpolate(document).items() if not key.startswith("x-")}


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def module(service: dict[str, Any]) -> str | None:
    """The module a lookalike container runs (`python -m <module>`), None for other images."""
    if "build" not in service:
        return None
    command = service.get("command") or []
    return command[0] if command else "lookalike_gateway"  # the Dockerfile's CMD


def image(service: dict[str, Any]) -> str:
    return str(service.get("image", ""))


def is_kafka(service: dict[str, Any]) -> bool:
    return image(service).startswith("apache/kafka:")


def is_elasticsearch(service: dict[str, Any]) -> bool:
    return "elasticsearch/elasticsearch:" in image(service) or image(service).startswith(
        "elasticsearch:"
    )


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def profiles(service: dict[str, Any]) -> frozenset[str]:
    return frozenset(service.get("profiles", []))


def stack(services: dict[str, dict[str, Any]], profile: str | None) -> dict[str, dict[str, Any]]:
    """The services of one stack: the default one (no profile) or a profile's own services."""
    wanted = frozenset() if profile is None else frozenset({profile})
    return {
        name: service
        for name, service in services.items()
        if profiles(service) == wanted or (profile is not None and profile in profiles(service))
    }


def by_module(services: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    return {key: service for key, service in services.items() if module(service) == name}


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volumes in long syntax, whichever syntax the file uses."""
    result = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            result.append(volume)
            continue
        source, _, rest = volume.partition(":")
        target, _, mode = rest.partition(":")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append(
            {"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")}
        )
    return result


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            result.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split(":")
        address = parts[0] if len(parts) == 3 else ""
        result.append((address, int(parts[-2]), int(parts[-1].split("/")[0])))
    return result


def hosts_and_ports(addresses: str) -> list[tuple[str, int]]:
    """`kafka-1:9092,kafka-2:9092` or `http://matcher:8081,...` as (host, port) pairs."""
    result = []
    for address in addresses.split(","):
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        assert parts.hostname and parts.port, f"{address!r} has no host:port"
        result.append((parts.hostname, parts.port))
    return result


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def copied_from_the_context() -> list[str]:
    """What the Dockerfile's COPY instructions take from the build context (not from a stage)."""
    return [
        part.strip("./")
        for keyword, arguments in dockerfile_instructions()
        if keyword == "COPY" and "--from" not in arguments
        for part in arguments.split()[:-1]
    ]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


# ------------------------------------------------------------------------------- compose


def test_compose_file_parses_into_services_and_named_volumes(compose: dict[str, Any]) -> None:
    assert compose.get("name") == "lookalike"
    assert compose["services"], "no services"
    assert compose.get("volumes"), "no named volumes"


def test_every_service_has_an_image_or_a_build_whose_context_and_dockerfile_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        build = service.get("build")
        assert service.get("image") or build, f"{name}: neither image nor build"
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = REPO / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"


def test_built_services_run_a_module_that_pyproject_packages(
    services: dict[str, dict[str, Any]],
) -> None:
    roots = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"][
        "find"
    ]["where"]
    for name, service in services.items():
        if "build" not in service:
            continue
        assert module(service) in REQUIRED_SETTINGS, f"{name}: runs {module(service)!r}"
        assert any((REPO / root / module(service)).is_dir() for root in roots), (
            f"{name}: package {module(service)} is not under any of {roots}"
        )


def test_long_running_built_services_probe_readyz_with_python_on_their_port(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if "build" not in service or is_one_shot(service):
            continue
        test = (service.get("healthcheck") or {}).get("test")
        assert test, f"{name}: no healthcheck"
        assert test[:2] == ["CMD", "python"], f"{name}: the image has python, no curl: {test}"
        port = environment(service)[PORT_SETTING[module(service)]]
        assert f"127.0.0.1:{port}/readyz" in " ".join(test), f"{name}: not /readyz on {port}"


def test_built_services_get_the_settings_their_module_needs(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if "build" not in service:
            continue
        missing = REQUIRED_SETTINGS[module(service)] - {
            key for key, value in environment(service).items() if value
        }
        assert not missing, f"{name}: {sorted(missing)} not set"


def test_services_reach_kafka_elasticsearch_and_matchers_of_their_own_stack(
    services: dict[str, dict[str, Any]],
) -> None:
    for profile in (None, CLUSTER):
        members = stack(services, profile)
        kafka = {name for name, service in members.items() if is_kafka(service)}
        elasticsearch = {name for name, service in members.items() if is_elasticsearch(service)}
        matchers = {
            (name, int(environment(service)["LOOKALIKE_MATCHER_PORT"]))
            for name, service in by_module(members, MATCHER).items()
        }
        for name, service in members.items():
            env = environment(service)
            if "LOOKALIKE_KAFKA_BOOTSTRAP" in env:
                brokers = hosts_and_ports(env["LOOKALIKE_KAFKA_BOOTSTRAP"])
                assert {host for host, _ in brokers} == kafka, f"{name}: bootstrap {brokers}"
                assert {port for _, port in brokers} == {9092}, f"{name}: not the PLAINTEXT port"
            if "LOOKALIKE_ES_URL" in env:
                [(host, port)] = hosts_and_ports(env["LOOKALIKE_ES_URL"])
                assert host in elasticsearch and port == 9200, f"{name}: ES at {host}:{port}"
            if "LOOKALIKE_MATCHER_URLS" in env:
                urls = set(hosts_and_ports(env["LOOKALIKE_MATCHER_URLS"]))
                assert urls == matchers, f"{name}: matcher URLs {urls}, matchers {matchers}"


def test_depends_on_names_services_that_start_with_the_dependent(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency in depends_on(service):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            needed = profiles(services[dependency])
            assert not needed or needed & profiles(service), (
                f"{name} (profiles {sorted(profiles(service))}) depends on {dependency}, "
                f"which only starts with profiles {sorted(needed)}"
            )


def test_services_start_after_setup_succeeded_and_setup_runs_once(
    services: dict[str, dict[str, Any]],
) -> None:
    for profile in (None, CLUSTER):
        members = stack(services, profile)
        setups = by_module(members, SETUP)
        assert len(setups) == 1, f"stack {profile}: setup services {sorted(setups)}"
        [(setup_name, setup)] = setups.items()
        assert is_one_shot(setup), f"{setup_name} must not restart: it is a one-shot"
        assert setup.get("command") == [SETUP, "setup"]
        for dependency, condition in depends_on(setup).items():
            assert condition == "service_healthy", f"{setup_name} starts before {dependency}"
        backends = {name for name, s in members.items() if is_kafka(s) or is_elasticsearch(s)}
        assert set(depends_on(setup)) == backends
        for name, service in members.items():
            if module(service) in (INGEST, MATCHER, GATEWAY):
                assert depends_on(service).get(setup_name) == "service_completed_successfully", (
                    f"{name} does not wait for {setup_name} to succeed"
                )


def test_files_and_folders_mounted_from_the_repository_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for mount in mounts(service):
            if mount["type"] != "bind":
                continue
            if (mount.get("bind") or {}).get("create_host_path"):
                # A data folder compose creates when missing (the catalogue images).
                continue
            source = REPO / mount["source"]
            assert source.exists(), f"{name}: mounts {mount['source']}, which does not exist"


def test_configuration_mounted_from_the_repository_is_read_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for mount in mounts(service):
            if mount["type"] == "bind":
                assert mount.get("read_only"), f"{name}: {mount['source']} is mounted writable"


def test_catalogue_folder_is_mounted_read_only_as_the_ingest_file_root(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in by_module(services, INGEST).items():
        root = environment(service)["LOOKALIKE_FILE_ROOT"]
        [catalogue] = [mount for mount in mounts(service) if mount["target"] == root]
        assert catalogue["type"] == "bind" and catalogue["read_only"], name


def test_each_stateful_container_keeps_its_data_in_its_own_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["volumes"])
    used: Counter[str] = Counter()
    for name, service in services.items():
        named = {m["target"]: m["source"] for m in mounts(service) if m["type"] == "volume"}
        assert set(named.values()) <= declared, f"{name}: undeclared volume in {named}"
        used.update(named.values())
        if is_kafka(service):
            assert environment(service)["KAFKA_LOG_DIRS"] == KAFKA_DATA
            assert KAFKA_DATA in named, f"{name}: Kafka log dir is not a named volume"
        if is_elasticsearch(service):
            assert ES_DATA in named, f"{name}: Elasticsearch data is not a named volume"
        if module(service) == MATCHER:
            data_dir = environment(service)["LOOKALIKE_MATCHER_DATA_DIR"]
            assert data_dir in named, f"{name}: matcher snapshot is not a named volume"
    shared = [volume for volume, count in used.items() if count > 1]
    assert not shared, f"volumes used by more than one container: {shared}"


def test_gateway_prometheus_and_grafana_are_published_on_their_usual_ports(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {"gateway": (8080, 8080), "prometheus": (9090, 9090), "grafana": (3000, 3000)}
    for name, (host_port, container_port) in expected.items():
        ports = {(host, inner) for _, host, inner in published_ports(services[name])}
        assert (host_port, container_port) in ports, f"{name}: published {ports}"


def test_published_ports_bind_to_loopback_and_never_collide(
    services: dict[str, dict[str, Any]],
) -> None:
    # Both stacks run side by side with --profile cluster, so no two may share a host port.
    # Loopback because Elasticsearch has no security and Grafana admits anonymous viewers.
    seen: dict[int, str] = {}
    for name, service in services.items():
        for address, host_port, _ in published_ports(service):
            assert address == "127.0.0.1", f"{name}: port {host_port} bound to {address!r}"
            assert host_port not in seen, f"{name} and {seen.get(host_port)} publish {host_port}"
            seen[host_port] = name


def test_setup_replication_factor_fits_its_stacks_brokers(
    services: dict[str, dict[str, Any]],
) -> None:
    for profile in (None, CLUSTER):
        members = stack(services, profile)
        brokers = [service for service in members.values() if is_kafka(service)]
        [setup] = by_module(members, SETUP).values()
        replication = int(environment(setup)["LOOKALIKE_KAFKA_REPLICATION_FACTOR"])
        assert replication == len(brokers), f"stack {profile}: RF {replication}"
        for broker in brokers:
            assert int(environment(broker)["KAFKA_MIN_INSYNC_REPLICAS"]) <= replication


def test_single_node_kafka_has_a_listener_for_the_host(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    host_port = next(host for _, host, inner in published_ports(services["kafka"]) if inner == 9094)
    assert f"localhost:{host_port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


# ------------------------------------------------------------------------------- cluster profile


def test_cluster_profile_runs_three_kraft_brokers_with_replication_3_and_min_isr_2(
    services: dict[str, dict[str, Any]],
) -> None:
    brokers = {name: s for name, s in stack(services, CLUSTER).items() if is_kafka(s)}
    assert len(brokers) == 3, sorted(brokers)
    envs = {name: environment(service) for name, service in brokers.items()}
    node_ids = {name: env["KAFKA_NODE_ID"] for name, env in envs.items()}
    assert len(set(node_ids.values())) == 3, f"node ids not unique: {node_ids}"
    voters = {f"{node_ids[name]}@{name}:9093" for name in brokers}
    for name, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters, name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092", name
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2", name
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1, "brokers in different clusters"
    [setup] = by_module(stack(services, CLUSTER), SETUP).values()
    assert environment(setup)["LOOKALIKE_KAFKA_REPLICATION_FACTOR"] == "3"


def test_cluster_profile_runs_three_elasticsearch_nodes_forming_one_cluster(
    services: dict[str, dict[str, Any]],
) -> None:
    nodes = {name: s for name, s in stack(services, CLUSTER).items() if is_elasticsearch(s)}
    assert len(nodes) == 3, sorted(nodes)
    envs = [environment(service) for service in nodes.values()]
    names = {env["node.name"] for env in envs}
    assert names == set(nodes), "node.name must be the service name the others resolve"
    for env in envs:
        assert "discovery.type" not in env
        assert set(env["discovery.seed_hosts"].split(",")) >= set(nodes) - {env["node.name"]}
        assert set(env["cluster.initial_master_nodes"].split(",")) == names
    assert len({env["cluster.name"] for env in envs}) == 1


def test_cluster_profile_runs_two_of_each_service(services: dict[str, dict[str, Any]]) -> None:
    members = stack(services, CLUSTER)
    counts = Counter(module(service) for service in members.values() if module(service))
    assert counts[INGEST] == 2 and counts[MATCHER] == 2 and counts[GATEWAY] == 2, counts


def test_cluster_load_balancer_spreads_requests_over_both_gateways_on_8088(
    services: dict[str, dict[str, Any]],
) -> None:
    members = stack(services, CLUSTER)
    [(name, balancer)] = [
        (name, service) for name, service in members.items() if image(service).startswith("nginx")
    ]
    assert (8088, 8088) in {(host, inner) for _, host, inner in published_ports(balancer)}
    [config] = [m for m in mounts(balancer) if m["type"] == "bind"]
    text = (REPO / config["source"]).read_text(encoding="utf-8")
    servers = set(re.findall(r"^\s*server\s+([\w.-]+):(\d+)", text, flags=re.MULTILINE))
    gateways = {
        (gateway, environment(service)["LOOKALIKE_GATEWAY_PORT"])
        for gateway, service in by_module(members, GATEWAY).items()
    }
    assert servers == gateways, f"{name} balances {servers}, gateways are {gateways}"
    assert re.search(r"^\s*listen\s+8088\s*;", text, flags=re.MULTILINE)
    # Results are NDJSON flushed line by line: a buffering proxy would hold the first hit back.
    assert re.search(r"^\s*proxy_buffering\s+off\s*;", text, flags=re.MULTILINE)


# ------------------------------------------------------------------------------- .env.example


def test_every_compose_variable_is_documented_in_env_example_with_its_default() -> None:
    documented = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            documented[key.strip()] = value.strip()
    used = {}
    for match in _VARIABLE.finditer(COMPOSE_FILE.read_text(encoding="utf-8")):
        assert match["op"] in (":-", None), f"{match[0]}: use ${{VAR:-default}}"
        assert used.setdefault(match["name"], match["arg"]) == match["arg"], (
            f"{match['name']} has two different defaults in compose.yaml"
        )
    for name, default in used.items():
        assert name in documented, f"{name} is not in .env.example"
        assert documented[name] == (default or ""), f"{name}: .env.example says {documented[name]}"
    assert set(documented) <= set(used), f"unused: {sorted(set(documented) - set(used))}"


# ------------------------------------------------------------------------------- Dockerfile


def test_image_runs_as_a_non_root_user() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the final stage never leaves root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {user}"
    created = " ".join(arguments for keyword, arguments in final_stage() if keyword == "RUN")
    assert re.search(rf"useradd\b[^&;]*\b{re.escape(user)}\b", created), f"{user} is not created"


def test_image_is_built_in_stages_from_python_311_slim_with_a_wheel_build() -> None:
    instructions = dockerfile_instructions()
    args = dict(
        arguments.split("=", 1)
        for keyword, arguments in instructions
        if keyword == "ARG" and "=" in arguments
    )
    bases = [
        interpolate(re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), arguments.split()[0]))
        for keyword, arguments in instructions
        if keyword == "FROM"
    ]
    assert len(bases) >= 2, "single stage: build tools would ship in the image"
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any("pip wheel" in run for run in runs), "no wheel build"
    final_runs = [arguments for keyword, arguments in final_stage() if keyword == "RUN"]
    assert any("--no-index" in run for run in final_runs), "final stage installs from PyPI"


def test_image_is_built_from_the_pinned_versions() -> None:
    assert "constraints.txt" in copied_from_the_context(), "constraints.txt is not copied"
    wheel_builds = [
        arguments
        for keyword, arguments in dockerfile_instructions()
        if keyword == "RUN" and "pip wheel" in arguments
    ]
    assert wheel_builds, "no wheel build"
    for run in wheel_builds:
        assert re.search(r"(--constraint|-c)[ =]constraints\.txt", run), f"unpinned: {run}"


def test_image_runs_the_compose_command_as_a_python_module() -> None:
    [entrypoint] = [arguments for keyword, arguments in final_stage() if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m"]


def test_image_ships_no_curl() -> None:
    for keyword, arguments in dockerfile_instructions():
        assert "curl" not in arguments, f"{keyword} {arguments}"


def test_image_copies_every_package_root_that_pyproject_lists() -> None:
    roots = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"][
        "find"
    ]["where"]
    copied = copied_from_the_context()
    for root in roots:
        assert any(root == c or root.startswith(f"{c}/") for c in copied), f"{root} not copied"
    assert "pyproject.toml" in copied


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".venv", ".git", ".lookalike", "**/__pycache__"):
        assert needed in patterns, f"{needed} is not ignored"
    roots = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"][
        "find"
    ]["where"]
    for path in [*roots, "pyproject.toml", "constraints.txt"]:
        for pattern in patterns:
            assert not pattern.startswith("!"), "negations make this check unreliable"
            assert not fnmatch.fnmatch(path, pattern.rstrip("/")), f"{pattern} hides {path}"
            assert not path.startswith(pattern.rstrip("/") + "/"), f"{pattern} hides {path}"
