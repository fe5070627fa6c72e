"""Dagster resources, configured from the environment (`EnvVar`), never from run config.

The API key is an `EnvVar`: Dagster stores and shows the variable's name, not its value.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from vt_dagster.vt_client import DEFAULT_API_URL, FeedsClient, RetryPolicy

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
    """Root of raw batches and summaries (`VT_DATA_DIR`)."""

    root: str = Field(default=DEFAULT_DATA_DIR, description="Root folder of raw batches and summaries")

    @property
    def path(self) -> Path:
        return Path(self.root).expanduser().resolve()


def feeds_resource_from_env() -> VTFeedsResource:
    return VTFeedsResource(
        api_key=dg.EnvVar("VT_API_KEY"),
        api_url=os.environ.get("VT_API_URL", DEFAULT_API_URL),
    )


def storage_resource_from_env() -> VTStorageResource:
    return VTStorageResource(root=os.environ.get("VT_DATA_DIR", DEFAULT_DATA_DIR))


class VTSummarizerResource(dg.ConfigurableResource):
    """How summaries are made: the URL whitelist (`VT_URL_WHITELIST`) and the worker count."""

    url_whitelist_path: str | None = Field(
        default=None, description="A file of hosts whose URLs are noise (default: the shipped list)"
    )
    workers: int = Field(default=0, description="Processes summarizing a range (0: one per core)")

    @property
    def whitelist_path(self) -> Path | None:
        return Path(self.url_whitelist_path).expanduser() if self.url_whitelist_path else None


def summarizer_resource_from_env() -> VTSummarizerResource:
    return VTSummarizerResource(url_whitelist_path=os.environ.get("VT_URL_WHITELIST") or None)
