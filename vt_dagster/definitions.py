"""The code location: one chain of assets per enabled feed, the live schedule, resources."""

from __future__ import annotations

import dagster as dg

from vt_dagster.assets.elasticsearch import (
    build_report_cache_asset,
    build_summary_index_asset,
    setup_elasticsearch_job,
)
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.config_errors import ConfigurationError
from vt_dagster.feeds import enabled_feeds
from vt_dagster.live import build_live_job, build_live_schedule, live_interval_from_env
from vt_dagster.maintenance import build_retention_job, build_retention_schedule
from vt_dagster.retention import retention_days_from_env
from vt_dagster.sensors import build_backfill_sensor
from vt_dagster.resources import (
    apm_resource_from_env,
    elasticsearch_resource_from_env,
    feeds_resource_from_env,
    storage_resource_from_env,
    summarizer_resource_from_env,
)

try:
    FEEDS = enabled_feeds()
    LIVE_INTERVAL_MINUTES = live_interval_from_env()
    retention_days_from_env()
except ConfigurationError as error:
    # The UI shows this as the code location's load error: the one line naming VT_FEEDS, with
    # a stack that starts here rather than inside feeds.py.
    raise error.with_traceback(None) from None

pipeline_assets = [
    build(feed, with_apm=True)
    for feed in FEEDS
    for build in (build_raw_batch_asset, build_summaries_asset, build_summary_index_asset, build_report_cache_asset)
]

live_job = build_live_job(pipeline_assets)
live_schedule = build_live_schedule(live_job, LIVE_INTERVAL_MINUTES)
retention_job = build_retention_job(FEEDS)

# forkserver + preloaded modules halves the per-step start-up cost of spawn (measured).
executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["dagster", "vt_dagster"]}}}
)

defs = dg.Definitions(
    assets=pipeline_assets,
    jobs=[live_job, setup_elasticsearch_job, retention_job],
    schedules=[live_schedule, build_retention_schedule(retention_job)],
    sensors=[build_backfill_sensor(FEEDS)],
    resources={
        "vt_feeds": feeds_resource_from_env(),
        "vt_storage": storage_resource_from_env(),
        "vt_summarizer": summarizer_resource_from_env(),
        "vt_elasticsearch": elasticsearch_resource_from_env(),
        "vt_apm": apm_resource_from_env(),
    },
    executor=executor,
)
