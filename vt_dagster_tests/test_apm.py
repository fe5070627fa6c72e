"""Elastic APM with the real agent and a local intake: one transaction per stage run, spans for
VT requests, bz2 decoding and Elasticsearch bulk calls, errors with feed and partition labels,
nothing at all when APM is unset, and no secret in what Dagster stores or APM receives."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import elasticapm
import pytest

from vt_dagster.apm import VTApmResource, close_process_agent
from vt_dagster.assets.elasticsearch import (
    build_report_cache_asset,
    build_summary_index_asset,
    setup_elasticsearch_job,
)
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.resources import (
    VTElasticsearchResource,
    VTFeedsResource,
    VTStorageResource,
    VTSummarizerResource,
    apm_resource_from_env,
)
from vt_dagster_tests.apm_intake import ApmIntake

UTC = dt.timezone.utc
FILES = get_feed("files")
VT_KEY = "vt-apm-test-key-3c9e1f7a"
APM_TOKEN = "apm-secret-token-8b2d4e6f"


def recent_minutes(count: int, start_ago: int) -> list[str]:
    first = dt.datetime.now(UTC) - dt.timedelta(minutes=start_ago)
    return [minute_key(first + dt.timedelta(minutes=m)) for m in range(count)]


def range_tags(keys: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def apm_for(intake: ApmIntake) -> VTApmResource:
    """The agent pointed at the intake, with nothing that would leave loopback (cloud metadata)."""
    return VTApmResource(server_url=intake.url, cloud_provider="none", central_config=False, metrics_interval="0ms")


def download_and_summarize(with_apm: bool = True) -> list[dg.AssetsDefinition]:
    return [build_raw_batch_asset(FILES, with_apm=with_apm), build_summaries_asset(FILES, with_apm=with_apm)]


def by_name(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["name"], []).append(event)
    return grouped


def span_count(spans: list[dict[str, Any]]) -> int:
    """Spans the agent sent, counting those it compressed into one (fast identical exit spans)."""
    return sum(span.get("composite", {}).get("count", 1) for span in spans)


def labels(event: dict[str, Any]) -> dict[str, Any]:
    return event.get("context", {}).get("tags", {})


@pytest.fixture(autouse=True)
def agent_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ELASTIC_APM_* variable of the machine leaks in (the agent lets them win); no agent leaks out."""
    for variable in [name for name in os.environ if name.startswith("ELASTIC_APM_")]:
        monkeypatch.delenv(variable)
    yield
    close_process_agent()


@pytest.fixture
def vt() -> Iterator[FeedsEmulator]:
    with FeedsEmulator(EmulatorConfig(api_key=VT_KEY, objects_per_minute=3, seed=5)) as running:
        yield running


@pytest.fixture
def resources(vt: FeedsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("VT_API_KEY", VT_KEY)
    return {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=vt.base_url, backoff_base_s=0.01),
        "vt_storage": VTStorageResource(root=str(tmp_path / "data")),
        "vt_summarizer": VTSummarizerResource(workers=2),
    }


def test_each_stage_run_is_one_transaction_with_spans_for_vt_requests_and_bz2(vt, resources) -> None:
    keys = recent_minutes(2, start_ago=180)
    with ApmIntake() as intake:
        result = dg.materialize(download_and_summarize(), resources={**resources, "vt_apm": apm_for(intake)},
                                instance=dg.DagsterInstance.ephemeral(), tags=range_tags(keys))
        assert result.success
        # No waiting: the resource's teardown sent everything before the run returned.
        transactions = by_name(intake.of_type("transaction"))
        spans = intake.of_type("span")
        assert elasticapm.get_client() is None, "the agent is closed at the end of the step"

    partition = f"{keys[0]}..{keys[1]}"
    assert sorted(transactions) == ["files/raw_batch", "files/summaries"]
    for stage in ("raw_batch", "summaries"):
        [transaction] = transactions[f"files/{stage}"]
        assert (transaction["type"], transaction["result"], transaction["outcome"]) == (
            "dagster.asset", "success", "success")
        expected = {"feed": "files", "stage": stage, "partition": partition, "partitions": 2}
        assert labels(transaction) | expected == labels(transaction)
    download = transactions["files/raw_batch"][0]
    summarize = transactions["files/summaries"][0]
    materialized = result.get_asset_materialization_events()
    objects = {stage: sum(e.materialization.metadata["objects"].value for e in materialized
                          if e.asset_key.path[-1] == stage) for stage in ("raw_batch", "summaries")}
    assert labels(download)["downloaded"] == 2 and labels(summarize)["objects"] == objects["summaries"] > 0

    in_download = by_name([s for s in spans if s["transaction_id"] == download["id"]])
    api, body = in_download["GET /feeds/files/{minute}"], in_download["GET /feeds/files/{minute} (download)"]
    assert sorted(labels(s)["batch"] for s in api) == sorted(labels(s)["batch"] for s in body) == keys, \
        "spans opened in download threads belong to the transaction"
    assert {(s["type"], s["subtype"], s["context"]["http"]["status_code"]) for s in api} == {
        ("external", "http", 302)}
    assert {s["context"]["http"]["status_code"] for s in body} == {200}
    verified = in_download["bz2 verify (streamed)"]
    assert sorted(s["parent_id"] for s in verified) == sorted(s["id"] for s in body)
    assert sum(labels(s)["objects"] for s in verified) == objects["raw_batch"]
    assert all(labels(s)["ok"] for s in verified)

    in_summarize = by_name([s for s in spans if s["transaction_id"] == summarize["id"]])
    [pool] = in_summarize["summarize batches"]
    assert sorted(labels(s)["batch"] for s in in_summarize["summarize batch"]) == keys
    assert all(s["parent_id"] == pool["id"] and 0 < s["duration"] <= pool["duration"]
               for s in in_summarize["summarize batch"])

    sent = json.dumps(intake.events)
    downloads = [r.path for r in vt.requests if r.path.startswith("/_download/")]
    assert downloads and VT_KEY not in sent
    assert not [path for path in downloads if path in sent], "a download URL (its token) reached APM"


def test_batches_already_on_disk_are_verified_in_spans_of_the_transaction(vt, resources) -> None:
    keys = recent_minutes(2, start_ago=190)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(download_and_summarize(with_apm=False)[:1], resources=resources, instance=instance,
                          tags=range_tags(keys)).success
    with ApmIntake() as intake:
        assert dg.materialize(download_and_summarize()[:1], resources={**resources, "vt_apm": apm_for(intake)},
                              instance=instance, tags=range_tags(keys)).success
        [transaction] = intake.of_type("transaction")
        spans = intake.of_type("span")
    assert labels(transaction)["present"] == 2
    verified = [s for s in spans if s["name"] == "bz2 verify file"]
    assert sorted(labels(s)["file"] for s in verified) == [f"{key}.bz2" for key in keys]
    assert all(s["transaction_id"] == transaction["id"] and labels(s)["ok"] for s in verified)
    assert not [s for s in spans if s["type"] == "external"], "nothing was asked of VT"


def test_a_failing_partition_sends_an_error_with_feed_and_partition_and_a_failed_transaction(
    vt, resources, monkeypatch
) -> None:
    keys = recent_minutes(2, start_ago=200)
    wrong_key = "wrong-" + VT_KEY
    monkeypatch.setenv("VT_API_KEY", wrong_key)
    with ApmIntake() as intake:
        result = dg.materialize(download_and_summarize()[:1], resources={**resources, "vt_apm": apm_for(intake)},
                                instance=dg.DagsterInstance.ephemeral(), tags=range_tags(keys), raise_on_error=False)
        assert not result.success
        errors, transactions = intake.of_type("error"), intake.of_type("transaction")
        sent = json.dumps(intake.events)
    assert len(errors) == len(transactions) == 1, sent
    [error], [transaction] = errors, transactions

    partition = f"{keys[0]}..{keys[1]}"
    assert labels(error) | {"feed": "files", "stage": "raw_batch", "partition": partition} == labels(error)
    assert "401" in error["exception"]["message"] and "VT_API_KEY" in error["exception"]["message"]
    assert error["transaction_id"] == transaction["id"]
    assert (transaction["name"], transaction["result"], transaction["outcome"]) == (
        "files/raw_batch", "failure", "failure")
    # The agent's default would send the locals of the failing frames: the resource holds the key.
    assert wrong_key not in sent and VT_KEY not in sent


def test_apm_unset_sends_nothing_and_creates_no_agent(vt, resources, monkeypatch) -> None:
    created: list[dict] = []
    monkeypatch.setattr(elasticapm, "Client", lambda **config: created.append(config))
    keys = recent_minutes(2, start_ago=210)
    apm = apm_resource_from_env()
    assert not apm.enabled
    with ApmIntake() as intake:
        result = dg.materialize(download_and_summarize(), resources={**resources, "vt_apm": apm},
                                instance=dg.DagsterInstance.ephemeral(), tags=range_tags(keys))
        assert result.success
        assert not intake.wait_for(lambda i: bool(i.requests), timeout=1.0)
    assert created == [] and elasticapm.get_client() is None
    assert not [t.name for t in threading.enumerate() if t.name.startswith("eapm")]


def test_assets_built_without_apm_need_no_apm_resource() -> None:
    assert "vt_apm" in build_raw_batch_asset(FILES, with_apm=True).required_resource_keys
    for build in (build_raw_batch_asset, build_summaries_asset, build_summary_index_asset, build_report_cache_asset):
        assert "vt_apm" not in build(FILES).required_resource_keys


def test_settings_come_from_the_agents_variables(monkeypatch) -> None:
    monkeypatch.setenv("ELASTIC_APM_SERVER_URL", "https://apm.example.internal:8200")
    monkeypatch.setenv("ELASTIC_APM_ENVIRONMENT", "production")
    monkeypatch.setenv("ELASTIC_APM_VERIFY_SERVER_CERT", "false")
    apm = apm_resource_from_env()
    assert apm.enabled and apm.environment == "production" and apm.service_name == "vt-dagster"
    assert apm.verify_server_cert is False and apm.secret_token is None and apm.api_key is None
    monkeypatch.setenv("ELASTIC_APM_ENABLED", "false")
    assert not apm_resource_from_env().enabled


class AuthorizationRecordingIntake(ApmIntake):
    """The intake, also noting the Authorization header of every event request."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        super().__init__()

    def _handler_class(self) -> type:
        intake, base = self, super()._handler_class()

        class Handler(base):
            def do_POST(self) -> None:
                intake.authorizations.append(self.headers.get("Authorization"))
                super().do_POST()

        return Handler


def test_secret_token_reaches_apm_only_never_dagster_storage_logs_or_run_config(
    vt, resources, tmp_path, monkeypatch, caplog, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    keys = recent_minutes(2, start_ago=220)
    with AuthorizationRecordingIntake() as intake:
        for variable, value in (("SERVER_URL", intake.url), ("SECRET_TOKEN", APM_TOKEN), ("CLOUD_PROVIDER", "none"),
                                ("CENTRAL_CONFIG", "false"), ("METRICS_INTERVAL", "0ms")):
            monkeypatch.setenv(f"ELASTIC_APM_{variable}", value)
        instance = dg.DagsterInstance.get()
        result = dg.materialize(download_and_summarize()[:1], instance=instance, tags=range_tags(keys),
                                resources={**resources, "vt_apm": apm_resource_from_env()})
        assert result.success and intake.of_type("transaction")
        assert intake.authorizations and set(intake.authorizations) == {f"Bearer {APM_TOKEN}"}
    instance.dispose()

    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored), "the event log must have been written to disk"
    for path in stored:
        assert APM_TOKEN.encode() not in path.read_bytes(), f"APM token found in {path}"
    out, err = capfd.readouterr()
    assert APM_TOKEN not in out + err + caplog.text
    assert APM_TOKEN not in repr(result.dagster_run.run_config)
    assert APM_TOKEN not in json.dumps(intake.events)


def two_step_job(intake_url: str, vt_url: str, data_dir: str) -> dg.JobDefinition:
    """Download + summarize in one forkserver process per step, as the code location runs them."""
    forkserver = dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": ["dagster", "vt_dagster"]}}}
    )
    defs = dg.Definitions(
        assets=download_and_summarize(),
        jobs=[dg.define_asset_job("apm_two_steps", executor_def=forkserver)],
        resources={"vt_feeds": VTFeedsResource(api_key=VT_KEY, api_url=vt_url),
                   "vt_storage": VTStorageResource(root=data_dir),
                   "vt_summarizer": VTSummarizerResource(workers=1),
                   "vt_apm": VTApmResource(server_url=intake_url, cloud_provider="none", central_config=False,
                                           metrics_interval="0ms")},
    )
    return defs.resolve_job_def("apm_two_steps")


def test_each_step_process_flushes_its_events_before_it_exits(vt, tmp_path) -> None:
    """A forked step process ends with `os._exit`, skipping `atexit`: only the teardown gets events out.

    The job is rebuilt in each step process from arguments, not the environment: the forkserver
    may have started before this test and does not see its variables.
    """
    keys = recent_minutes(2, start_ago=230)
    with ApmIntake() as intake, dg.instance_for_test() as instance:
        job = dg.build_reconstructable_job(
            __name__, two_step_job.__name__,
            reconstructable_args=(intake.url, vt.base_url, str(tmp_path / "data")),
            reconstructor_working_directory=str(Path(__file__).resolve().parents[1]),
        )
        result = dg.execute_job(job, instance=instance, tags=range_tags(keys))
        assert result.success
        step_pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        names = sorted(t["name"] for t in intake.of_type("transaction"))
        processes = {m["process"]["pid"] for m in intake.of_type("metadata")}
    assert names == ["files/raw_batch", "files/summaries"]
    assert len(step_pids) == 2 and step_pids <= processes, "each step process sent its own events"


@pytest.fixture
def es_resources(resources, es_url: str, index_prefix: str, monkeypatch) -> dict[str, Any]:
    monkeypatch.setenv("VT_FEEDS", "files")
    elasticsearch = VTElasticsearchResource(url=es_url, index_prefix=index_prefix)
    setup = setup_elasticsearch_job.execute_in_process(resources={"vt_elasticsearch": elasticsearch},
                                                       instance=dg.DagsterInstance.ephemeral())
    assert setup.success
    return {**resources, "vt_elasticsearch": elasticsearch}


def index_stages() -> list[dg.AssetsDefinition]:
    return [build_summary_index_asset(FILES, with_apm=True), build_report_cache_asset(FILES, with_apm=True)]


def test_bulk_calls_are_spans_of_the_index_transactions(es_resources, index_prefix: str) -> None:
    keys = recent_minutes(2, start_ago=240)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(download_and_summarize(with_apm=False), resources=es_resources, instance=instance,
                          tags=range_tags(keys)).success
    with ApmIntake() as intake:
        result = dg.materialize(download_and_summarize(with_apm=False) + index_stages(), instance=instance,
                                resources={**es_resources, "vt_apm": apm_for(intake)}, tags=range_tags(keys),
                                selection=[asset.key for asset in index_stages()])
        assert result.success
        transactions = {t["name"]: t for t in intake.of_type("transaction")}
        spans = intake.of_type("span")

    partition = f"{keys[0]}..{keys[1]}"
    assert sorted(transactions) == ["files/report_cache", "files/summary_index"]
    for stage, alias in (("summary_index", f"{index_prefix}-summaries-files"),
                         ("report_cache", f"{index_prefix}-reports-files")):
        transaction = transactions[f"files/{stage}"]
        indexed = sum(e.materialization.metadata["indexed"].value for e in result.get_asset_materialization_events()
                      if e.asset_key.path[-1] == stage)
        assert transaction["outcome"] == "success" and labels(transaction)["indexed"] == indexed > 0
        assert labels(transaction)["partition"] == partition
        bulk = [s for s in spans if s["transaction_id"] == transaction["id"] and s["name"] == f"ES bulk {alias}"]
        assert span_count(bulk) == 2, "one span per bulk run of a batch"
        assert {(s["type"], s["subtype"], s["action"]) for s in bulk} == {("db", "elasticsearch", "bulk")}
        assert all(s["context"]["destination"]["service"]["resource"] == "elasticsearch" for s in bulk)
        assert {labels(s)["batch"] for s in bulk} <= set(keys)


def test_the_agents_own_elasticsearch_instrumentation_would_not_double_the_bulk_spans(
    es_resources, index_prefix: str
) -> None:
    keys = recent_minutes(1, start_ago=250)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(download_and_summarize(with_apm=False), resources=es_resources, instance=instance,
                          tags=range_tags(keys)).success
    with ApmIntake() as intake:
        elasticapm.instrument()
        try:
            assert dg.materialize(index_stages()[:1], resources={**es_resources, "vt_apm": apm_for(intake)},
                                  instance=instance, tags=range_tags(keys)).success
        finally:
            elasticapm.uninstrument()
        spans = intake.of_type("span")
    names = [s["name"] for s in spans if s.get("subtype") == "elasticsearch"]
    assert names.count(f"ES bulk {index_prefix}-summaries-files") == 1
    assert not [name for name in names if "_bulk" in name], "the instrumented _bulk request is dropped inside ours"
    assert [name for name in names if name.startswith("ES ") and "_bulk" not in name and "bulk" not in name], \
        "other Elasticsearch calls are instrumented (the instrumentation was on)"
