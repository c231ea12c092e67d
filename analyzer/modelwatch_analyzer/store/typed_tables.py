"""``ml_predictions`` and ``ml_labels``: prediction and label spans typed once, at insert time, by materialized
views over ``otel_traces`` (the span contract: docs/contract.md).

What a span is, is decided by its attributes, not its name (any OpenTelemetry SDK can emit the contract):

* a **label** carries ``ml.label.value`` (or is named ``ml.label``, as the SDK's label spans are); it is typed
  into ``ml_labels`` when its ``ml.prediction.id`` is not empty, and is never a prediction;
* a **prediction** is any other span with a non-empty ``ml.model.name``, whatever its name.

The SQL of these rules is written once, here (:func:`label_span`, :func:`prediction_span`), and used by the
views, the consistency check, the completeness check and ``modelwatch status``.
"""

from __future__ import annotations

from modelwatch import contract as c

from modelwatch_analyzer.store.client import ident
from modelwatch_analyzer.store.ddl import Context, create_table

PREDICTION_SPAN = c.PREDICTION_SPAN
"""The SDK's prediction span name (the store does not select by it: see :func:`prediction_span`)."""
LABEL_SPAN = c.LABEL_SPAN
"""The SDK's label span name: a span of this name is a label whatever it carries (see :func:`label_span`)."""
ATTR = "SpanAttributes"


def label_span(attr: str = ATTR) -> str:
    """SQL: the span is a label: it carries ``ml.label.value``, or is named ``ml.label``.

    Reads ``SpanName`` and the attribute names only (``mapContains`` reads the map's ``keys`` subcolumn)."""
    return f"(SpanName = '{LABEL_SPAN}' OR mapContains({attr}, '{c.LABEL_VALUE}'))"


def prediction_span(attr: str = ATTR) -> str:
    """SQL: the span is a prediction (what ``ml_predictions_mv`` types): a non-empty ``ml.model.name``, not a label."""
    return f"({attr}['{c.MODEL_NAME}'] != '' AND NOT {label_span(attr)})"


def prediction_span_keys(attr: str = ATTR) -> str:
    """SQL: the span carries ``ml.model.name`` and is not a label; attribute names only, no value is read.

    A superset of :func:`prediction_span` (it also counts an empty ``ml.model.name``), for counts over many
    raw spans where reading every span's attribute values would cost too much."""
    return f"(mapContains({attr}, '{c.MODEL_NAME}') AND NOT {label_span(attr)})"


def typed_label(attr: str = ATTR) -> str:
    """SQL: the span is a label that ``ml_labels_mv`` types (its ``ml.prediction.id`` is not empty)."""
    return f"({label_span(attr)} AND {attr}['{c.PREDICTION_ID}'] != '')"

_UNSUPPORTED = "json: unsupported value: "  # how the exporter renders a non-finite double
LEADING_ZERO = "^[-+]?0[0-9]"
"""A value matching this (RE2) is text even when it parses as a number: see :func:`_num`."""


def _num(expr: str) -> str:
    """SQL: a rendered attribute value as Nullable(Float64).

    Whatever ``toFloat64OrNull`` parses, plus the exporter's renderings of
    non-finite doubles, which are numbers out of range, not text. Text with
    a leading zero (``02139``, ``007``) is a code, not a number: the exporter
    never renders a number so, and parsing it would lose the zeros (a zip
    code would no longer match its training category).
    """
    return (f"if(startsWith({expr}, '{_UNSUPPORTED}'), multiIf({expr} = '{_UNSUPPORTED}+Inf', inf, "
            f"{expr} = '{_UNSUPPORTED}-Inf', -inf, nan), if(match({expr}, '{LEADING_ZERO}'), NULL, toFloat64OrNull({expr})))")


MAX_WEIGHT = 1e6
"""The largest sampling weight the typed view keeps (a sampling rate of one in a million); see :func:`_weight`."""
_BOUNDED_WEIGHTS = True  # False: ml_predictions and its view as migrations before 12 made them (for tests of 12)


def _weight_clamped_column() -> str:
    return "\n    WeightClamped Bool DEFAULT false," if _BOUNDED_WEIGHTS else ""


def _weight(attr: str) -> str:
    """SQL: the ``Weight`` (and ``WeightClamped``) select items of a prediction span's ``ml.sampling.weight``.

    A weight is a count of predictions one kept span stands for, at least 1:
    absent, text, NaN, infinite or below 1 is 1; above :data:`MAX_WEIGHT` is
    :data:`MAX_WEIGHT`. ``WeightClamped`` says the span carried a weight that
    was not kept as sent (the raw value stays in ``otel_traces``), so that
    bounding one bad attribute neither refuses a batch nor passes unnoticed.
    """
    w = f"toFloat64OrNull({attr}['{c.SAMPLING_WEIGHT}'])"
    if not _BOUNDED_WEIGHTS:
        return f"if(isFinite(ifNull({w}, 1.)) AND {w} >= 1., {w}, 1.) AS Weight"
    return (f"if(isFinite(ifNull({w}, 1.)) AND {w} >= 1., least({w}, {MAX_WEIGHT!r}), 1.) AS Weight,\n"
            f"    mapContains({attr}, '{c.SAMPLING_WEIGHT}') "
            f"AND NOT ifNull(isFinite({w}) AND {w} >= 1. AND {w} <= {MAX_WEIGHT!r}, false) AS WeightClamped")


OWN_ID = "own"
"""How the view writes the prediction id: ``OwnPredictionId``, '' when it is the trace id (migration 16 on)."""
FULL_ID = "full"
"""``PredictionId``, always written (the physical column of migrations 2 to 15)."""
BOTH_IDS = "both"
"""Both (while migration 16 renames the column: whichever the table has is filled, the other is ignored)."""

PREDICTION_ID_ALIAS = "if(OwnPredictionId = '', TraceId, OwnPredictionId)"
"""``ml_predictions.PredictionId`` (an ALIAS column from migration 16): the application's own id, else the trace id."""


SEGMENT_RESOURCE_KEYS = (
    "service.name", "service.namespace", "service.version", "service.instance.id",
    "deployment.environment", "deployment.environment.name",
    "cloud.provider", "cloud.region", "cloud.availability_zone",
    "k8s.cluster.name", "k8s.namespace.name", "k8s.deployment.name", "k8s.pod.name", "k8s.node.name", "host.name",
)
"""Resource attributes typed into ``ml_predictions.Resource`` (migration 17), to analyse segments by: where the
predictions were made. Any resource attribute starting with :data:`SEGMENT_RESOURCE_PREFIX` is kept too."""

SEGMENT_RESOURCE_PREFIX = "ml.segment."


def resource_segments(attributes: str, service_name: str) -> str:
    """SQL: the span's resource attributes that segments read (:data:`SEGMENT_RESOURCE_KEYS`), ``service.name``
    from the exporter's ``ServiceName`` column (which holds it, out of ``ResourceAttributes``)."""
    keys = ", ".join(f"'{k}'" for k in SEGMENT_RESOURCE_KEYS if k != "service.name")
    kept = f"mapFilter((k, v) -> k IN ({keys}) OR startsWith(k, '{SEGMENT_RESOURCE_PREFIX}'), {attributes})"
    return f"mapUpdate({kept}, if({service_name} = '', map(), map('service.name', {service_name})))"


def predictions(ctx: Context) -> list[str]:
    """Migration 2: the table as it was then (``PredictionId`` physical; migration 16 makes it an ALIAS), its view."""
    columns = f"""    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    PredictionId String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String),
    Weight Float64 CODEC(ZSTD(1)),{_weight_clamped_column()}
    Reason LowCardinality(String),
    LowConfidence Bool,
    HighRisk Bool,
    IsError Bool,
    Prediction String CODEC(ZSTD(1)),
    PredictionNumber Nullable(Float64) CODEC(ZSTD(1)),
    Score Nullable(Float64) CODEC(ZSTD(1)),
    Confidence Nullable(Float64) CODEC(ZSTD(1)),
    Numeric Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    Categorical Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    DurationNs UInt64 CODEC(ZSTD(1)),
    Probabilities Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    Resource Map(LowCardinality(String), String) CODEC(ZSTD(1))"""
    tail = (f"PARTITION BY toDate(Timestamp)\nORDER BY (ModelName, ModelVersion, Timestamp)\n"
            f"{ctx.ttl('Timestamp', ctx.retention.predictions_days)}\nSETTINGS ttl_only_drop_parts = 1")
    return create_table(ctx, "ml_predictions", columns, ctx.engine(), tail) + [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ctx.database}.{ident('ml_predictions_mv')}{ctx.on_cluster} "
        f"TO {ctx.name('ml_predictions')} AS\n{predictions_select(ctx, FULL_ID)}"
    ]


def _prediction_id(attr: str, form: str) -> str:
    """The prediction id's select item(s): the span's ``ml.prediction.id``, else its trace id (see :data:`OWN_ID`)."""
    pid = f"{attr}['{c.PREDICTION_ID}']"
    own = f"if({pid} = TraceId, '', {pid}) AS OwnPredictionId"
    full = f"if({pid} != '', {pid}, TraceId) AS PredictionId"
    return {OWN_ID: own, FULL_ID: full, BOTH_IDS: f"{full},\n    {own}"}[form]


def predictions_select(ctx: Context, prediction_id: str = OWN_ID) -> str:
    """The view's query: a prediction span's attributes, typed (see :func:`_num` for what counts as a number).

    The prediction id is stored once: ``OwnPredictionId`` holds the span's ``ml.prediction.id`` unless it is
    empty or the trace id (the SDK's default), and ``PredictionId`` reads it back, else ``TraceId``
    (:data:`PREDICTION_ID_ALIAS`). `prediction_id`: :data:`OWN_ID`, or the forms of the migrations before 16."""
    attr = ATTR
    # each feature value is parsed once: keys, values and parsed numbers as parallel arrays
    numeric = ("mapFromArrays(arrayMap(k -> substring(k, 12), arrayFilter((k, n) -> isNotNull(n), _fk, _fn)), "
               "arrayMap(n -> assumeNotNull(n), arrayFilter(n -> isNotNull(n), _fn)))")
    categorical = ("mapFromArrays(arrayMap(k -> substring(k, 12), arrayFilter((k, n) -> isNull(n), _fk, _fn)), "
                   "arrayFilter((v, n) -> isNull(n), _fv, _fn))")
    # a class's probability: finite numbers in [0, 1] only (anything else is left out of the map)
    probabilities = (f"mapFromArrays(arrayMap(k -> substring(k, {len(c.PROBABILITY_PREFIX) + 1}), "
                     "arrayFilter((k, n) -> ifNull(n >= 0 AND n <= 1, false), mapKeys(_p), _pn)), "
                     "arrayMap(n -> assumeNotNull(n), arrayFilter(n -> ifNull(n >= 0 AND n <= 1, false), _pn)))")
    return f"""WITH
    mapFilter((k, v) -> startsWith(k, '{c.FEATURE_PREFIX}'), {attr}) AS _f,
    mapKeys(_f) AS _fk,
    mapValues(_f) AS _fv,
    arrayMap(v -> {_num('v')}, _fv) AS _fn,
    mapFilter((k, v) -> startsWith(k, '{c.PROBABILITY_PREFIX}'), {attr}) AS _p,
    arrayMap(v -> toFloat64OrNull(v), mapValues(_p)) AS _pn
SELECT
    Timestamp,
    {attr}['{c.MODEL_NAME}'] AS ModelName,
    {attr}['{c.MODEL_VERSION}'] AS ModelVersion,
    {_prediction_id(attr, prediction_id)},
    TraceId,
    SpanId,
    ServiceName,
    {_weight(attr)},
    {attr}['{c.SAMPLING_REASON}'] AS Reason,
    {attr}['{c.LOW_CONFIDENCE}'] = 'true' AS LowConfidence,
    {attr}['{c.HIGH_RISK}'] = 'true' AS HighRisk,
    StatusCode = 'Error' AS IsError,
    {attr}['{c.PREDICTION_VALUE}'] AS Prediction,
    {_num(f"{attr}['{c.PREDICTION_VALUE}']")} AS PredictionNumber,
    {_num(f"{attr}['{c.PREDICTION_SCORE}']")} AS Score,
    {_num(f"{attr}['{c.PREDICTION_CONFIDENCE}']")} AS Confidence,
    {numeric} AS Numeric,
    {categorical} AS Categorical,
    Duration AS DurationNs,
    {probabilities} AS Probabilities,
    {resource_segments('ResourceAttributes', 'ServiceName')} AS Resource
FROM {ctx.name('otel_traces')}
WHERE {prediction_span(attr)}"""


def labels(ctx: Context) -> list[str]:
    columns = """    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    PredictionId String CODEC(ZSTD(1)),
    Label String CODEC(ZSTD(1)),
    LabelNumber Nullable(Float64) CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1))"""
    tail = (f"PARTITION BY toYYYYMM(Timestamp)\nORDER BY (ModelName, PredictionId)\n"
            f"{ctx.ttl('Timestamp', ctx.retention.labels_days)}")
    return create_table(ctx, "ml_labels", columns, ctx.engine("ReplacingMergeTree", "Timestamp"), tail) + [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ctx.database}.{ident('ml_labels_mv')}{ctx.on_cluster} "
        f"TO {ctx.name('ml_labels')} AS\n{labels_select(ctx)}"
    ]


def labels_select(ctx: Context) -> str:
    attr = ATTR
    return f"""SELECT
    Timestamp,
    {attr}['{c.MODEL_NAME}'] AS ModelName,
    {attr}['{c.MODEL_VERSION}'] AS ModelVersion,
    {attr}['{c.PREDICTION_ID}'] AS PredictionId,
    {attr}['{c.LABEL_VALUE}'] AS Label,
    {_num(f"{attr}['{c.LABEL_VALUE}']")} AS LabelNumber,
    TraceId
FROM {ctx.name('otel_traces')}
WHERE {typed_label(attr)}"""
