"""Sample Dagster code location for the lineage-bus testbed (Dagster 1.13).

Nothing here touches a real database: every asset only *reports* what a warehouse job would have done,
through metadata, so that the event log holds realistic material for asset-key -> table resolution
(OpenMetadata) and OpenLineage facets. What each definition exercises:

External, non-materializable AssetSpecs (group ``sources``), used as upstream deps:
  * ``warehouse_db/raw/events_source``  3-part key, definition-level ``dagster/column_schema``;
    run_jobs.sh reports runless materializations/observations/check results for it over REST.
  * ``vendor_api/orders_endpoint``      2-part key (``schema.table`` style).

Job ``ingest_raw_job`` (job A, multiprocess executor, group ``raw``):
  * ``warehouse_db/raw/orders``     3-part key, deps on the external events_source; materialization
    metadata ``dagster/column_schema``, ``dagster/row_count``, ``dagster/table_name``.
  * ``warehouse_db/raw/customers``  3-part key, column schema, row count.
  * ``warehouse_db/raw/payments``   RetryPolicy: the first attempt raises, the retry succeeds
    (STEP_UP_FOR_RETRY / STEP_RESTARTED events, the run still SUCCEEDS).

Job ``transform_job`` (job B, in-process executor, group ``analytics``), depends on job A's assets:
  * ``acme_project/warehouse_db/staging/orders_clean``  4-part key with a project prefix
    (OpenMetadata ``stripAssetKeyPrefixLength: 1``); ``dagster/column_lineage`` back to raw/orders.
    Asset checks (blocking=False): ``unique_order_id`` PASSES, ``no_null_customer_id`` FAILS.
  * ``warehouse_db/analytics/daily_revenue``  column schema + column lineage from two upstream assets,
    row count; check ``revenue_non_negative`` PASSES.
  * ``customer_summary``  short custom key; the materialization carries the labels ``database``,
    ``schema``, ``table`` naming warehouse_db.analytics.customer_summary (OpenMetadata's fallback).
  * ``kpi_feed``  short key resolved through ``dagster/table_name`` and
    ``dagster/relation_identifier`` (warehouse_db.reporting.kpi_feed), on the definition and the
    materialization.

Job ``daily_events_job``: ``warehouse_db/staging/events_daily`` with a DailyPartitionsDefinition;
run_jobs.sh runs three partitions (tag ``dagster/partition``).

Job ``broken_feed_job``: ``warehouse_db/raw/vendor_orders`` raises, so the run FAILS (STEP_FAILURE,
PIPELINE_FAILURE); its downstream ``warehouse_db/staging/vendor_orders_clean`` is skipped (its
ASSET_MATERIALIZATION_PLANNED event never gets a materialization).

Job ``slow_rebuild_job``: ``warehouse_db/analytics/orders_history_rebuild`` sleeps for minutes;
run_jobs.sh terminates it (CANCELING -> CANCELED).

All assets carry owners (a user e-mail and a ``team:``), tags, kinds, a group name and a description.
"""
