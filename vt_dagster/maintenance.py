"""The retention job and its hourly schedule, on by default: a service's instance and data
folder stay within a known size without anyone remembering to clean them."""

import datetime as dt

import dagster as dg

from vt_dagster.feeds import Feed
from vt_dagster.resources import VTStorageResource
from vt_dagster.retention import delete_old_runs, prune_data_folder, retention_days_from_env


def build_retention_job(feeds: list[Feed]) -> dg.JobDefinition:
    @dg.op(description="Deletes finished runs past VT_RUN_RETENTION_DAYS (events and compute logs too), "
           "and raw batches and summaries past their retention once every stage reading them is done.")
    def apply_retention(context: dg.OpExecutionContext, vt_storage: VTStorageResource) -> dg.Output[None]:
        days = retention_days_from_env()
        now = dt.datetime.now(dt.timezone.utc)
        instance = context.instance

        def finished(feed: str, stage: str) -> set[str]:
            return set(instance.get_materialized_partitions(dg.AssetKey([feed, stage])))

        files = prune_data_folder(vt_storage.path, [f.name for f in feeds], finished, days, now)
        runs = delete_old_runs(instance, now - dt.timedelta(days=days.runs))
        context.log.info(
            f"retention: {runs.runs} run(s) older than {days.runs} d deleted; {files.files} file(s), "
            f"{files.bytes / 1e6:.1f} MB removed; {files.kept_unfinished} kept for an unfinished stage")
        if files.past_window_unfinished:
            context.log.warning(f"retention: {files.past_window_unfinished} file(s) past VT's 7-day window were "
                                "removed although a stage never finished them")
        return dg.Output(None, metadata={
            "runs_deleted": runs.runs, "files_removed": files.files, "mb_removed": round(files.bytes / 1e6, 1),
            "kept_for_unfinished_stages": files.kept_unfinished,
            "removed_past_window_unfinished": files.past_window_unfinished,
            "run_retention_days": days.runs, "raw_retention_days": days.raw, "summary_retention_days": days.summaries,
        })

    @dg.job(name="vt_retention_job", executor_def=dg.in_process_executor,
            description="Keeps the Dagster instance and the data folder bounded (see README, Retention).")
    def vt_retention_job() -> None:
        apply_retention()

    return vt_retention_job


def build_retention_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="vt_retention_schedule", job=job, cron_schedule="17 * * * *", execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Hourly retention (on by default whenever the daemon runs).",
    )
