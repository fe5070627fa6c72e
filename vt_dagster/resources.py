"""Dagster resources, configured from the environment (`EnvVar`), never from run config.

The API key is an `EnvVar`: Dagster stores and shows the variable's name, not its value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from vt_dagster.batch_lines import DEFAULT_MAX_LINE_BYTES, MAX_LINE_BYTES_VARIABLE, parse_max_line_bytes
from vt_dagster.vt_client import DEFAULT_API_URL, FeedsClient, RetryPolicy
from vt_dagster.whitelist import UrlWhitelist, load_url_whitelist, url_whitelist_path_from_env

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from vt_dagster.elastic import EsSettings

DEFAULT_DATA_DIR = "./vt_data"


class VTFeedsResource(dg.ConfigurableResource):
    """The VT feeds API (`VT_API_KEY`, `VT_API_URL`)."""

    api_key: str = Field(description="VT API key with a feeds licence (from VT_API_KEY; never shown)")
    api_url: str = Field(default=DEFAULT_API_URL, description="Base URL of the VT API v3")
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    max_attempts: int = Field(default=6, description="Attempts per request for 429/5xx/network faults")
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    not_available_wait_s: float = 20.0
    not_available_attempts: int = 3
    max_consecutive_missing: int = Field(
        default=3, description="More consecutive 404 minutes than this fail the run (an incident, per VT)"
    )
    download_workers: int = Field(default=4, description="Parallel downloads inside a range run")
    hourly_min_minutes: int = Field(
        default=10, description="Use the hourly package for a whole hour when at least this many minutes are needed"
    )

    def client(self) -> FeedsClient:
        retry = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
            not_available_wait_s=self.not_available_wait_s,
            not_available_attempts=self.not_available_attempts,
        )
        return FeedsClient(
            api_key=self.api_key, api_url=self.api_url, connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s, retry=retry, pool_size=max(self.download_workers, 2),
        )


class VTStorageResource(dg.ConfigurableResource):
    """Root of raw batches and summaries (`VT_DATA_DIR`), and the longest line a stage reads
    from them whole (`VT_MAX_LINE_BYTES`)."""

    root: str = Field(default=DEFAULT_DATA_DIR, description="Root folder of raw batches and summaries")
    max_line_bytes: str = Field(
        default="", description="Longest line read whole, in bytes or e.g. 64MiB (VT_MAX_LINE_BYTES; "
        "empty: 64 MiB); a longer line is skipped and counted as rejected, never held in memory",
    )

    @property
    def path(self) -> Path:
        return Path(self.root).expanduser().resolve()

    def line_limit(self) -> int:
        """The line limit in bytes, read now: a bad value is a `ConfigurationError` naming
        `VT_MAX_LINE_BYTES`, which the stages that read lines fail with."""
        text = self.max_line_bytes.strip()
        return parse_max_line_bytes(text) if text else DEFAULT_MAX_LINE_BYTES


def feeds_resource_from_env() -> VTFeedsResource:
    return VTFeedsResource(
        api_key=dg.EnvVar("VT_API_KEY"),
        api_url=os.environ.get("VT_API_URL", DEFAULT_API_URL),
    )


def storage_resource_from_env() -> VTStorageResource:
    return VTStorageResource(root=os.environ.get("VT_DATA_DIR", DEFAULT_DATA_DIR),
                             max_line_bytes=os.environ.get(MAX_LINE_BYTES_VARIABLE, "").strip())


class VTSummarizerResource(dg.ConfigurableResource):
    """How summaries are made: the URL whitelist (`VT_URL_WHITELIST`) and the worker count."""

    url_whitelist_path: str | None = Field(
        default=None, description="A file of hosts whose URLs are noise (default: the shipped list)"
    )
    workers: int = Field(default=0, description="Processes summarizing a range (0: one per core)")

    @property
    def whitelist_path(self) -> Path | None:
        return Path(self.url_whitelist_path).expanduser() if self.url_whitelist_path else None

    def url_whitelist(self) -> UrlWhitelist:
        """The whitelist in force, read now: a missing or bad file is a `ConfigurationError` naming
        `VT_URL_WHITELIST`, as the summary commands give it."""
        return load_url_whitelist(self.whitelist_path)


def summarizer_resource_from_env() -> VTSummarizerResource:
    path = url_whitelist_path_from_env()
    return VTSummarizerResource(url_whitelist_path=str(path) if path else None)


DEFAULT_BULK_STREAMS = 2
MAX_BULK_STREAMS = 16


class VTElasticsearchResource(dg.ConfigurableResource):
    """The Elasticsearch cluster (`ES_URL`; `ES_API_KEY` or `ES_USERNAME`/`ES_PASSWORD`, `ES_CA_CERTS`).

    Credentials are `EnvVar`s: Dagster shows the variables' names, never their values.
    """

    url: str = Field(default="http://127.0.0.1:9200", description="Elasticsearch URL (no credentials in it)")
    api_key: str | None = Field(default=None, description="API key (from ES_API_KEY)")
    username: str | None = Field(default=None, description="Basic auth user (from ES_USERNAME)")
    password: str | None = Field(default=None, description="Basic auth password (from ES_PASSWORD)")
    ca_certs: str | None = Field(default=None, description="CA bundle for TLS (ES_CA_CERTS)")
    index_prefix: str = Field(default="vt", description="Prefix of every alias, index and template (ES_INDEX_PREFIX)")
    report_aliases: dict[str, str] = Field(
        default_factory=dict, description="Report-cache alias per feed, e.g. an Assemblyline deployment's"
    )
    bulk_streams: int = Field(
        default=DEFAULT_BULK_STREAMS, ge=1, le=MAX_BULK_STREAMS,
        description="Batches indexed at once, one `_bulk` stream each (ES_BULK_STREAMS); 2 keeps a 2-core node busy",
    )
    index_replicas: int | None = Field(
        default=None, ge=0, description="Replicas per shard in the index templates setup puts (ES_INDEX_REPLICAS; "
        "unset: 0 on a single data node, 1 on a cluster)",
    )

    def settings(self) -> "EsSettings":
        from vt_dagster.elastic import EsSettings, check_name

        check_name(self.index_prefix, "ES_INDEX_PREFIX")
        return EsSettings(
            url=self.url.rstrip("/"), api_key=self.api_key, username=self.username, password=self.password,
            ca_certs=self.ca_certs, index_prefix=self.index_prefix, report_aliases=dict(self.report_aliases),
            index_replicas=self.index_replicas,
        )

    def client(self) -> "Elasticsearch":
        from vt_dagster.elastic import make_client

        return make_client(self.settings())


def elasticsearch_resource_from_env() -> VTElasticsearchResource:
    """Non-secret settings read now; each secret only as an `EnvVar` when it is set."""
    from vt_dagster.elastic import settings_from_env

    settings = settings_from_env()
    if settings.username and not os.environ.get("ES_USERNAME", "").strip():
        raise ValueError("ES_URL carries credentials: set ES_USERNAME/ES_PASSWORD (or ES_API_KEY) instead, "
                         "so they stay out of Dagster's run config and UI")
    secrets = {
        field: dg.EnvVar(variable)
        for field, variable in (("api_key", "ES_API_KEY"), ("username", "ES_USERNAME"), ("password", "ES_PASSWORD"))
        if os.environ.get(variable, "").strip()
    }
    return VTElasticsearchResource(
        url=settings.url, ca_certs=settings.ca_certs, index_prefix=settings.index_prefix,
        report_aliases=dict(settings.report_aliases), bulk_streams=_bulk_streams_from_env(),
        index_replicas=settings.index_replicas, **secrets,
    )


def _bulk_streams_from_env() -> int:
    text = os.environ.get("ES_BULK_STREAMS", "").strip()
    if not text:
        return DEFAULT_BULK_STREAMS
    if not text.isdigit() or not 1 <= int(text) <= MAX_BULK_STREAMS:
        raise ValueError(f"ES_BULK_STREAMS must be a whole number from 1 to {MAX_BULK_STREAMS}, not {text!r}")
    return int(text)


if TYPE_CHECKING:
    from vt_dagster.apm import VTApmResource


def apm_resource_from_env() -> VTApmResource:
    """Elastic APM from the agent's variables: settings read now, each secret only as an `EnvVar` when set."""
    from vt_dagster.apm import SECRETS_FROM_ENV, VTApmResource, apm_resource_settings

    secrets = {field: dg.EnvVar(variable) for field, variable in SECRETS_FROM_ENV.items()
               if os.environ.get(variable, "").strip()}
    return VTApmResource(**apm_resource_settings(os.environ), **secrets)
