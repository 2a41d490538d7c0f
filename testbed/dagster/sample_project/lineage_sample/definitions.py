"""Definitions of the ``lineage_sample`` code location; see the package docstring for what each
asset exercises. Loaded by testbed/dagster/workspace.yaml (python_file, working directory
``sample_project``)."""

import time

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DailyPartitionsDefinition,
    Definitions,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
    asset_check,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

DATA_ENG = "data-eng@example.com"
ANALYTICS = "analyst@example.com"

# --------------------------------------------------------------------------------------------
# External sources: declared, never materialized by Dagster.
# --------------------------------------------------------------------------------------------

EVENTS_SOURCE_KEY = AssetKey(["warehouse_db", "raw", "events_source"])
VENDOR_API_KEY = AssetKey(["vendor_api", "orders_endpoint"])

EVENTS_SCHEMA = TableSchema(
    columns=[
        TableColumn("event_id", "bigint", description="Surrogate key"),
        TableColumn("order_id", "bigint"),
        TableColumn("event_type", "varchar"),
        TableColumn("event_ts", "timestamp"),
    ]
)

events_source = AssetSpec(
    EVENTS_SOURCE_KEY,
    description="Click and order events landed by the (external) ingestion service.",
    group_name="sources",
    owners=[DATA_ENG, "team:platform"],
    tags={"domain": "events", "tier": "bronze"},
    kinds={"postgres", "table"},
    metadata={
        "dagster/column_schema": EVENTS_SCHEMA,
        "dagster/table_name": "warehouse_db.raw.events_source",
    },
)

vendor_api = AssetSpec(
    VENDOR_API_KEY,
    description="Orders endpoint of an external vendor API.",
    group_name="sources",
    owners=["team:partners"],
    tags={"domain": "vendors"},
    kinds={"api"},
)

# --------------------------------------------------------------------------------------------
# Job A: raw tables.
# --------------------------------------------------------------------------------------------

ORDERS_SCHEMA = TableSchema(
    columns=[
        TableColumn("order_id", "bigint", description="Primary key"),
        TableColumn("customer_id", "bigint"),
        TableColumn("amount", "numeric(12,2)"),
        TableColumn("ordered_at", "timestamp"),
    ]
)
CUSTOMERS_SCHEMA = TableSchema(
    columns=[
        TableColumn("customer_id", "bigint", description="Primary key"),
        TableColumn("name", "varchar"),
        TableColumn("email", "varchar"),
        TableColumn("country", "char(2)"),
    ]
)
PAYMENTS_SCHEMA = TableSchema(
    columns=[
        TableColumn("payment_id", "bigint"),
        TableColumn("order_id", "bigint"),
        TableColumn("paid_amount", "numeric(12,2)"),
    ]
)


@asset(
    key=["warehouse_db", "raw", "orders"],
    deps=[events_source],
    description="Orders extracted from the event stream into warehouse_db.raw.orders.",
    group_name="raw",
    owners=[DATA_ENG, "team:data-engineering"],
    tags={"domain": "sales", "tier": "bronze"},
    kinds={"postgres", "python"},
    metadata={"dagster/column_schema": ORDERS_SCHEMA, "dagster/table_name": "warehouse_db.raw.orders"},
)
def raw_orders(context: AssetExecutionContext) -> MaterializeResult:
    context.log.info("loading orders from events_source")
    return MaterializeResult(
        metadata={
            "dagster/column_schema": ORDERS_SCHEMA,
            "dagster/row_count": 1250,
            "dagster/table_name": "warehouse_db.raw.orders",
            "dagster/uri": "postgresql://warehouse/warehouse_db/raw/orders",
        }
    )


@asset(
    key=["warehouse_db", "raw", "customers"],
    description="Customer master data copied into warehouse_db.raw.customers.",
    group_name="raw",
    owners=[DATA_ENG, "team:data-engineering"],
    tags={"domain": "crm", "tier": "bronze", "pii": "true"},
    kinds={"postgres", "python"},
)
def raw_customers() -> MaterializeResult:
    return MaterializeResult(
        metadata={"dagster/column_schema": CUSTOMERS_SCHEMA, "dagster/row_count": 310}
    )


@asset(
    key=["warehouse_db", "raw", "payments"],
    description="Payments from the PSP; the first attempt always fails (exercises step retries).",
    group_name="raw",
    owners=[DATA_ENG, "team:data-engineering"],
    tags={"domain": "finance", "tier": "bronze"},
    kinds={"postgres", "python"},
    retry_policy=RetryPolicy(max_retries=2, delay=1),
)
def raw_payments(context: AssetExecutionContext) -> MaterializeResult:
    if context.retry_number == 0:
        raise ConnectionError("PSP API timed out (simulated transient error, retry expected)")
    context.log.info(f"succeeded on retry {context.retry_number}")
    return MaterializeResult(
        metadata={
            "dagster/column_schema": PAYMENTS_SCHEMA,
            "dagster/row_count": 1190,
            "attempt": context.retry_number + 1,
        }
    )


# --------------------------------------------------------------------------------------------
# Job B: downstream tables depending on job A's assets.
# --------------------------------------------------------------------------------------------

RAW_ORDERS_KEY = raw_orders.key
RAW_CUSTOMERS_KEY = raw_customers.key
RAW_PAYMENTS_KEY = raw_payments.key
ORDERS_CLEAN_KEY = AssetKey(["acme_project", "warehouse_db", "staging", "orders_clean"])

ORDERS_CLEAN_SCHEMA = TableSchema(
    columns=[
        TableColumn("order_id", "bigint"),
        TableColumn("customer_id", "bigint"),
        TableColumn("amount_usd", "numeric(12,2)"),
        TableColumn("order_date", "date"),
    ]
)


@asset(
    key=ORDERS_CLEAN_KEY,
    deps=[raw_orders],
    description="Deduplicated orders with amounts converted to USD (4-part key: project prefix).",
    group_name="analytics",
    owners=[DATA_ENG, "team:analytics"],
    tags={"domain": "sales", "tier": "silver"},
    kinds={"postgres", "sql"},
)
def orders_clean() -> MaterializeResult:
    lineage = TableColumnLineage(
        deps_by_column={
            "order_id": [TableColumnDep(asset_key=RAW_ORDERS_KEY, column_name="order_id")],
            "customer_id": [TableColumnDep(asset_key=RAW_ORDERS_KEY, column_name="customer_id")],
            "amount_usd": [TableColumnDep(asset_key=RAW_ORDERS_KEY, column_name="amount")],
            "order_date": [TableColumnDep(asset_key=RAW_ORDERS_KEY, column_name="ordered_at")],
        }
    )
    return MaterializeResult(
        metadata={
            "dagster/column_schema": ORDERS_CLEAN_SCHEMA,
            "dagster/column_lineage": lineage,
            "dagster/row_count": 1234,
        }
    )


@asset_check(asset=orders_clean, blocking=False, description="order_id is unique")
def unique_order_id() -> AssetCheckResult:
    return AssetCheckResult(passed=True, metadata={"duplicate_rows": 0})


@asset_check(asset=orders_clean, blocking=False, description="customer_id is never null")
def no_null_customer_id() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description="17 orders have no customer",
        metadata={"null_rows": 17, "sample_order_ids": MetadataValue.json([101, 205, 333])},
    )


DAILY_REVENUE_SCHEMA = TableSchema(
    columns=[
        TableColumn("revenue_date", "date"),
        TableColumn("gross_revenue", "numeric(14,2)"),
        TableColumn("paid_revenue", "numeric(14,2)"),
        TableColumn("order_count", "integer"),
    ]
)


@asset(
    key=["warehouse_db", "analytics", "daily_revenue"],
    deps=[orders_clean, raw_payments],
    description="Revenue per day, joined from clean orders and payments.",
    group_name="analytics",
    owners=[ANALYTICS, "team:analytics"],
    tags={"domain": "finance", "tier": "gold"},
    kinds={"postgres", "sql"},
    metadata={"dagster/column_schema": DAILY_REVENUE_SCHEMA},
)
def daily_revenue() -> MaterializeResult:
    lineage = TableColumnLineage(
        deps_by_column={
            "revenue_date": [TableColumnDep(asset_key=ORDERS_CLEAN_KEY, column_name="order_date")],
            "gross_revenue": [TableColumnDep(asset_key=ORDERS_CLEAN_KEY, column_name="amount_usd")],
            "paid_revenue": [
                TableColumnDep(asset_key=RAW_PAYMENTS_KEY, column_name="paid_amount"),
                TableColumnDep(asset_key=ORDERS_CLEAN_KEY, column_name="order_id"),
            ],
            "order_count": [TableColumnDep(asset_key=ORDERS_CLEAN_KEY, column_name="order_id")],
        }
    )
    return MaterializeResult(
        metadata={
            "dagster/column_schema": DAILY_REVENUE_SCHEMA,
            "dagster/column_lineage": lineage,
            "dagster/row_count": 31,
            "total_revenue": 98765.43,
        }
    )


@asset_check(asset=daily_revenue, blocking=False, description="No day has negative revenue")
def revenue_non_negative() -> AssetCheckResult:
    return AssetCheckResult(passed=True, metadata={"min_gross_revenue": 12.5})


@asset(
    key=["customer_summary"],
    deps=[raw_customers, orders_clean],
    description="Orders per customer. Short key: the table is named through metadata labels.",
    group_name="analytics",
    owners=[ANALYTICS, "team:analytics"],
    tags={"domain": "crm", "tier": "gold"},
    kinds={"postgres", "sql"},
)
def customer_summary() -> MaterializeResult:
    return MaterializeResult(
        metadata={
            # The labels OpenMetadata's Dagster connector falls back to for non-table-shaped keys.
            "database": MetadataValue.text("warehouse_db"),
            "schema": MetadataValue.text("analytics"),
            "table": MetadataValue.text("customer_summary"),
            "dagster/row_count": 305,
        }
    )


KPI_TABLE = "warehouse_db.reporting.kpi_feed"


@asset(
    key=["kpi_feed"],
    deps=[daily_revenue, customer_summary],
    description="KPI feed for the BI dashboard. Short key: named by dagster/table_name.",
    group_name="analytics",
    owners=[ANALYTICS, "team:bi"],
    tags={"domain": "reporting", "tier": "gold"},
    kinds={"postgres", "sql"},
    metadata={"dagster/table_name": KPI_TABLE, "dagster/relation_identifier": KPI_TABLE},
)
def kpi_feed() -> MaterializeResult:
    return MaterializeResult(
        metadata={
            "dagster/table_name": KPI_TABLE,
            "dagster/relation_identifier": KPI_TABLE,
            "dagster/row_count": 12,
        }
    )


# --------------------------------------------------------------------------------------------
# Partitioned asset.
# --------------------------------------------------------------------------------------------

daily_partitions = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")


@asset(
    key=["warehouse_db", "staging", "events_daily"],
    deps=[events_source],
    partitions_def=daily_partitions,
    description="Events of one day, copied into a date-partitioned staging table.",
    group_name="staging",
    owners=[DATA_ENG, "team:platform"],
    tags={"domain": "events", "tier": "silver"},
    kinds={"postgres", "python"},
)
def events_daily(context: AssetExecutionContext) -> MaterializeResult:
    day = context.partition_key
    rows = 1000 + int(day[-2:]) * 17
    return MaterializeResult(
        metadata={
            "dagster/column_schema": EVENTS_SCHEMA,
            "dagster/partition_row_count": rows,
            "dagster/row_count": rows,
            "partition_date": day,
        }
    )


# --------------------------------------------------------------------------------------------
# A feed that always fails, and its skipped downstream.
# --------------------------------------------------------------------------------------------


@asset(
    key=["warehouse_db", "raw", "vendor_orders"],
    deps=[vendor_api],
    description="Orders pulled from the vendor API; always raises (exercises failed runs).",
    group_name="raw",
    owners=[DATA_ENG, "team:partners"],
    tags={"domain": "vendors", "tier": "bronze"},
    kinds={"postgres", "python"},
)
def vendor_orders() -> MaterializeResult:
    raise RuntimeError("vendor API returned HTTP 503 (simulated permanent failure)")


@asset(
    key=["warehouse_db", "staging", "vendor_orders_clean"],
    deps=[vendor_orders],
    description="Cleaned vendor orders; never runs because its upstream fails.",
    group_name="staging",
    owners=["team:partners"],
    tags={"domain": "vendors", "tier": "silver"},
    kinds={"postgres", "sql"},
)
def vendor_orders_clean() -> MaterializeResult:
    return MaterializeResult(metadata={"dagster/row_count": 0})


# --------------------------------------------------------------------------------------------
# A slow asset whose run gets canceled.
# --------------------------------------------------------------------------------------------


@asset(
    key=["warehouse_db", "analytics", "orders_history_rebuild"],
    deps=[orders_clean],
    description="Full rebuild of the order history; slow (run_jobs.sh cancels it).",
    group_name="analytics",
    owners=[DATA_ENG, "team:analytics"],
    tags={"domain": "sales", "tier": "gold"},
    kinds={"postgres", "sql"},
)
def orders_history_rebuild(context: AssetExecutionContext) -> MaterializeResult:
    for i in range(300):
        if i % 10 == 0:
            context.log.info(f"rebuilding chunk {i}")
        time.sleep(1)
    return MaterializeResult(metadata={"dagster/row_count": 1_000_000})


# --------------------------------------------------------------------------------------------
# Jobs and definitions.
# --------------------------------------------------------------------------------------------

ingest_raw_job = define_asset_job(
    "ingest_raw_job",
    selection=[raw_orders, raw_customers, raw_payments],
    description="Job A: load the raw tables.",
    tags={"team": "data-engineering"},
    executor_def=multiprocess_executor.configured({"max_concurrent": 2}),
)
transform_job = define_asset_job(
    "transform_job",
    selection=[orders_clean, daily_revenue, customer_summary, kpi_feed],
    description="Job B: build staging/analytics tables from job A's raw tables, run the checks.",
    tags={"team": "analytics"},
)
daily_events_job = define_asset_job(
    "daily_events_job",
    selection=[events_daily],
    partitions_def=daily_partitions,
    description="Daily-partitioned copy of the events source.",
)
broken_feed_job = define_asset_job(
    "broken_feed_job",
    selection=[vendor_orders, vendor_orders_clean],
    description="Always fails in vendor_orders.",
)
slow_rebuild_job = define_asset_job(
    "slow_rebuild_job",
    selection=[orders_history_rebuild],
    description="Slow; gets canceled by run_jobs.sh.",
)

defs = Definitions(
    assets=[
        events_source,
        vendor_api,
        raw_orders,
        raw_customers,
        raw_payments,
        orders_clean,
        daily_revenue,
        customer_summary,
        kpi_feed,
        events_daily,
        vendor_orders,
        vendor_orders_clean,
        orders_history_rebuild,
    ],
    asset_checks=[unique_order_id, no_null_customer_id, revenue_non_negative],
    jobs=[ingest_raw_job, transform_job, daily_events_job, broken_feed_job, slow_rebuild_job],
    # Steps run in the run worker process (fast on 2 cores); ingest_raw_job overrides this.
    executor=in_process_executor,
)
