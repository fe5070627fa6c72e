"""Elastic APM for the pipeline: one transaction per stage run, spans inside it, errors with labels.

The real `elastic-apm` agent, configured from its usual environment variables through the
`vt_apm` resource. No `ELASTIC_APM_SERVER_URL` means off: no agent client, no thread, no socket.

- `VTApmResource.stage_transaction(feed, stage, partition_keys)` wraps one asset run (one
  partition or a range): name `files/raw_batch 202611230700..202611230759`, type
  `dagster.asset`, labels `feed`, `stage`, `partition`, `partitions`; result and outcome
  `success` or `failure`; an exception is captured (with those labels) and re-raised.
- The pure modules (`vt_client`, `storage`, `elastic`) open their own spans with
  `elasticapm.capture_span`, which does nothing without an active transaction: cheap when off.
- The agent is process-global: one client per process, created on first use and closed (its
  queue sent) when Dagster tears the resource down at the end of the step, because a step
  process exits without running `atexit` handlers.
- The agent's automatic instrumentation (`elasticapm.instrument()`) stays off: it would patch
  `requests` (putting signed download URLs into span context) and `sqlite3` (Dagster's own
  storage). Spans are opened explicitly where the work is.
"""

import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import dagster as dg
import elasticapm
from pydantic import Field

from vt_dagster import __version__

SERVICE_NAME = "vt-dagster"
TRANSACTION_TYPE = "dagster.asset"
RESOURCE_KEY = "vt_apm"

# Resource field -> the agent's own variable; the agent also reads these itself (and lets them
# win over what it is given), so the resource shows in the UI what the agent will use.
SETTINGS_FROM_ENV = {
    "server_url": "ELASTIC_APM_SERVER_URL",
    "service_name": "ELASTIC_APM_SERVICE_NAME",
    "service_version": "ELASTIC_APM_SERVICE_VERSION",
    "environment": "ELASTIC_APM_ENVIRONMENT",
    "server_ca_cert_file": "ELASTIC_APM_SERVER_CA_CERT_FILE",
    "verify_server_cert": "ELASTIC_APM_VERIFY_SERVER_CERT",
    "cloud_provider": "ELASTIC_APM_CLOUD_PROVIDER",
    "central_config": "ELASTIC_APM_CENTRAL_CONFIG",
    "metrics_interval": "ELASTIC_APM_METRICS_INTERVAL",
}
SECRETS_FROM_ENV = {"secret_token": "ELASTIC_APM_SECRET_TOKEN", "api_key": "ELASTIC_APM_API_KEY"}
BOOLEAN_SETTINGS = {"verify_server_cert", "central_config"}

T = TypeVar("T")


class VTApmResource(dg.ConfigurableResource):
    """Elastic APM (`ELASTIC_APM_SERVER_URL` and the agent's usual variables); no server URL = off.

    The token and API key are `EnvVar`s (see `apm_resource_from_env`): Dagster shows the
    variables' names, never their values.
    """

    server_url: str | None = Field(default=None, description="APM Server URL (ELASTIC_APM_SERVER_URL); unset: off")
    service_name: str = Field(default=SERVICE_NAME, description="Service name in APM (ELASTIC_APM_SERVICE_NAME)")
    service_version: str = Field(default=__version__, description="ELASTIC_APM_SERVICE_VERSION")
    environment: str | None = Field(default=None, description="Environment in APM (ELASTIC_APM_ENVIRONMENT)")
    secret_token: str | None = Field(default=None, description="From ELASTIC_APM_SECRET_TOKEN; never shown")
    api_key: str | None = Field(default=None, description="From ELASTIC_APM_API_KEY; never shown")
    server_ca_cert_file: str | None = Field(default=None, description="CA bundle (ELASTIC_APM_SERVER_CA_CERT_FILE)")
    verify_server_cert: bool = Field(default=True, description="ELASTIC_APM_VERIFY_SERVER_CERT")
    cloud_provider: str = Field(default="auto", description="Cloud metadata to look up: auto, aws, gcp, azure, none")
    central_config: bool = Field(default=True, description="Poll the APM Server for central agent configuration")
    metrics_interval: str = Field(default="30s", description="How often the agent sends its metrics; 0ms = never")

    @property
    def enabled(self) -> bool:
        return bool(self.server_url and self.server_url.strip())

    def agent_config(self) -> dict[str, Any]:
        """The agent's settings. Local variables are never collected: a frame's can hold an API key."""
        config = {
            "server_url": (self.server_url or "").strip(),
            "service_name": self.service_name,
            "service_version": self.service_version,
            "environment": self.environment,
            "secret_token": self.secret_token,
            "api_key": self.api_key,
            "server_ca_cert_file": self.server_ca_cert_file,
            "verify_server_cert": self.verify_server_cert,
            "cloud_provider": self.cloud_provider,
            "central_config": self.central_config,
            "metrics_interval": self.metrics_interval,
            "collect_local_variables": "off",
        }
        return {key: value for key, value in config.items() if value is not None}

    @contextlib.contextmanager
    def stage_transaction(self, feed: str, stage: str, partition_keys: Sequence[str]) -> Iterator["StageTransaction"]:
        """One transaction around one run of `<feed>/<stage>`; does nothing at all when off."""
        if not self.enabled:
            yield StageTransaction(None)
            return
        client = process_agent(self.agent_config())
        labels = stage_labels(feed, stage, partition_keys)
        transaction = client.begin_transaction(TRANSACTION_TYPE)
        if transaction is not None:
            transaction.label(**labels)
        outcome = "failure"
        try:
            yield StageTransaction(transaction)
            outcome = "success"
        except Exception:
            client.capture_exception(handled=False)
            raise
        finally:
            elasticapm.set_transaction_outcome(outcome)
            client.end_transaction(transaction_name(feed, stage), outcome)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Send what the agent still holds before the step process exits (it skips `atexit`)."""
        if self.enabled:
            seconds = close_process_agent()
            if seconds is not None:
                context.log.debug(f"APM: agent flushed and closed in {seconds:.3f}s")


class StageTransaction:
    """The open stage transaction; `label` adds figures known only at the end of the run."""

    def __init__(self, transaction: Any) -> None:
        self._transaction = transaction

    def label(self, **labels: str | int | float | bool) -> None:
        if self._transaction is not None:
            self._transaction.label(**labels)


def stage_labels(feed: str, stage: str, partition_keys: Sequence[str]) -> dict[str, str | int]:
    keys = sorted(partition_keys)
    partition = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}" if keys else ""
    return {"feed": feed, "stage": stage, "partition": partition, "partitions": len(keys)}


def transaction_name(feed: str, stage: str) -> str:
    """`<feed>/<stage>`: APM groups transactions by name, so the partition (one new name a
    minute) is a label, not part of the name."""
    return f"{feed}/{stage}"


def span(
    name: str, span_type: str = "app", subtype: str | None = None, labels: Mapping[str, Any] | None = None,
) -> elasticapm.capture_span:
    """A span of the current stage transaction; a no-op when APM is off (no transaction)."""
    return elasticapm.capture_span(name, span_type=span_type, span_subtype=subtype, labels=dict(labels or {}))


def record_finished_span(
    name: str, seconds: float, span_type: str = "app", subtype: str | None = None,
    labels: Mapping[str, Any] | None = None,
) -> None:
    """A span for work another process measured: it ends now and lasts `seconds`."""
    with elasticapm.capture_span(
        name, span_type=span_type, span_subtype=subtype, labels=dict(labels or {}),
        start=time.time() - seconds, duration=max(seconds, 1e-6), sync=False,
    ):
        pass


# --- the process's one agent ---------------------------------------------------------------

_agent_lock = threading.Lock()
_agent: elasticapm.Client | None = None
_agent_settings: dict[str, Any] | None = None


def process_agent(config: Mapping[str, Any]) -> elasticapm.Client:
    """The process's agent client: created on first use, reused, replaced if the settings change."""
    global _agent, _agent_settings
    with _agent_lock:
        if _agent is not None and _agent_settings != dict(config):
            _close_within(_agent, CLOSE_BUDGET_S)
            _agent = None
        if _agent is None:
            _agent = elasticapm.Client(**config)
            _agent_settings = dict(config)
        return _agent


CLOSE_BUDGET_S = 2.0
"""The longest closing the agent may hold up a step's end (or a stop): an APM server that does
not answer would keep it waiting for the agent's own flush time (10 s) after its timeouts."""


def close_process_agent(budget_s: float = CLOSE_BUDGET_S) -> float | None:
    """Send the queued events and stop the agent's threads, waiting at most `budget_s`: the
    events still unsent then are dropped (the agent's threads are daemons and end with the
    process). The seconds it took (None: no agent)."""
    global _agent, _agent_settings
    with _agent_lock:
        agent, _agent, _agent_settings = _agent, None, None
    if agent is None:
        return None
    started = time.monotonic()
    _close_within(agent, budget_s)
    return time.monotonic() - started


def _close_within(agent: elasticapm.Client, budget_s: float) -> None:
    closing = threading.Thread(target=agent.close, name="vt-apm-close", daemon=True)
    closing.start()
    closing.join(budget_s)


def apm_resource_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Non-secret resource fields from the agent's variables; off when `ELASTIC_APM_ENABLED=false`."""
    settings: dict[str, Any] = {}
    for field, variable in SETTINGS_FROM_ENV.items():
        value = environ.get(variable, "").strip()
        if value:
            settings[field] = value.lower() != "false" if field in BOOLEAN_SETTINGS else value
    if environ.get("ELASTIC_APM_ENABLED", "").strip().lower() == "false":
        settings.pop("server_url", None)
    return settings


def optional_apm(with_apm: bool) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate an asset function that takes `vt_apm`: kept as is `with_apm`, else APM off.

    Dagster fails a run for any resource an asset names and nobody provides. The code location
    builds its assets `with_apm` and registers `vt_apm`; the same factories called by scripts
    and tests that provide no `vt_apm` get the function without that parameter, given an off
    resource instead.
    """

    def decorate(compute: Callable[..., T]) -> Callable[..., T]:
        if with_apm:
            return compute
        signature = inspect.signature(compute)

        @functools.wraps(compute)
        def without_apm(*args: Any, **kwargs: Any) -> T:
            return compute(*args, **{RESOURCE_KEY: VTApmResource()}, **kwargs)

        without_apm.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for name, p in signature.parameters.items() if name != RESOURCE_KEY]
        )
        without_apm.__annotations__ = {k: v for k, v in compute.__annotations__.items() if k != RESOURCE_KEY}
        return without_apm

    return decorate
