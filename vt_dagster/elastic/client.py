"""Where Elasticsearch is, how to authenticate (from the environment), and a client that
says within seconds when nothing answers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3
from elastic_transport import NodeConfig, Urllib3HttpNode
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import Elasticsearch

from vt_dagster.elastic.names import DEFAULT_PREFIX, check_name, report_alias, summary_alias
from vt_dagster.feeds import FEEDS

DEFAULT_URL = "http://127.0.0.1:9200"
DEFAULT_REQUEST_TIMEOUT_S = 30.0
# Connecting (TCP and TLS handshake) takes milliseconds to any live node: a host that does not
# answer fails in CONNECT_TIMEOUT_S per attempt, TRANSPORT_RETRIES + 1 attempts in all.
CONNECT_TIMEOUT_S = 2.0
TRANSPORT_RETRIES = 2


@dataclass(frozen=True)
class EsSettings:
    """Where Elasticsearch is and how to authenticate; secrets never appear in repr/str."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    index_prefix: str = DEFAULT_PREFIX
    report_aliases: Mapping[str, str] = field(default_factory=dict)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    index_replicas: int | None = None
    """Replicas per shard in the index templates; None: setup picks 0 or 1 from the cluster."""

    @property
    def auth(self) -> str:
        """How the client authenticates: `api_key`, `basic` or `none`."""
        if self.api_key:
            return "api_key"
        return "basic" if self.username else "none"

    def report_alias(self, feed: str) -> str:
        return report_alias(self.index_prefix, feed, self.report_aliases)

    def summary_alias(self, feed: str) -> str:
        return summary_alias(self.index_prefix, feed)

    def __repr__(self) -> str:
        return (
            f"EsSettings(url={self.url!r}, auth={self.auth!r}, ca_certs={self.ca_certs!r}, "
            f"index_prefix={self.index_prefix!r}, report_aliases={dict(self.report_aliases)!r}, "
            f"index_replicas={self.index_replicas!r})"
        )

    __str__ = __repr__


def settings_from_env(environ: Mapping[str, str] | None = None) -> EsSettings:
    """Settings from `ES_URL`, `ES_API_KEY` or `ES_USERNAME`/`ES_PASSWORD`, `ES_CA_CERTS`,
    `ES_INDEX_PREFIX`, `ES_REPORT_ALIAS_<FEED>` and `ES_INDEX_REPLICAS`; ValueError (without
    secrets) when they clash or are malformed.

    Credentials written into the URL (`https://user:pass@host`) are moved out of it, so the
    URL can be logged.
    """
    env = os.environ if environ is None else environ
    url, url_user, url_password = _split_userinfo(_env(env, "ES_URL") or DEFAULT_URL)
    api_key = _env(env, "ES_API_KEY")
    username = _env(env, "ES_USERNAME") or url_user
    password = _env(env, "ES_PASSWORD") or url_password
    if api_key and username:
        raise ValueError("set either ES_API_KEY or ES_USERNAME/ES_PASSWORD, not both")
    if bool(username) != bool(password):
        raise ValueError("ES_USERNAME and ES_PASSWORD must be set together")
    prefix = _env(env, "ES_INDEX_PREFIX") or DEFAULT_PREFIX
    check_name(prefix, "ES_INDEX_PREFIX")
    overrides: dict[str, str] = {}
    for feed in FEEDS:
        variable = f"ES_REPORT_ALIAS_{feed.upper()}"
        alias = _env(env, variable)
        if alias:
            overrides[feed] = check_name(alias, variable)
    return EsSettings(url=url, api_key=api_key, username=username, password=password,
                      ca_certs=_env(env, "ES_CA_CERTS"), index_prefix=prefix,
                      report_aliases=overrides, index_replicas=parse_index_replicas(_env(env, REPLICAS_VARIABLE)))


REPLICAS_VARIABLE = "ES_INDEX_REPLICAS"
MAX_INDEX_REPLICAS = 8


def parse_index_replicas(text: str | None) -> int | None:
    """`ES_INDEX_REPLICAS` as a number, None when unset; ValueError naming it otherwise."""
    if text is None or not text.strip():
        return None
    if not text.strip().isdigit() or int(text) > MAX_INDEX_REPLICAS:
        raise ValueError(f"{REPLICAS_VARIABLE} must be a whole number from 0 to {MAX_INDEX_REPLICAS}, not {text!r}")
    return int(text)


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without `user:password@`, user, password)."""
    parts = urlsplit(url.rstrip("/"))
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"ES_URL {_without_userinfo(parts)!r} is not a URL like http://host:9200")
    if parts.username is None:
        return url.rstrip("/"), None, None
    user = unquote(parts.username)
    password = unquote(parts.password) if parts.password is not None else None
    return _without_userinfo(parts), user, password


def _without_userinfo(parts: Any) -> str:
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class QuickConnectNode(Urllib3HttpNode):
    """A node connection that gives up connecting after CONNECT_TIMEOUT_S, while an answer may
    still take the whole request timeout.

    elastic-transport has one timeout for both, so a host dropping packets held every call
    for the request timeout (30 s) times each retry before saying it was unreachable.
    """

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.pool.timeout = _connect_quickly(config.request_timeout)

    def perform_request(
        self, method: str, target: str, body: bytes | None = None, headers: Any = None,
        request_timeout: DefaultType | float | None = DEFAULT,
    ) -> Any:
        if request_timeout is not DEFAULT:
            request_timeout = _connect_quickly(request_timeout)  # type: ignore[assignment]
        return super().perform_request(method, target, body, headers, request_timeout)


def _connect_quickly(total: float | None) -> urllib3.Timeout:
    connect = CONNECT_TIMEOUT_S if total is None else min(CONNECT_TIMEOUT_S, total)
    return urllib3.Timeout(connect=connect, read=total)


def make_client(settings: EsSettings) -> Elasticsearch:
    """A client that fails within seconds when nothing answers (QuickConnectNode), and retries
    timeouts and 429/502/503/504 answers twice."""
    auth: dict[str, Any] = {}
    if settings.api_key:
        key = settings.api_key
        auth["api_key"] = tuple(key.split(":", 1)) if ":" in key else key
    elif settings.username:
        auth["basic_auth"] = (settings.username, settings.password or "")
    if settings.ca_certs:
        auth["ca_certs"] = settings.ca_certs
    return Elasticsearch(
        settings.url,
        request_timeout=settings.request_timeout,
        node_class=QuickConnectNode,
        retry_on_timeout=True,
        max_retries=TRANSPORT_RETRIES,
        retry_on_status=(429, 502, 503, 504),
        **auth,
    )
