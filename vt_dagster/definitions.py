"""The code location: one chain of assets per enabled feed, the live schedule, resources."""

from __future__ import annotations

import dagster as dg

from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.feeds import enabled_feeds
from vt_dagster.resources import (
    feeds_resource_from_env,
    storage_resource_from_env,
    summarizer_resource_from_env,
)

FEEDS = enabled_feeds()

raw_batch_assets = [build_raw_batch_asset(feed) for feed in FEEDS]
summaries_assets = [build_summaries_asset(feed) for feed in FEEDS]
pipeline_assets = [*raw_batch_assets, *summaries_assets]

live_job = dg.define_asset_job(
    "vt_live_job",
    selection=dg.AssetSelection.assets(*pipeline_assets),
    description="The newest batch of every enabled feed, as far as the pipeline goes.",
)

# The schedule asks every minute for the newest minute VT serves (the last partition).
live_schedule = dg.build_schedule_from_partitioned_job(live_job, name="vt_live_schedule")

# forkserver + preloaded modules halves the per-step start-up cost of spawn (measured).
executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["dagster", "vt_dagster"]}}}
)

defs = dg.Definitions(
    assets=pipeline_assets,
    jobs=[live_job],
    schedules=[live_schedule],
    resources={
        "vt_feeds": feeds_resource_from_env(),
        "vt_storage": storage_resource_from_env(),
        "vt_summarizer": summarizer_resource_from_env(),
    },
    executor=executor,
)
