"""The schema: exporter-compatible tables, typed views filled at insert time, idempotent versioned migrations."""

from __future__ import annotations

import math

import modelwatch
import numpy as np
import pytest
from modelwatch.testing import capture
from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS, span_rows
from modelwatch_analyzer.errors import StoreError, UnsafeIdentifier
from modelwatch_analyzer.store import schema, typed_tables
from modelwatch_analyzer.store.client import Store, ident
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

# The exporter's column names and types (contrib exporter/clickhouseexporter sql templates).
EXPORTER_TRACES = {
    "Timestamp": "DateTime64(9)", "TraceId": "String", "SpanId": "String", "ParentSpanId": "String",
    "TraceState": "String", "SpanName": "LowCardinality(String)", "SpanKind": "LowCardinality(String)",
    "ServiceName": "LowCardinality(String)", "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeName": "String", "ScopeVersion": "String", "SpanAttributes": "Map(LowCardinality(String), String)",
    "Duration": "UInt64", "StatusCode": "LowCardinality(String)", "StatusMessage": "String",
    "Events.Timestamp": "Array(DateTime64(9))", "Events.Name": "Array(LowCardinality(String))",
    "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    "Links.TraceId": "Array(String)", "Links.SpanId": "Array(String)", "Links.TraceState": "Array(String)",
    "Links.Attributes": "Array(Map(LowCardinality(String), String))",
}
EXPORTER_EXP_HISTOGRAM_SPECIFIC = {
    "Count": "UInt64", "Sum": "Float64", "Scale": "Int32", "ZeroCount": "UInt64", "PositiveOffset": "Int32",
    "PositiveBucketCounts": "Array(UInt64)", "NegativeOffset": "Int32", "NegativeBucketCounts": "Array(UInt64)",
    "Flags": "UInt32", "Min": "Float64", "Max": "Float64", "AggregationTemporality": "Int32",
}


def _columns(store: Store, table: str) -> dict[str, str]:
    rows = store.query("SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                       {"db": store.database, "t": table})
    return dict(rows)


def _insert_spans(store: Store, spans) -> None:
    request = encode_spans(spans)  # the OTLP exporters' own encoder
    store.insert("otel_traces", span_rows(request), TRACE_COLUMNS)


def test_exporter_tables_have_the_exporters_columns(store):
    """otel_traces and the metric tables carry the clickhouse exporter's column names and types."""
    assert _columns(store, "otel_traces") == EXPORTER_TRACES
    exp = _columns(store, "otel_metrics_exponential_histogram")
    assert {k: exp[k] for k in EXPORTER_EXP_HISTOGRAM_SPECIFIC} == EXPORTER_EXP_HISTOGRAM_SPECIFIC
    for table in ("otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram", "otel_metrics_summary"):
        cols = _columns(store, table)
        assert cols["Attributes"] == "Map(LowCardinality(String), String)"
        assert cols["TimeUnix"] == "DateTime64(9)" and cols["ServiceName"] == "LowCardinality(String)"
    assert _columns(store, "otel_metrics_sum")["IsMonotonic"] == "Bool"


def test_apply_is_idempotent_and_versioned(store):
    """Applying again changes nothing and records each migration once."""
    assert schema.apply(store) == []
    assert schema.version(store) == len(schema.MIGRATIONS)
    rows = store.query(f"SELECT Version, count() FROM {store.table('schema_migrations')} GROUP BY Version ORDER BY Version")
    assert rows == [(m.version, 1) for m in schema.MIGRATIONS]


def test_predictions_are_typed_at_insert_time_from_real_sdk_spans(store):
    """SDK spans, encoded by the OTLP encoder and stored as the exporter does, become typed prediction rows."""

    @modelwatch.monitor(model="credit", version="7", sampling_rate=1.0)
    def predict(x):
        return {"prediction": "repay", "score": x["s"]}

    with capture() as rec:
        predict({"s": 0.2, "income": 52000.5, "city": "Paris", "age": 41, "vip": True, "ratio": 1e-7,
                 "odd": math.inf, "zip": "75001"})
        predict({"s": 0.95, "income": 1.0, "city": "Lyon", "age": 30, "vip": False, "ratio": 0.5, "odd": 1.0, "zip": "69001"})
        pids = [s.attributes["ml.prediction.id"] for s in rec.predictions()]
        _insert_spans(store, rec.predictions())
    rows = store.query(
        f"SELECT PredictionId, ModelName, ModelVersion, Weight, Reason, LowConfidence, HighRisk, IsError, Prediction, "
        f"Score, Confidence, Numeric, Categorical FROM {store.table('ml_predictions')} ORDER BY Score"
    )
    assert [r[0] for r in rows] == pids
    first = rows[0]
    assert first[1:9] == ("credit", "7", 1.0, "random", False, False, False, "repay")  # confidence 0.6: no rule
    assert first[9] == pytest.approx(0.2) and first[10] == pytest.approx(0.6)
    numeric, categorical = first[11], first[12]
    assert numeric == {"s": 0.2, "income": 52000.5, "age": 41.0, "ratio": 1e-7, "odd": math.inf, "zip": 75001.0}
    assert categorical == {"city": "Paris", "vip": "true"}
    assert rows[1][4] == "high_risk" and rows[1][6] is True


def test_weights_and_labels_join_by_prediction_id(store):
    """Random-kept rows weigh 1/rate; labels (also typed by a view) join predictions on model and id."""

    @modelwatch.monitor(model="churn", sampling_rate=0.25)
    def predict(x):
        return {"prediction": 1, "score": 0.01}

    with capture() as rec:
        ids = []
        for i in range(400):
            predict({"i": i})
            ids.append(modelwatch.last_prediction().id)
        for pid in ids:
            modelwatch.record_label("churn", pid, pid[-1] in "01234567")
        _insert_spans(store, rec.spans())
        kept = len(rec.predictions())
    weights = store.query(f"SELECT count(), sum(Weight), min(Weight), max(Weight) FROM {store.table('ml_predictions')}")
    assert weights[0][0] == kept and weights[0][2] == weights[0][3] == 4.0
    assert 400 * 0.6 < weights[0][1] < 400 * 1.4  # the weighted count estimates the 400 predictions
    joined = store.query(
        f"SELECT count(), countIf(l.Label = 'true') FROM {store.table('ml_predictions')} AS p "
        f"INNER JOIN (SELECT * FROM {store.table('ml_labels')} FINAL) AS l "
        "ON p.ModelName = l.ModelName AND p.PredictionId = l.PredictionId"
    )
    assert joined[0][0] == kept
    assert store.query(f"SELECT count() FROM {store.table('ml_labels')}")[0][0] == 400


def test_hostile_attribute_keys_and_values_are_stored_verbatim(store):
    """Quotes, backslashes, newlines, unicode and long values in names and values round-trip through the store."""
    name = "we'ird\"\\\n`name` ☃; DROP TABLE x"
    value = "va'l\nue\\ ☃ " + "x" * 200

    @modelwatch.monitor(model="host'ile`", sampling_rate=1.0)
    def predict(x):
        return 1

    with capture() as rec:
        predict({name: value, "n": np.float32(2.5)})
        _insert_spans(store, rec.predictions())
    rows = store.query(f"SELECT ModelName, Categorical, Numeric FROM {store.table('ml_predictions')} "
                       "WHERE ModelName = {m:String}", {"m": "host'ile`"})
    assert rows == [("host'ile`", {name: value}, {"n": 2.5})]


def test_identifiers_are_validated_and_quoted():
    """Only plain names reach SQL text; anything else raises before a statement is built."""
    assert ident("otel_traces") == "`otel_traces`"
    for bad in ("a b", "x`; DROP", "1abc", "", "a.b", "é"):
        with pytest.raises(UnsafeIdentifier):
            ident(bad)
    with pytest.raises(UnsafeIdentifier):
        schema.statements("modelwatch", cluster="c; DROP")


def test_cluster_schema_uses_on_cluster_replicated_engines_and_distributed_tables():
    """With a cluster: every statement is ON CLUSTER, tables are Replicated *_local ones under Distributed tables,
    views read and write local tables."""
    stmts = schema.statements("mw", cluster="prod")
    creates = [s for s in stmts if s.startswith("CREATE")]
    assert all(" ON CLUSTER `prod`" in s for s in creates)
    local = [s for s in creates if "_local` ON CLUSTER" in s]
    assert local and all("ENGINE = Replicated" in s for s in local)
    for table in ("otel_traces", "ml_predictions", "ml_labels", "ml_results", "ml_alerts", "ml_baselines"):
        assert any(s.startswith(f"CREATE TABLE IF NOT EXISTS `mw`.`{table}` ON CLUSTER") and
                   f"Distributed(`prod`, `mw`, `{table}_local`" in s for s in creates), table
    mv = next(s for s in creates if "ml_predictions_mv" in s)
    assert "TO `mw`.`ml_predictions_local`" in mv and "FROM `mw`.`otel_traces_local`" in mv
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', RunAt)" in \
        next(s for s in creates if "`ml_results_local`" in s)
    # migrations 9, 12, 13, 14, 16 (twice), 17: each shard's views, reading the local table
    retyped = [s for s in stmts if "MODIFY QUERY" in s]
    predictions_mv = "ALTER TABLE `mw`.`ml_predictions_mv` ON CLUSTER `prod`"
    labels_mv = "ALTER TABLE `mw`.`ml_labels_mv` ON CLUSTER `prod`"
    assert [s.split(" MODIFY")[0] for s in retyped] == [predictions_mv, labels_mv, predictions_mv, predictions_mv,
                                                        predictions_mv, labels_mv, predictions_mv, predictions_mv,
                                                        predictions_mv]
    segment = [s for s in stmts if "ADD COLUMN IF NOT EXISTS Segment" in s or "ADD COLUMN IF NOT EXISTS Resource" in s]
    assert [s.split(" ADD")[0] for s in segment] == [  # migration 17: the local tables and the Distributed ones
        "ALTER TABLE `mw`.`ml_predictions_local` ON CLUSTER `prod`", "ALTER TABLE `mw`.`ml_predictions` ON CLUSTER `prod`",
        "ALTER TABLE `mw`.`ml_results_local` ON CLUSTER `prod`", "ALTER TABLE `mw`.`ml_results` ON CLUSTER `prod`"]
    assert "MODIFY ORDER BY" in segment[2] and "MODIFY ORDER BY" not in segment[3]
    renamed = [s for s in stmts if "RENAME COLUMN" in s or "ADD COLUMN IF NOT EXISTS PredictionId" in s]  # migration 16
    assert [s.split(" RENAME")[0].split(" ADD")[0] for s in renamed] == ["ALTER TABLE `mw`.`ml_predictions_local` ON CLUSTER `prod`"] * 2
    assert not any("UPDATE OwnPredictionId" in s for s in stmts)  # a server's rows keep their ids until they expire
    assert all("FROM `mw`.`otel_traces_local`" in s for s in retyped)
    added = [s.split(" ADD")[0] for s in stmts if "ADD COLUMN IF NOT EXISTS WeightClamped" in s]  # migration 11
    assert added == ["ALTER TABLE `mw`.`ml_predictions_local` ON CLUSTER `prod`",
                     "ALTER TABLE `mw`.`ml_predictions` ON CLUSTER `prod`"]
    single = schema.statements("mw")
    assert not any("ON CLUSTER" in s or "Replicated" in s or "Distributed" in s for s in single)


def test_sdk_metrics_land_in_the_exporter_metric_tables(store):
    """The SDK's metric data, encoded by the OTLP encoder, lands one row per point in the exporter's metric tables."""
    from modelwatch_analyzer.collector.otlp_rows import METRIC_COLUMNS, metric_rows
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    @modelwatch.monitor(model="m", version="1", sampling_rate=0.0)
    def predict(x):
        return {"prediction": "a", "score": x["v"] / 10}

    with capture() as rec:
        for i in range(1, 10):
            predict({"v": float(i), "c": "x" if i % 2 else "y"})
        data = rec.metrics_data()
    tables = metric_rows(encode_metrics(data))
    for table, rows in tables.items():
        store.insert(table, rows, METRIC_COLUMNS[table])
    hist = store.query(
        f"SELECT Count, Sum, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, Min, Max, AggregationTemporality "
        f"FROM {store.table('otel_metrics_exponential_histogram')} "
        "WHERE MetricName = 'ml.feature.value' AND Attributes['ml.feature.name'] = 'v'")
    (count, total, scale, zeros, offset, buckets, lo, hi, temporality), = hist
    point = next(p for p in rec.metric_points("ml.feature.value") if p.attributes["ml.feature.name"] == "v")
    assert (count, total, scale, zeros, lo, hi) == (9, 45.0, point.scale, 0, 1.0, 9.0)
    assert (offset, buckets) == (point.positive.offset, list(point.positive.bucket_counts))
    assert temporality == 2  # cumulative
    sums = dict(store.query(
        f"SELECT Attributes['ml.feature.value'], Value FROM {store.table('otel_metrics_sum')} "
        "WHERE MetricName = 'ml.feature.category'"))
    assert sums == {"x": 5.0, "y": 4.0}
    mono = store.query(f"SELECT DISTINCT IsMonotonic, ScopeName FROM {store.table('otel_metrics_sum')}")
    assert mono == [(True, "modelwatch")]


def test_migration_4_compresses_without_changing_columns(store):
    """Migration 4 sets ZSTD(3) codecs; names and types stay the exporter's; a cluster gets ON CLUSTER on _local tables."""
    assert _columns(store, "otel_traces") == EXPORTER_TRACES
    codecs = dict(store.query("SELECT name, compression_codec FROM system.columns WHERE database = {db:String} "
                              "AND table = 'otel_traces'", {"db": store.database}))
    assert codecs["SpanAttributes"] == "CODEC(ZSTD(3))" and codecs["TraceId"] == "CODEC(ZSTD(1))"
    codecs = dict(store.query("SELECT name, compression_codec FROM system.columns WHERE database = {db:String} "
                              "AND table = 'ml_predictions'", {"db": store.database}))
    assert codecs["Numeric"] == codecs["OwnPredictionId"] == "CODEC(ZSTD(3))"
    m4 = next(m for m in schema.MIGRATIONS if m.version == 4)
    plain = m4.statements(schema.Context("`db`"))
    assert plain and all(" ON CLUSTER " not in s and "_local" not in s for s in plain)
    clustered = m4.statements(schema.Context("`db`", "c1"))
    assert len(clustered) == len(plain)
    assert all(" ON CLUSTER `c1` " in s and ("`otel_traces_local`" in s or "`ml_predictions_local`" in s) for s in clustered)


def test_cluster_shard_keys_keep_a_prediction_with_its_label_and_a_models_results_together():
    ddl = schema.statements("mw", cluster="prod")
    def dist(table):
        return [s for s in ddl if f"`mw`.`{table}` ON CLUSTER" in s and "Distributed" in s]
    for table in ("ml_results", "ml_alerts", "ml_baselines", "ml_detector_state", "ml_hourly_aggregates"):
        assert all(s.endswith("cityHash64(ModelName))") for s in dist(table)) and dist(table), table
    assert all(s.endswith("cityHash64(ModelName, PredictionId))") for s in dist("ml_labels")) and dist("ml_labels")
    # ml_predictions: by PredictionId (migration 6), then by the expression its ALIAS reads (migration 16)
    last = dist("ml_predictions")[-1]
    assert last.startswith("CREATE OR REPLACE TABLE `mw`.`ml_predictions` ON CLUSTER `prod` AS `mw`.`ml_predictions_local`")
    assert last.endswith("`ml_predictions_local`, cityHash64(ModelName, if(OwnPredictionId = '', TraceId, OwnPredictionId)))")
    assert all(s.endswith("cityHash64(ModelName, PredictionId))") for s in dist("ml_predictions")[:-1])
    assert any("CREATE OR REPLACE TABLE `mw`.`otel_traces`" in s and "ml.prediction.id" in s for s in ddl)
    assert not schema.statements("mw")[-1].startswith("CREATE OR REPLACE")  # nothing to do on one node


# The exporter's otel_logs (contrib exporter/clickhouseexporter internal/sqltemplates/logs_table.sql, with EventName).
EXPORTER_LOGS = {
    "Timestamp": "DateTime64(9)", "TimestampTime": "DateTime", "TraceId": "String", "SpanId": "String",
    "TraceFlags": "UInt8", "SeverityText": "LowCardinality(String)", "SeverityNumber": "UInt8",
    "ServiceName": "LowCardinality(String)", "Body": "String", "ResourceSchemaUrl": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)", "ScopeSchemaUrl": "LowCardinality(String)",
    "ScopeName": "String", "ScopeVersion": "LowCardinality(String)",
    "ScopeAttributes": "Map(LowCardinality(String), String)", "LogAttributes": "Map(LowCardinality(String), String)",
    "EventName": "String",
}


def test_otel_logs_has_the_exporters_columns_keys_and_ttl(store):
    """Migration 7 creates otel_logs with the exporter's names, types, order, keys and TTL on TimestampTime."""
    assert list(store.query("SELECT name, type FROM system.columns WHERE database = {db:String} AND table = 'otel_logs' "
                            "ORDER BY position", {"db": store.database})) == [tuple(kv) for kv in EXPORTER_LOGS.items()]
    (sorting, primary, partition, ddl), = store.query(
        "SELECT sorting_key, primary_key, partition_key, create_table_query FROM system.tables "
        "WHERE database = {db:String} AND name = 'otel_logs'", {"db": store.database})
    assert (sorting, primary, partition) == ("ServiceName, TimestampTime, Timestamp", "ServiceName, TimestampTime",
                                             "toDate(TimestampTime)")
    assert "TTL toDateTime(TimestampTime) + toIntervalDay(30)" in ddl and "DEFAULT toDateTime(Timestamp)" in ddl
    assert {m.version: m.name for m in schema.MIGRATIONS}[7] == "collector exporter logs table"


def test_otel_logs_rows_round_trip_with_the_default_timestamp_time(store):
    """Rows of log_rows insert as they are; TimestampTime is filled by the table's DEFAULT."""
    import time

    from modelwatch_analyzer.collector.otlp_rows import LOG_COLUMNS, log_rows
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    now = time.time_ns()
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "svc"
    rec = rl.scope_logs.add().log_records.add(observed_time_unix_nano=now, severity_number=13, severity_text="WARN",
                                              trace_id=b"\x01" * 16, span_id=b"\x02" * 8, flags=1)
    rec.body.string_value = "it's \"quoted\"\n☃"
    rec.attributes.add(key="k'ey").value.double_value = 1e21
    store.insert("otel_logs", log_rows(req), LOG_COLUMNS)
    rows = store.query(f"SELECT toUnixTimestamp64Nano(Timestamp), toUnixTimestamp(TimestampTime), TraceId, SpanId, "
                       f"TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, LogAttributes, EventName "
                       f"FROM {store.table('otel_logs')}")
    assert rows == [(now, now // 10**9, "01" * 16, "02" * 8, 1, "WARN", 13, "svc", "it's \"quoted\"\n☃",
                     {"k'ey": "1e+21"}, "")]


def test_otel_logs_on_a_cluster_and_its_retention():
    """--cluster: a Replicated otel_logs_local under a Distributed otel_logs, ON CLUSTER; logs_days sets the TTL (0: none)."""
    ddl = schema.statements("mw", cluster="prod", retention=schema.Retention(logs_days=7))
    local = [s for s in ddl if s.startswith("CREATE TABLE IF NOT EXISTS `mw`.`otel_logs_local` ON CLUSTER `prod` (")]
    assert len(local) == 1
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in local[0]
    assert "TTL toDateTime(TimestampTime) + toIntervalDay(7)" in local[0]
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS `mw`.`otel_logs` ON CLUSTER `prod` AS `mw`.`otel_logs_local` ")
               and "Distributed(`prod`, `mw`, `otel_logs_local`, rand())" in s for s in ddl)
    single = [s for s in schema.statements("mw", retention=schema.Retention(logs_days=0)) if "`otel_logs`" in s]
    assert len(single) == 1 and "ENGINE = MergeTree()" in single[0] and "TTL" not in single[0]
    assert schema.Retention().logs_days == 30


def _ttl_days(store: Store, table: str) -> float | None:
    seconds = schema.retention_seconds(store, table)
    return None if seconds is None else seconds / 86_400


def _indexes(store: Store, table: str = "otel_traces") -> set[str]:
    return {r[0] for r in store.query("SELECT name FROM system.data_skipping_indices WHERE database = {db:String} "
                                      "AND table = {t:String}", {"db": store.database, "t": table})}


def test_raw_spans_keep_a_week_and_embedded_stores_have_no_span_attribute_indexes(store):
    """A new store keeps raw spans 7 days and typed predictions 180; an embedded one has no bloom filters on the
    span attributes, a server's (printed DDL, single node and cluster) keeps the exporter's."""
    assert (_ttl_days(store, "otel_traces"), _ttl_days(store, "ml_predictions")) == (7, 180)
    assert _indexes(store) == {"idx_trace_id", "idx_res_attr_key", "idx_res_attr_value", "idx_duration"}
    for ddl in (schema.statements("mw"), schema.statements("mw", cluster="prod")):
        traces = next(s for s in ddl if s.startswith("CREATE TABLE IF NOT EXISTS `mw`.`otel_traces"))
        assert "INDEX idx_span_attr_key mapKeys(SpanAttributes)" in traces and "idx_span_attr_value" in traces
        assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in traces
        assert not any("DROP INDEX" in s for s in ddl)
    embedded = schema.statements("mw", embedded=True)
    assert not any("idx_span_attr" in s for s in embedded if s.startswith("CREATE"))
    traces_days = schema.statements("mw", retention=schema.Retention(traces_days=3))
    assert any("ALTER TABLE `mw`.`otel_traces` MODIFY TTL toDateTime(Timestamp) + toIntervalDay(3)" == s for s in traces_days)


def test_migration_15_on_stores_with_data(store_dir, monkeypatch):
    """An embedded store made before migration 15 (30-day raw spans, span-attribute indexes) loses the indexes and
    keeps raw spans 7 days, its rows kept (raw spans of the last week, every typed row); one whose operator chose
    another raw retention keeps it."""
    from modelwatch_analyzer.store import exporter_tables

    day = 86_400 * 10**9
    for database, traces_days, expected in (("before_m15", 30, 7), ("before_m15_custom", 60, 60)):
        old = Store(f"chdb://{store_dir}", database=database)
        try:
            monkeypatch.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 14))
            old.embedded = False  # as stores were made before 15: the exporter's indexes
            schema.apply(old, retention=schema.Retention(traces_days=traces_days))
            old.embedded = True
            monkeypatch.undo()
            assert set(exporter_tables.SPAN_ATTRIBUTE_INDEXES) <= _indexes(old) and _ttl_days(old, "otel_traces") == traces_days

            @modelwatch.monitor(model="keep", sampling_rate=1.0)
            def predict(x):
                return 1

            with capture() as rec:
                for i in range(30):
                    predict({"x": i})
                request = encode_spans(rec.predictions())
            spans = request.resource_spans[0].scope_spans[0].spans
            now = spans[0].start_time_unix_nano
            for i, span in enumerate(spans):  # one span a day, from today back to 29 days ago
                span.start_time_unix_nano = span.end_time_unix_nano = now - i * day
            old.insert("otel_traces", span_rows(request), TRACE_COLUMNS)
            assert [m.version for m in schema.apply(old)][0] == 15 and schema.version(old) == len(schema.MIGRATIONS)
            assert not set(exporter_tables.SPAN_ATTRIBUTE_INDEXES) & _indexes(old)
            assert _ttl_days(old, "otel_traces") == expected and _ttl_days(old, "ml_predictions") == 180
            old.command(f"OPTIMIZE TABLE {old.table('otel_traces')} FINAL")  # what merges and the TTL would do
            raw = old.query(f"SELECT count() FROM {old.table('otel_traces')}")[0][0]
            assert raw == (7 if expected == 7 else 30)  # today and the 6 days before it
            assert old.query(f"SELECT count() FROM {old.table('ml_predictions')}")[0][0] == 30
        finally:
            old.command(f"DROP DATABASE IF EXISTS `{database}`")


def test_ensure_applies_on_an_embedded_store_and_only_checks_a_server(store):
    schema.ensure(store)  # embedded and up to date: nothing to do
    store.embedded = False  # as for a ClickHouse server: the operator owns the schema
    schema.ensure(store)
    store.command(f"DELETE FROM {store.table('schema_migrations')} WHERE Version = "
                  f"{max(m.version for m in schema.MIGRATIONS)}")
    with pytest.raises(StoreError, match=r"schema is at version \d+, this modelwatch needs \d+: run `modelwatch schema apply"):
        schema.ensure(store)
    store.embedded = True
    schema.ensure(store)  # embedded: the missing migration is applied again
    assert schema.version(store) == max(m.version for m in schema.MIGRATIONS)


def test_text_with_a_leading_zero_stays_a_category_from_training_csv_to_verdict(store, tmp_path):
    """Zip codes and codes like 007 are text: the typed view keeps them as categories (numbers without a
    leading zero stay numbers), a CSV baseline reads them as text, and a stream like the training data is
    judged undrifted with no unseen category."""
    from datetime import datetime, timedelta, timezone

    from modelwatch_analyzer.analysis import analyze, baseline
    from modelwatch_analyzer.analysis.window import Window

    @modelwatch.monitor(model="geo", version="1", sampling_rate=1.0)
    def predict(x):
        return {"prediction": "ok", "score": 0.5}

    with capture() as rec:
        predict({"zip": "02139", "code": "007", "neg": "-05", "plus": "+05", "zero": "0", "half": "0.5", "minus": "-0.25",
                 "n": "75001"})
        modelwatch.record_label("geo", modelwatch.last_prediction().id, "007")
        _insert_spans(store, rec.spans())
    numeric, categorical = store.query(f"SELECT Numeric, Categorical FROM {store.table('ml_predictions')}")[0]
    assert numeric == {"zero": 0.0, "half": 0.5, "minus": -0.25, "n": 75001.0}
    assert categorical == {"zip": "02139", "code": "007", "neg": "-05", "plus": "+05"}
    assert store.query(f"SELECT Label, LabelNumber FROM {store.table('ml_labels')}") == [("007", None)]

    rng = np.random.default_rng(5)
    zips = np.array(["02139", "10001", "75001", "00501"])
    p = np.array([0.4, 0.3, 0.2, 0.1])
    train = tmp_path / "train.csv"
    train.write_text("zip,x\n" + "".join(f"{z},{x:.3f}\n" for z, x in zip(rng.choice(zips, 2000, p=p), rng.normal(size=2000))))
    base = baseline.from_file(train, "geo", "2")
    assert base.features["zip"].kind == "categorical" and set(base.features["zip"].categories) == set(zips)
    assert base.features["x"].kind == "numeric"
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)

    @modelwatch.monitor(model="geo", version="2", sampling_rate=1.0)
    def predict2(x):
        return {"prediction": "ok", "score": 0.5}

    with capture() as rec:
        for z, x in zip(rng.choice(zips, 2000, p=p), rng.normal(size=2000)):
            predict2({"zip": str(z), "x": float(x)})
        _insert_spans(store, rec.predictions())
    rows = analyze.analyze(store, Window("geo", t0, t0 + timedelta(minutes=10), "2"), baseline=base)
    zip_rows = [r for r in rows if r.feature == "zip"]
    assert zip_rows and not any(r.drifted for r in zip_rows), [(r.method, r.statistic) for r in zip_rows]
    assert all(r.statistic == 0 for r in zip_rows if r.kind == "data_quality"), [(r.method, r.statistic) for r in zip_rows]


def test_migration_9_retypes_leading_zero_text_in_a_store_created_before_it(store_dir, monkeypatch):
    """A store at migration 8 typed "02139" as the number 2139; after applying 9 (MODIFY QUERY, no rebuild) new
    spans keep it as text; rows typed before stay as they were."""
    old = Store(f"chdb://{store_dir}", database="before_m9")
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 8))
        monkeypatch.setattr(typed_tables, "LEADING_ZERO", "a^")  # matches nothing: the views as versions before 9 wrote them
        schema.apply(old)
        monkeypatch.undo()

        @modelwatch.monitor(model="geo", sampling_rate=1.0)
        def predict(x):
            return 1

        def typed(z: str) -> tuple:
            with capture() as rec:
                predict({"zip": z})
                _insert_spans(old, rec.predictions())
            return old.query(f"SELECT Numeric, Categorical FROM {old.table('ml_predictions')} "
                             "WHERE PredictionId = {p:String}", {"p": modelwatch.last_prediction().id})[0]

        assert typed("02139") == ({"zip": 2139.0}, {})
        assert [m.version for m in schema.apply(old)][0] == 9 and schema.version(old) == len(schema.MIGRATIONS)
        assert typed("02140") == ({}, {"zip": "02140"})
        assert old.query(f"SELECT count() FROM {old.table('ml_predictions')} WHERE Numeric['zip'] = 2139") == [(1,)]
    finally:
        old.command("DROP DATABASE IF EXISTS `before_m9`")


def test_schema_apply_sets_the_raw_spans_retention_apart(store_dir, capsys):
    """`schema apply --retention-days N --traces-retention-days M` on a new store: predictions and logs N days, raw
    spans M; a negative value is bad usage."""
    from modelwatch_analyzer.cli import command as cli

    url = f"chdb://{store_dir}"
    assert cli.main(["schema", "apply", "--url", url, "--traces-retention-days", "-1"]) == 2
    assert "--traces-retention-days must be >= 0" in capsys.readouterr().err
    st = Store(url, database="modelwatch")  # the CLI's default database in this session's directory: start afresh
    st.command("DROP DATABASE IF EXISTS `modelwatch`")
    try:
        assert cli.main(["schema", "apply", "--url", url, "--retention-days", "90", "--traces-retention-days", "3"]) == 0
        assert [_ttl_days(st, t) for t in ("otel_traces", "ml_predictions", "otel_logs")] == [3, 90, 90]
    finally:
        st.command("DROP DATABASE IF EXISTS `modelwatch`")


def test_migration_16_stores_the_prediction_id_once_in_a_store_with_data(store_dir, monkeypatch):
    """A store at migration 15 held every prediction id in full. After 16, PredictionId reads the same ids (an ALIAS
    of OwnPredictionId, else TraceId), labels join as before, new rows hold '' for an id that is the trace id, the
    embedded store clears the old rows' copies, and running the migration again changes nothing."""
    import time

    database = "before_m16"
    old = Store(f"chdb://{store_dir}", database=database)
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 15))
        schema.apply(old)
        monkeypatch.undo()

        @modelwatch.monitor(model="once", sampling_rate=1.0,
                            prediction_id=lambda x: f"order-{x['i']}" if x["i"] % 4 == 0 else None)
        def predict(x):
            return x["v"] > 0

        def send(n: int, start: int) -> list[str]:
            with capture() as rec:
                ids = []
                for i in range(start, start + n):
                    predict({"v": i % 3 - 1, "i": i})
                    ids.append(modelwatch.last_prediction().id)
                for pid in ids:
                    modelwatch.record_label("once", pid, "true")
                _insert_spans(old, rec.spans())
            return ids

        def joined() -> int:
            return old.query(f"SELECT count() FROM {old.table('ml_predictions')} AS p INNER JOIN "
                             f"(SELECT * FROM {old.table('ml_labels')} FINAL) AS l "
                             "ON p.ModelName = l.ModelName AND p.PredictionId = l.PredictionId")[0][0]

        before = send(40, 0)
        ids = sorted(r[0] for r in old.query(f"SELECT PredictionId FROM {old.table('ml_predictions')}"))
        assert ids == sorted(before) and joined() == 40
        assert [m.version for m in schema.apply(old)] == list(range(16, len(schema.MIGRATIONS) + 1))
        assert schema.version(old) == len(schema.MIGRATIONS)
        kinds = dict(old.query("SELECT name, default_kind FROM system.columns WHERE database = {db:String} "
                               "AND table = 'ml_predictions' AND name LIKE '%PredictionId'", {"db": database}))
        assert kinds == {"OwnPredictionId": "", "PredictionId": "ALIAS"}
        after = send(40, 40)
        rows = old.query(f"SELECT PredictionId, OwnPredictionId, TraceId FROM {old.table('ml_predictions')}")
        assert sorted(r[0] for r in rows) == sorted(before + after) and joined() == 80
        for _ in range(100):  # the embedded store's mutation clears the old rows' copies of their trace ids
            if old.query("SELECT countIf(NOT is_done) FROM system.mutations WHERE database = {db:String}",
                         {"db": database})[0][0] == 0:
                break
            time.sleep(0.1)
        rows = old.query(f"SELECT PredictionId, OwnPredictionId, TraceId FROM {old.table('ml_predictions')}")
        assert {own for pid, own, trace in rows if pid == trace} == {""}
        assert {pid for pid, own, _t in rows if own} == {f"order-{i}" for i in range(0, 80, 4)}
        # run again (as after an interruption): the rename is skipped, nothing changes
        old.command(f"DELETE FROM {old.table('schema_migrations')} WHERE Version = 16")
        assert [m.version for m in schema.apply(old)] == [16]
        assert sorted(r[0] for r in old.query(f"SELECT PredictionId FROM {old.table('ml_predictions')}")) == \
            sorted(before + after) and joined() == 80
    finally:
        old.command(f"DROP DATABASE IF EXISTS `{database}`")
