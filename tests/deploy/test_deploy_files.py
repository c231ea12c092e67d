"""The production files (collector config, compose, Dockerfile, Grafana) checked against the code they deploy.

Docker cannot run here, so these tests hold each file to what the code expects: names, ports, paths,
thresholds read from the SDK itself, commands parsed by the real CLI, and every dashboard query run
on a store filled with real SDK telemetry and a real analysis.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import modelwatch
import pytest
from conftest import DASHBOARD, ROOT
from modelwatch import config as sdk_config
from modelwatch.contract import LABEL_SPAN as LABEL_SPAN_NAME
from modelwatch.contract import LABEL_VALUE, REASON_EDGE_CASE
from modelwatch.sampling import TraceIdSampler, threshold
from modelwatch.testing import capture
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.service import config as analyzer_config
from modelwatch_analyzer.store.client import DEFAULT_DATABASE

KINDS = ("receivers", "processors", "exporters")


def _policies(collector: dict) -> dict[str, dict]:
    return {p["name"]: p for p in collector["processors"]["tail_sampling"]["policies"]}


def _env_refs(text: str) -> set[str]:
    """``${env:NAME}`` references outside comments."""
    code = "\n".join(line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", code))


def _sdk_span_attributes() -> list[dict]:
    """Attributes of real SDK spans: a low-confidence, a high-risk and an unremarkable prediction."""
    with capture() as rec:
        @modelwatch.monitor(model="m", version="1", sampling_rate=1.0)
        def predict(x):
            return x

        predict({"prediction": "a", "score": 0.6, "confidence": 0.1})
        predict({"prediction": "b", "score": 0.99, "confidence": 0.99})
        predict({"prediction": "c", "score": 0.6, "confidence": 0.9})
        spans = rec.predictions()
    return [dict(s.attributes) for s in spans]


# -- otel-collector-config.yaml -----------------------------------------------------------------


def test_every_pipeline_component_is_defined_and_memory_limiter_comes_first(collector):
    """Each receiver, processor, exporter and extension the service names is configured; memory_limiter leads."""
    service = collector["service"]
    for ext in service["extensions"]:
        assert ext in collector["extensions"], ext
    assert set(service["pipelines"]) >= {"traces", "metrics", "logs"}
    assert "tail_sampling" not in service["pipelines"]["logs"]["processors"]
    assert "clickhouse" in service["pipelines"]["logs"]["exporters"]
    for name, pipeline in service["pipelines"].items():
        for kind in KINDS:
            assert pipeline[kind], f"{name}: no {kind}"
            for component in pipeline[kind]:
                assert component in collector[kind], f"pipeline {name} names undefined {kind[:-1]} {component!r}"
        assert pipeline["processors"][0] == "memory_limiter", name
        assert pipeline["processors"][-1] == "batch", name
    traces = service["pipelines"]["traces"]
    assert traces["processors"].index("tail_sampling") < traces["processors"].index("batch")
    assert {"clickhouse", "otlp/jaeger", "debug"} <= set(traces["exporters"])
    assert "tail_sampling" not in service["pipelines"]["metrics"]["processors"]  # metrics are the full population
    assert "clickhouse" in service["pipelines"]["metrics"]["exporters"]


def test_receivers_listen_on_all_interfaces_on_the_otlp_ports(collector):
    """gRPC 4317 and HTTP 4318 bound to 0.0.0.0, as a container must."""
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert collector["extensions"]["health_check"]["endpoint"].startswith("0.0.0.0:")


def test_clickhouse_exporter_writes_modelwatch_database_with_retries_and_queue(collector):
    """The exporter writes the database the analyzer reads, retries, queues, and leaves the DDL to `schema apply`."""
    ch = collector["exporters"]["clickhouse"]
    assert ch["database"] == DEFAULT_DATABASE
    assert ch["create_schema"] is False
    assert ch["retry_on_failure"]["enabled"] is True
    assert ch["sending_queue"]["enabled"] is True and ch["sending_queue"]["queue_size"] > 0
    text = (ROOT / "otel-collector-config.yaml").read_text()
    assert {"CLICKHOUSE_ENDPOINT", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} <= _env_refs(text)
    assert collector["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0] == "jaeger"


def test_tail_sampling_policies_mirror_the_sdk_defaults(collector):
    """Thresholds, percentage and salt equal SamplingPolicy's defaults; attribute names are those the SDK sets."""
    defaults = sdk_config.SamplingPolicy()
    policies = _policies(collector)
    kinds = [p["type"] for p in policies.values()]
    assert "numeric_attribute" not in kinds  # reads integers only: 0.42 would read as 0

    prob = next(p["probabilistic"] for p in policies.values() if p["type"] == "probabilistic")
    assert prob["sampling_percentage"] == pytest.approx(defaults.rate * 100)
    assert prob["hash_salt"] == defaults.hash_salt
    # the same threshold bit for bit: the SDK's random keeps are exactly the collector's
    assert threshold(prob["sampling_percentage"]) == TraceIdSampler(defaults.rate, defaults.hash_salt).threshold

    conditions = [c for p in policies.values() if p["type"] == "ottl_condition" for c in p["ottl_condition"]["span"]]
    low = [float(m[1]) for c in conditions for m in [re.fullmatch(r'attributes\["ml\.prediction\.confidence"\] < ([0-9.]+)', c)] if m]
    high = [float(m[1]) for c in conditions for m in [re.fullmatch(r'attributes\["ml\.prediction\.score"\] > ([0-9.]+)', c)] if m]
    assert low == [defaults.low_confidence_threshold]
    assert high == [defaults.high_risk_threshold]
    assert f'name == "{LABEL_SPAN_NAME}"' in conditions  # labels are never sampled away, the SDK's and any SDK's
    assert f'attributes["{LABEL_VALUE}"] != nil' in conditions

    spans = _sdk_span_attributes()
    # the boolean flags the SDK sets are exactly those the policies read, and they fire where the SDK's rules do
    sdk_flags = {k for attrs in spans for k, v in attrs.items() if isinstance(v, bool)}
    flag_keys = {p["boolean_attribute"]["key"] for p in policies.values() if p["type"] == "boolean_attribute"}
    assert flag_keys == sdk_flags == {"ml.low_confidence", "ml.high_risk"}
    assert [(a["ml.low_confidence"], a["ml.high_risk"]) for a in spans] == [(True, False), (False, True), (False, False)]
    for attrs in spans:
        assert "ml.prediction.confidence" in attrs and "ml.prediction.score" in attrs

    # the first policy keeps what the SDK already sampled (it carries a weight), so nothing is sampled twice
    first = collector["processors"]["tail_sampling"]["policies"][0]
    assert first["type"] == "ottl_condition"
    key = re.fullmatch(r'attributes\["([^"]+)"\] != nil', first["ottl_condition"]["span"][0])[1]
    assert all(key in attrs for attrs in spans) and key == "ml.sampling.weight"
    edge = next(p for p in policies.values() if p["type"] == "string_attribute")["string_attribute"]
    assert edge == {"key": "ml.sampling.reason", "values": [REASON_EDGE_CASE]}
    assert [p["status_code"]["status_codes"] for p in policies.values() if p["type"] == "status_code"] == [["ERROR"]]


# -- docker-compose.yml, Dockerfile, .env.example --------------------------------------------------


def _mounts(service: dict) -> list[tuple[Path, str]]:
    out = []
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((ROOT / source).resolve(), target))
    return out


@pytest.mark.parametrize("path", ["docker-compose.yml", "docker-compose.scale.yml"])
def test_compose_references_files_that_exist_and_services_that_are_defined(path):
    """Bind mounts, build contexts, depends_on and named volumes all resolve."""
    from conftest import load_yaml

    compose = load_yaml(path)
    services = compose["services"]
    assert {"schema", "analyzer", "jaeger"} <= set(services)
    for name, svc in services.items():
        for source, _ in _mounts(svc):
            assert source.exists(), f"{name} mounts missing {source}"
        if "build" in svc:
            assert (ROOT / svc["build"] / "Dockerfile").is_file()
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on undefined {dep}"
        for v in svc.get("volumes", []):
            if not v.split(":")[0].startswith((".", "/")):
                assert v.split(":")[0] in compose["volumes"], f"{name}: undeclared volume {v}"


def test_collector_service_mounts_this_config_and_publishes_its_ports(compose, collector):
    """The collector container reads otel-collector-config.yaml and publishes the receivers' ports."""
    svc = compose["services"]["otel-collector"]
    assert "contrib" in svc["image"]
    mounts = dict(_mounts(svc))
    target = mounts[(ROOT / "otel-collector-config.yaml").resolve()]
    assert f"--config={target}" in svc["command"]
    published = {p.split(":")[-1] for p in svc["ports"]}
    for proto in collector["receivers"]["otlp"]["protocols"].values():
        assert proto["endpoint"].rsplit(":", 1)[1] in published
    assert collector["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1] in published
    assert _env_refs((ROOT / "otel-collector-config.yaml").read_text()) <= set(svc["environment"])
    deps = svc["depends_on"]
    assert deps["schema"]["condition"] == "service_completed_successfully"  # create_schema is false
    assert deps["clickhouse"]["condition"] == "service_healthy"


def test_modelwatch_services_run_real_commands_against_clickhouse_over_http(compose, collector, monkeypatch):
    """schema and analyzer commands parse with the real CLI; the store URL is http to the clickhouse service."""
    services = compose["services"]
    schema_args = cli.parser().parse_args(services["schema"]["command"])
    assert (schema_args.command, schema_args.action) == ("schema", "apply")
    analyzer = services["analyzer"]
    args = cli.parser().parse_args(analyzer["command"])
    assert args.command == "analyzer" and args.config
    mounts = {target: source for source, target in _mounts(analyzer)}
    config_file = mounts[args.config]
    assert config_file == (ROOT / "deploy" / "analyzer.toml").resolve()
    cfg = analyzer_config.load(config_file)  # validated exactly as the service will
    assert cfg.emit
    for name in ("schema", "analyzer"):
        env = services[name]["environment"]
        url = env["MODELWATCH_CLICKHOUSE_URL"].replace("${CLICKHOUSE_USER}", "u").replace("${CLICKHOUSE_PASSWORD}", "p")
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port, parts.path) == ("http", "clickhouse", 8123, "/" + DEFAULT_DATABASE)
        assert services[name]["depends_on"]["schema" if name == "analyzer" else "clickhouse"]
    otlp = urlsplit(analyzer["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert otlp.hostname == "otel-collector"
    assert str(otlp.port) == collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    assert analyzer["environment"]["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert services["clickhouse"]["environment"]["CLICKHOUSE_DB"] == DEFAULT_DATABASE


def test_secrets_come_from_env_and_env_example_lists_them(compose):
    """Every required variable is in .env.example; no password is written in the compose file; .env is not tracked."""
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required and required <= set(example)
    for svc in compose["services"].values():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{key} is written in docker-compose.yml"
    tracked = subprocess.run(["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == ""


def test_dockerfile_copies_existing_sources_and_runs_the_modelwatch_command():
    """Every COPY source exists, .dockerignore keeps none of them out, and the entrypoint is the project's script."""
    text = (ROOT / "Dockerfile").read_text()
    copies = [shlex.split(line)[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    assert copies
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for sources in copies:
        for src in sources:
            assert (ROOT / src).exists(), src
            assert src.rstrip("/") not in ignored, f"{src} is excluded by .dockerignore"
    assert {"pyproject.toml", "sdk", "analyzer"} <= {s for c in copies for s in c}
    assert ".env" in ignored
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M)[1])
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'{entry[0]} = "modelwatch_analyzer.cli:main"' in pyproject
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M)[1])
    assert cli.parser().parse_args(cmd).command == "analyzer"


# -- Grafana -------------------------------------------------------------------------------------


def test_grafana_provisioning_matches_the_dashboard(compose, dashboard):
    """The datasource plugin is installed and provisioned under the uid the dashboard uses; the dashboard is mounted."""
    from conftest import load_yaml

    grafana = compose["services"]["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    mounts = {source: target for source, target in _mounts(grafana)}
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    assert mounts[provisioning.resolve()] == "/etc/grafana/provisioning"
    ds = load_yaml("deploy/grafana/provisioning/datasources/clickhouse.yaml")["datasources"][0]
    assert ds["type"] == "grafana-clickhouse-datasource"
    assert ds["jsonData"]["host"] == "clickhouse" and ds["jsonData"]["defaultDatabase"] == DEFAULT_DATABASE
    assert ds["secureJsonData"]["password"] == "$CLICKHOUSE_PASSWORD"
    provider = load_yaml("deploy/grafana/provisioning/dashboards/modelwatch.yaml")["providers"][0]
    assert mounts[DASHBOARD.parent.resolve()] == provider["options"]["path"]
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    uids |= {v["datasource"]["uid"] for v in dashboard["templating"]["list"]}
    assert uids == {ds["uid"]}
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("drift", "alerts", "volume", "latency p95", "sampling", "data quality", "performance"):
        assert topic in titles, topic


def _queries() -> list[tuple[str, str]]:
    d = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = [("variable " + v["name"], "var") for v in d["templating"]["list"] if v["type"] == "query"]
    return out + [(p["title"], t["refId"]) for p in d["panels"] for t in p["targets"]]


@pytest.mark.parametrize("panel,ref", _queries(), ids=[f"{p}/{r}" for p, r in _queries()])
def test_dashboard_query_returns_rows(panel_results, panel, ref):
    """The panel's SQL, macros substituted, runs on a store filled by the SDK and an analysis, and returns rows."""
    q = panel_results["by_key"][(panel, ref)]
    assert q["error"] is None, q["error"]
    assert q["rows"] > 0, f"no rows from:\n{q['sql']}"


def test_dashboard_counts_agree_with_what_the_sdk_did(panel_results):
    """Volumes and sampling decisions from cumulative metrics add up to the calls made; spans' weights estimate them."""
    by = panel_results["by_key"]
    calls = panel_results["calls"]
    volume = by[("Prediction volume", "A")]["data"]
    assert sum(row[2] for row in volume) == calls
    assert {row[1] for row in volume} == {"ok", "error"}
    decisions = by[("Sampling decisions by reason", "A")]["data"]
    assert sum(row[2] for row in decisions) == calls
    assert any(row[1].startswith("dropped") for row in decisions) and any(row[1] == "kept random" for row in decisions)
    estimated = sum(row[1] for row in by[("Prediction volume", "B")]["data"])
    assert 0.8 * calls < estimated < 1.2 * calls
    for ref in ("A", "B"):
        assert all(0 < row[1] < 1 for row in by[("Latency p95", ref)]["data"])  # seconds


def test_latency_p95_is_the_intervals_not_since_the_process_started(panel_results):
    """From cumulative exports (one downscaled in between), the panel shows each minute's own p95: ~10 ms while
    only fast predictions arrive, ~1 s in the minute that brought 100 slow ones (10,000 fast ones before)."""
    (first, p95_first), (second, p95_second) = panel_results["latency_intervals"]
    assert first < second
    assert 0.01 <= p95_first <= 0.0151  # values 10-15 ms, scale 6 buckets (1.1% wide) at their midpoints
    assert 1.0 <= p95_second <= 1.5 * 1.09  # values 1-1.5 s, scale 3 buckets (9% wide)


def test_dashboard_shows_the_drift_the_data_has(panel_results):
    """The drifted feature is drifted and alerted, the stable one is not; quality and performance have values."""
    by = panel_results["by_key"]
    latest = {row[0]: row for row in by[("Latest drift verdict per feature", "A")]["data"]}
    assert latest["income"][4] is True and latest["income"][3] == "critical"
    assert latest["region"][4] is False
    alerts = by[("Alerts", "A")]["data"]
    assert any(row[3] == "income" for row in alerts)
    quality = {row[1]: row[2] for row in by[("Data quality", "A")]["data"]}
    assert 0.1 < quality["income missing_rate"] < 0.3
    perf = {row[1]: row[2] for row in by[("Performance against labels", "A")]["data"]}
    assert 0.5 < perf["accuracy"] <= 1


# -- scale-out: docker-compose.scale.yml, deploy/otel-collector-gateway.yaml, the cluster -----------


def test_gateway_routes_whole_traces_to_the_sampling_collectors(collector):
    """The first layer's loadbalancing exporter routes by trace id to the second layer, which runs the sampling config."""
    from conftest import load_yaml

    gateway = load_yaml("deploy/otel-collector-gateway.yaml")
    scale = load_yaml("docker-compose.scale.yml")["services"]
    for name, pipeline in gateway["service"]["pipelines"].items():
        for kind in KINDS:
            for component in pipeline[kind]:
                assert component in gateway[kind], f"gateway pipeline {name}: undefined {component!r}"
        assert pipeline["processors"][0] == "memory_limiter"
    assert gateway["service"]["pipelines"]["traces"]["exporters"] == ["loadbalancing"]
    assert "tail_sampling" not in gateway["processors"]  # sampling happens once, in the second layer
    lb = gateway["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    grpc_port = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    backends = lb["resolver"]["static"]["hostnames"]
    assert len(backends) >= 2
    for backend in backends:
        host, port = backend.rsplit(":", 1)
        assert port == grpc_port
        sampler = scale[host]
        mounts = dict(_mounts(sampler))
        assert mounts[(ROOT / "otel-collector-config.yaml").resolve()] in sampler["command"][0]
        assert _env_refs((ROOT / "otel-collector-config.yaml").read_text()) <= set(sampler["environment"])
    gw = scale["otel-gateway"]
    assert dict(_mounts(gw))[(ROOT / "deploy/otel-collector-gateway.yaml").resolve()] in gw["command"][0]
    assert _env_refs((ROOT / "deploy/otel-collector-gateway.yaml").read_text()) <= set(gw["environment"])
    assert scale["analyzer"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-gateway:")


def test_cluster_schema_job_names_the_cluster_the_servers_define():
    """`schema apply --cluster NAME` parses, NAME is the remote_servers cluster, and every shard has its macros."""
    import xml.etree.ElementTree as ET

    from conftest import load_yaml
    from modelwatch_analyzer.store import schema

    scale = load_yaml("docker-compose.scale.yml")["services"]
    args = cli.parser().parse_args(scale["schema"]["command"])
    assert (args.command, args.action) == ("schema", "apply") and args.cluster
    cluster = ET.parse(ROOT / "deploy/clickhouse/cluster/cluster.xml").getroot()
    clusters = {c.tag: c for c in cluster.find("remote_servers")}
    assert set(clusters) == {args.cluster}
    hosts = [r.findtext("host") for shard in clusters[args.cluster] for r in shard.findall("replica")]
    assert len(hosts) == 2
    for i, host in enumerate(hosts, 1):
        svc = scale[host]
        mounts = {target: source for source, target in _mounts(svc)}
        macros = ET.parse(mounts["/etc/clickhouse-server/config.d/macros.xml"]).getroot().find("macros")
        assert (macros.findtext("shard"), macros.findtext("replica")) == (str(i), host)
        assert mounts["/etc/clickhouse-server/config.d/cluster.xml"] == (ROOT / "deploy/clickhouse/cluster/cluster.xml").resolve()
    keeper = cluster.find("zookeeper/node")
    assert keeper.findtext("host") in scale
    # the DDL the job runs: ON CLUSTER, Replicated engines with the {shard}/{replica} macros, Distributed tables
    ddl = "\n".join(schema.statements("modelwatch", cluster=args.cluster))
    assert f"ON CLUSTER `{args.cluster}`" in ddl and "{shard}" in ddl and "{replica}" in ddl
    assert f"Distributed(`{args.cluster}`, `modelwatch`, `otel_traces_local`" in ddl
    # the analyzer, schema job and Grafana reach the cluster under the single-node name `clickhouse`
    assert "clickhouse" in scale[hosts[0]]["networks"]["default"]["aliases"]
