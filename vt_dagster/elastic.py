"""Elasticsearch for vt_dagster: settings, names, setup, bulk indexing, counts and lookups.

Free of Dagster so the assets, the sensor, the CLI and the tests share one implementation.
Every function that talks to Elasticsearch turns transport failures into one-line errors:
`ElasticsearchUnavailable` (nothing answers at the URL) and `ElasticsearchRequestError`
(the cluster refused a request). Per-document bulk failures are counted, never raised: the
caller decides what a failed document means.

Two index families, each with one write alias per feed:

- summaries (`<prefix>-summaries-<feed>`): one flat summary per VT object and batch, `_id` =
  `summary_doc_id(batch, vt_id)`, so re-indexing a batch overwrites instead of duplicating.
- reports (`<prefix>-reports-<feed>`, or `ES_REPORT_ALIAS_<FEED>`): the full VT object, `_id` =
  `report_doc_id(vt_id)` (Assemblyline's convention), written with external versioning
  (version = the batch minute) so an older batch never overwrites a newer report in an index.
  After a rollover an object can live in several indices of the alias: lookups collapse on the
  VT id and keep the copy with the highest `vt.batch_time` (= the version), the newest report.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import elasticapm
import msgspec
import urllib3
from elastic_transport import NodeConfig, Urllib3HttpNode
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, NotFoundError
from elasticsearch import ConnectionError as TransportConnectionError
from elasticsearch.helpers import streaming_bulk

from vt_dagster.feeds import FEEDS, get_feed, parse_minute_key
from vt_dagster.interrupts import raise_if_stopped, stop_on_interrupt
# Re-exported for the callers that print search hits as they always did (the demo).
from vt_dagster.search_output import summaries_table as summaries_table
# Re-exported: the one error for a raw batch that cannot be read to its end (missing, corrupt,
# truncated bz2), whichever stage reads it.
from vt_dagster.batch_lines import BatchReadError as BatchReadError
from vt_dagster.batch_lines import DEFAULT_MAX_LINE_BYTES, OversizedLine, iter_batch_lines, iter_lines
from vt_dagster.summaries import results_in_order

DEFAULT_URL = "http://127.0.0.1:9200"
DEFAULT_PREFIX = "vt"
DEFAULT_REQUEST_TIMEOUT_S = 30.0
# Connecting (TCP and TLS handshake) takes milliseconds to any live node: a host that does not
# answer fails in CONNECT_TIMEOUT_S per attempt, TRANSPORT_RETRIES + 1 attempts in all.
CONNECT_TIMEOUT_S = 2.0
TRANSPORT_RETRIES = 2
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "index_templates"

# Bulk requests: ~10 MiB is Elastic's usual sweet spot; VT file reports can be 100s of kB each.
DEFAULT_CHUNK_SIZE = 500
DEFAULT_MAX_CHUNK_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_RETRIES = 5
DEFAULT_INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
RETRY_ON_STATUS = (429, 503)
# Failures beyond this many are counted but their reasons are not kept.
MAX_ERROR_MESSAGES = 20

# A terms aggregation returns at most `search.max_buckets` (65,536 by default) buckets.
MAX_BATCHES_PER_REQUEST = 60_000
# Lookup keys per search: one request per feed up to this many values.
LOOKUP_CHUNK = 1000

SetupStatus = Literal["created", "present", "updated", "skipped"]
_HEX = frozenset("0123456789abcdefABCDEF")
# Characters Elasticsearch refuses in index and alias names.
_BAD_NAME_CHARS = re.compile(r'[\\/*?"<>|,# :A-Z]')


# --- errors -----------------------------------------------------------------------------------

class ElasticsearchError(RuntimeError):
    """Base of the one-line errors this module raises."""


class ElasticsearchUnavailable(ElasticsearchError):
    """Nothing answers at the configured URL (refused, unresolvable, timed out)."""


class ElasticsearchRequestError(ElasticsearchError):
    """The cluster answered but refused a request (auth, bad query, conflicting setup...)."""


class InvalidQueryError(ElasticsearchRequestError):
    """A search query Elasticsearch cannot parse: the message says where, the user fixes it."""


class TemplateFileError(ValueError):
    """An index template or ILM policy file is missing or is not the JSON we expect."""


# --- settings ---------------------------------------------------------------------------------

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
            f"index_prefix={self.index_prefix!r}, report_aliases={dict(self.report_aliases)!r})"
        )

    __str__ = __repr__


def settings_from_env(environ: Mapping[str, str] | None = None) -> EsSettings:
    """Settings from `ES_URL`, `ES_API_KEY` or `ES_USERNAME`/`ES_PASSWORD`, `ES_CA_CERTS`,
    `ES_INDEX_PREFIX` and `ES_REPORT_ALIAS_<FEED>`; ValueError (without secrets) when they clash.

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
                      report_aliases=overrides)


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


# --- names and ids ----------------------------------------------------------------------------

def check_name(name: str, what: str = "index name") -> str:
    """`name` if Elasticsearch accepts it as an index/alias name (part), else ValueError."""
    if not name or name.startswith(("-", "_", "+")) or _BAD_NAME_CHARS.search(name):
        raise ValueError(
            f"{what} {name!r} is not a valid Elasticsearch name: lower case, no spaces or "
            "any of \\ / * ? \" < > | , # :, not starting with - _ +"
        )
    return name


def family_name(prefix: str, family: str) -> str:
    """Name of a family's index template and ILM policy: `<prefix>-summaries`, `<prefix>-reports`."""
    return f"{prefix}-{family}"


def summary_alias(prefix: str, feed: str) -> str:
    """`<prefix>-summaries-<feed>`: the write alias of a feed's summaries."""
    return f"{prefix}-summaries-{get_feed(feed).name}"


def report_alias(prefix: str, feed: str, overrides: Mapping[str, str] | None = None) -> str:
    """`<prefix>-reports-<feed>`, or the configured override (an Assemblyline alias)."""
    name = get_feed(feed).name
    return (overrides or {}).get(name) or f"{prefix}-reports-{name}"


def bootstrap_index(alias: str) -> str:
    """First index behind a write alias; rollover names the next ones `-000002`, ..."""
    return f"{alias}-000001"


def summary_doc_id(batch: str, vt_id: str) -> str:
    """`_id` of a summary: sha256 hex of the UTF-8 text `f"{batch}:{vt_id}"`.

    Example: batch `202401011200`, id `abc` -> sha256(b"202401011200:abc"). Logstash computes
    the same with its fingerprint filter (SHA256, no key) over "%{[vt.batch]}:%{[vt.id]}".
    """
    return hashlib.sha256(f"{batch}:{vt_id}".encode("utf-8")).hexdigest()


def report_doc_id(vt_id: str) -> str:
    """`_id` of a report: the id lowercased when it is 64 hex characters, else sha256(id) hex.

    Files and URLs (whose VT ids are sha256 values) keep their id; domains, IPs and file
    behaviours are hashed. This is the convention Assemblyline's VirusTotal service uses.
    """
    if len(vt_id) == 64 and _is_hex(vt_id):
        return vt_id.lower()
    return hashlib.sha256(vt_id.encode("utf-8")).hexdigest()


def url_id(url: str) -> str:
    """VT's id of a URL: the sha256 hex of the URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def batch_version(batch: str) -> int:
    """External version of the reports of `batch`: minutes since the epoch of its start."""
    return int(parse_minute_key(batch).timestamp()) // 60


def batch_time(batch: str) -> str:
    """ISO 8601 start of a batch minute (`vt.batch_time` of reports)."""
    return parse_minute_key(batch).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_hex(text: str) -> bool:
    return all(char in _HEX for char in text)


# --- error translation ------------------------------------------------------------------------

def cluster_url(client: Elasticsearch) -> str:
    """The URL the client talks to (no credentials: auth travels in headers)."""
    nodes = client.transport.node_pool.all()
    return nodes[0].base_url if nodes else "<no node configured>"


@contextmanager
def _talking_to(client: Elasticsearch, what: str) -> Iterator[None]:
    """Turn transport failures into this module's one-line errors."""
    try:
        yield
    except (TransportConnectionError, ConnectionTimeout) as exc:
        raise ElasticsearchUnavailable(
            f"Elasticsearch at {cluster_url(client)} is unreachable ({_connection_reason(exc)}) "
            f"while trying to {what}: start it or set ES_URL"
        ) from None
    except ApiError as exc:
        raise ElasticsearchRequestError(
            f"Elasticsearch at {cluster_url(client)} refused to {what}: {describe_api_error(exc)}"
        ) from None


def _connection_reason(exc: Exception) -> str:
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^)\]]+)", text)
    if errno:
        return errno.group(1).strip().rstrip("'\"")
    return _one_line(text, 160)


def describe_api_error(exc: ApiError) -> str:
    """`<status> <type>: <reason>` of an Elasticsearch error answer, on one line."""
    return f"{exc.meta.status} {_error_text(exc.body if isinstance(exc.body, dict) else {}, exc.message)}"


def _error_text(body: Mapping[str, Any], fallback: str) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return _cause_text(error)
    return _one_line(error if isinstance(error, str) else fallback)


def _cause_text(error: Mapping[str, Any]) -> str:
    """`type: reason`, followed by the innermost cause when it says more."""
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    while isinstance(cause, dict) and isinstance(cause.get("caused_by"), dict):
        cause = cause["caused_by"]
    if isinstance(cause, dict) and cause.get("reason"):
        text += f" (caused by {cause.get('type')}: {cause['reason']})"
    return _one_line(text)


def _one_line(value: Any, limit: int = 400) -> str:
    return " ".join(str(value).split())[:limit]


# --- setup ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexFamily:
    """Summaries or reports: their template and ILM policy files."""

    name: str
    template_file: str
    policy_file: str


SUMMARIES = IndexFamily("summaries", "vt_summaries.template.json", "vt_summaries.ilm_policy.json")
REPORTS = IndexFamily("reports", "vt_reports.template.json", "vt_reports.ilm_policy.json")
FAMILIES = (SUMMARIES, REPORTS)
HASH_KEY = "content_sha256"
ILM_PROBE_POLICY = "vt-dagster-ilm-probe"


@dataclass(frozen=True)
class SetupAction:
    """One thing setup looked at: what (`kind`, `name`), what it did (`status`) and why."""

    kind: str
    name: str
    status: SetupStatus
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status:<8} {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


def load_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, with a one-line error naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TemplateFileError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateFileError(f"{path} must hold a JSON object")
    return data


def family_template(raw: Mapping[str, Any], *, prefix: str, family: str, source: str) -> dict[str, Any]:
    """The family's index template: the file's body with `index_patterns` = `<prefix>-<family>-*`."""
    if not isinstance(raw.get("template"), dict):
        raise TemplateFileError(f"{source} has no 'template' object: not a composable index template")
    body = copy.deepcopy(dict(raw))
    body["index_patterns"] = [f"{prefix}-{family}-*"]
    body.setdefault("_meta", {})["source_file"] = source
    return _with_content_hash(body, body["_meta"])


def alias_template(family_body: Mapping[str, Any], *, alias: str, policy: str | None) -> dict[str, Any]:
    """A template for one alias's indices (`<alias>-*`), one priority above the family's.

    ILM's rollover needs `index.lifecycle.rollover_alias` on every generation of an index,
    and a rollover takes settings from templates only, so each alias needs its own template.
    It is also how an overridden report alias outside `<prefix>-reports-*` gets the mapping.
    """
    body = copy.deepcopy(dict(family_body))
    body["index_patterns"] = [f"{alias}-*"]
    body["priority"] = int(body.get("priority", 0)) + 1
    meta = body.setdefault("_meta", {})
    meta.pop(HASH_KEY, None)
    meta["alias"] = alias
    if policy:
        settings = body["template"].setdefault("settings", {})
        _set_lifecycle(settings, "name", policy)
        _set_lifecycle(settings, "rollover_alias", alias)
    return _with_content_hash(body, meta)


def _set_lifecycle(settings: dict[str, Any], key: str, value: str) -> None:
    index = settings.get("index")
    if isinstance(index, dict):
        index.setdefault("lifecycle", {})[key] = value
    else:
        settings[f"index.lifecycle.{key}"] = value


def ilm_policy_body(raw: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The policy file's `{"policy": {...}}` with its `_meta` naming the file and a content hash."""
    policy = raw.get("policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("phases"), dict):
        raise TemplateFileError(f"{source} must hold {{\"policy\": {{\"phases\": ...}}}}")
    body = copy.deepcopy(dict(raw))
    meta = body["policy"].setdefault("_meta", {})
    meta["source_file"] = source
    _with_content_hash(body, meta)
    return body


def _with_content_hash(body: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Stamp `meta` with a hash of `body` so setup can tell an outdated copy without diffing
    Elasticsearch's normalised form of it."""
    meta.pop(HASH_KEY, None)
    meta[HASH_KEY] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return body


def ilm_availability(client: Elasticsearch) -> tuple[bool, str]:
    """(ILM usable, why not), from asking for a policy that need not exist.

    With ILM the answer is the policy or a 404 `resource_not_found_exception`; clusters
    without the ILM plugin have no handler for the path (400, or 404/405 elsewhere). A policy
    path is asked rather than `_ilm/status`, whose 405 here would make the client mark the
    node dead for a second.
    """
    try:
        client.ilm.get_lifecycle(name=ILM_PROBE_POLICY)
    except ApiError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        if isinstance(error, dict) and error.get("type") == "resource_not_found_exception":
            return True, ""
        if exc.meta.status in (400, 404, 405, 410, 501):
            return False, f"GET _ilm/policy answered {exc.meta.status}: {_error_text(body, exc.message)}"
        raise
    return True, ""


def setup_elasticsearch(
    client: Elasticsearch,
    feeds: Iterable[str],
    *,
    prefix: str = DEFAULT_PREFIX,
    update: bool = False,
    templates_dir: Path = TEMPLATES_DIR,
    report_aliases: Mapping[str, str] | None = None,
) -> list[SetupAction]:
    """Create what is missing (ILM policies, index templates, bootstrap index + write alias per
    feed and family) and report each item; with `update`, rewrite policies and templates whose
    content differs from the files. Never replaces an existing alias or index.
    """
    check_name(prefix, "index prefix")
    feed_names = _feed_names(feeds)
    templates_dir = Path(templates_dir)
    with _talking_to(client, "check the cluster"):
        client.cluster.health()
        ilm, why_not = ilm_availability(client)
    actions: list[SetupAction] = []
    if not ilm:
        actions.append(SetupAction(
            "ilm", "-", "skipped",
            f"ILM is not available on this cluster ({why_not}): indices will not roll over automatically",
        ))
    for family in FAMILIES:
        actions += _setup_family(client, family, feed_names, prefix=prefix, update=update, ilm=ilm,
                                 templates_dir=templates_dir, report_aliases=report_aliases or {})
    return actions


def _setup_family(
    client: Elasticsearch,
    family: IndexFamily,
    feeds: list[str],
    *,
    prefix: str,
    update: bool,
    ilm: bool,
    templates_dir: Path,
    report_aliases: Mapping[str, str],
) -> list[SetupAction]:
    name = family_name(prefix, family.name)
    actions: list[SetupAction] = []
    if ilm:
        policy = ilm_policy_body(load_json_file(templates_dir / family.policy_file), source=family.policy_file)
        actions.append(_ensure_policy(client, name, policy, update))
    template = family_template(load_json_file(templates_dir / family.template_file),
                               prefix=prefix, family=family.name, source=family.template_file)
    actions.append(_ensure_template(client, name, template, update))
    for feed in feeds:
        alias = (report_alias(prefix, feed, report_aliases) if family is REPORTS
                 else summary_alias(prefix, feed))
        check_name(alias, "alias")
        covered = alias.startswith(f"{name}-")
        if ilm or not covered:
            body = alias_template(template, alias=alias, policy=name if ilm else None)
            actions.append(_ensure_alias_template(client, alias, body, update, covered))
        actions.append(_ensure_write_alias(client, alias))
    return actions


def _ensure_policy(client: Elasticsearch, name: str, body: dict[str, Any], update: bool) -> SetupAction:
    wanted = body["policy"]["_meta"][HASH_KEY]
    with _talking_to(client, f"read ILM policy {name}"):
        try:
            stored = client.ilm.get_lifecycle(name=name)[name]["policy"]
        except NotFoundError:
            stored = None
    if stored is None:
        with _talking_to(client, f"create ILM policy {name}"):
            client.ilm.put_lifecycle(name=name, body=body)
        return SetupAction("ilm_policy", name, "created")
    return _keep_or_rewrite(
        "ilm_policy", name, stored.get("_meta", {}).get(HASH_KEY) == wanted, update,
        lambda: client.ilm.put_lifecycle(name=name, body=body), client,
    )


def _stored_template(client: Elasticsearch, name: str) -> dict[str, Any] | None:
    with _talking_to(client, f"read index template {name}"):
        try:
            found = client.indices.get_index_template(name=name)["index_templates"]
        except NotFoundError:
            return None
    return found[0]["index_template"] if found else None


def _ensure_template(client: Elasticsearch, name: str, body: dict[str, Any], update: bool) -> SetupAction:
    stored = _stored_template(client, name)
    if stored is None:
        with _talking_to(client, f"create index template {name}"):
            client.indices.put_index_template(name=name, body=body, create=True)
        return SetupAction("index_template", name, "created", f"patterns {body['index_patterns'][0]}")
    same = stored.get("_meta", {}).get(HASH_KEY) == body["_meta"][HASH_KEY]
    return _keep_or_rewrite("index_template", name, same, update,
                            lambda: client.indices.put_index_template(name=name, body=body), client)


def _ensure_alias_template(
    client: Elasticsearch, alias: str, body: dict[str, Any], update: bool, covered: bool
) -> SetupAction:
    """Per-alias template; an overridden alias that already exists elsewhere is left alone."""
    if not covered and _stored_template(client, alias) is None and _exists(client, alias):
        return SetupAction("index_template", alias, "skipped",
                           f"alias {alias} already exists and is managed elsewhere: no template added")
    return _ensure_template(client, alias, body, update)


def _keep_or_rewrite(kind: str, name: str, same: bool, update: bool, rewrite: Callable[[], object],
                     client: Elasticsearch) -> SetupAction:
    if same:
        return SetupAction(kind, name, "present")
    if not update:
        return SetupAction(kind, name, "present", "differs from the file: run setup with update to apply it")
    with _talking_to(client, f"update {kind} {name}"):
        rewrite()
    return SetupAction(kind, name, "updated")


def _exists(client: Elasticsearch, name: str) -> bool:
    with _talking_to(client, f"check whether {name} exists"):
        return bool(client.indices.exists(index=name))


def _ensure_write_alias(client: Elasticsearch, alias: str) -> SetupAction:
    with _talking_to(client, f"read alias {alias}"):
        try:
            indices = client.indices.get_alias(name=alias).body
        except NotFoundError:
            indices = {}
    if indices:
        return SetupAction("write_alias", alias, "present", _write_index_note(alias, indices))
    if _exists(client, alias):
        raise ElasticsearchRequestError(
            f"Elasticsearch at {cluster_url(client)} holds an index named {alias}, where setup "
            "wants a write alias: reindex it into the alias or delete it, then run setup again"
        )
    index = bootstrap_index(alias)
    with _talking_to(client, f"create index {index} for alias {alias}"):
        if _exists(client, index):
            client.indices.update_aliases(
                actions=[{"add": {"index": index, "alias": alias, "is_write_index": True}}])
            return SetupAction("write_alias", alias, "created", f"alias added to existing index {index}")
        client.indices.create(index=index, aliases={alias: {"is_write_index": True}})
    return SetupAction("write_alias", alias, "created", f"write index {index}")


def _write_index_note(alias: str, indices: Mapping[str, Any]) -> str:
    writers = [name for name, info in indices.items()
               if info.get("aliases", {}).get(alias, {}).get("is_write_index")]
    if writers:
        return f"write index {writers[0]}"
    if len(indices) == 1:
        return f"write index {next(iter(indices))}"
    return f"{len(indices)} indices and no write index: writes to {alias} will fail"


def _feed_names(feeds: Iterable[str]) -> list[str]:
    names: list[str] = []
    for feed in [feeds] if isinstance(feeds, str) else feeds:
        name = get_feed(feed).name
        if name not in names:
            names.append(name)
    return names


# --- bulk indexing ----------------------------------------------------------------------------

@dataclass
class IndexResult:
    """What a bulk run did: documents written, failures (with the first reasons), how long.

    `skipped_older`: reports not written because the index holds a newer batch of the same
    object (not a failure). `duplicates`: lines whose `_id` an earlier line of the same file
    had; they overwrite it, so the alias holds `indexed - duplicates` documents of the file.
    """

    indexed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped_older: int = 0
    duplicates: int = 0



class _Tally:
    """Counts while actions stream out and bulk answers stream back."""

    def __init__(self) -> None:
        self.sent = 0
        self.bad_lines = 0
        self.failed_documents = 0
        self.skipped_older = 0
        self.duplicates = 0
        self.errors: list[str] = []
        self.line_of: dict[str, int] = {}

    def send(self, doc_id: str, line: int) -> None:
        self.sent += 1
        if doc_id in self.line_of:
            self.duplicates += 1
        self.line_of[doc_id] = line

    def reject_line(self, line: int, reason: str) -> None:
        self.bad_lines += 1
        self._note(f"line {line}: {_one_line(reason, 300)}")

    def fail_document(self, info: Mapping[str, Any]) -> None:
        self.failed_documents += 1
        doc_id = str(info.get("_id", "?"))
        where = f"line {self.line_of[doc_id]}" if doc_id in self.line_of else "document"
        error = info.get("error")
        reason = _cause_text(error) if isinstance(error, dict) else _one_line(error)
        self._note(f"{where} (_id {doc_id}): {info.get('status', '?')} {reason}")

    def _note(self, message: str) -> None:
        if len(self.errors) < MAX_ERROR_MESSAGES:
            self.errors.append(message)

    def result(self, started: float) -> IndexResult:
        return IndexResult(
            indexed=self.sent - self.skipped_older - self.failed_documents,
            failed=self.bad_lines + self.failed_documents,
            errors=list(self.errors),
            seconds=round(time.monotonic() - started, 3),
            skipped_older=self.skipped_older,
            duplicates=self.duplicates,
        )


def _run_bulk(
    client: Elasticsearch,
    actions: Iterable[tuple[bytes, bytes]],
    tally: _Tally,
    *,
    what: str,
    alias: str,
    batch: str,
    chunk_size: int,
    max_chunk_bytes: int,
    max_retries: int,
    initial_backoff: float,
    conflicts_are_older: bool = False,
) -> None:
    """Stream `actions` through `streaming_bulk` (retrying 429/503 with backoff) and count.

    Actions come as ready NDJSON lines (action, source): the helper forwards bytes as they
    are, so nothing is parsed or serialised twice. The answer keeps only each item's status,
    error and `_id` (`filter_path`), which is all the tally needs. `require_alias` makes a
    missing alias fail every document with a clear reason instead of Elasticsearch
    auto-creating a concrete index under the alias's name.
    """
    with _talking_to(client, what), _bulk_span(alias, batch) as apm_span:
        _describe_node(apm_span, client)
        for ok, item in streaming_bulk(
            client, actions, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
            expand_action_callback=_prebuilt_action,
            raise_on_error=False, yield_ok=False, max_retries=max_retries,
            initial_backoff=initial_backoff, max_backoff=MAX_BACKOFF_S,
            retry_on_status=RETRY_ON_STATUS, require_alias=True, filter_path=_BULK_ANSWER_FIELDS,
        ):
            if ok:
                continue
            info = next(iter(item.values()))
            if conflicts_are_older and info.get("status") == 409:
                tally.skipped_older += 1
            else:
                tally.fail_document(info)
        _record_bulk_result(apm_span, tally)


# What a bulk answer keeps: per item only what says whether and why it failed.
_BULK_ANSWER_FIELDS = "errors,items.*._id,items.*.status,items.*.error"


def _prebuilt_action(action: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """The helper's `expand_action_callback` for actions that are already NDJSON lines."""
    return action


def _index_action(alias: str, doc_id: str, extra: str = "") -> bytes:
    """The `_bulk` action line indexing `doc_id` into `alias` (both need no JSON escaping:
    names are checked by `check_name`, ids are hex)."""
    return f'{{"index":{{"_index":"{alias}","_id":"{doc_id}"{extra}}}}}'.encode()


def _bulk_span(alias: str, batch: str) -> elasticapm.capture_span:
    """One APM exit span per bulk run of a batch (all its chunks); a no-op without a transaction.

    A leaf: were the agent's own Elasticsearch instrumentation ever switched on, its span per
    `_bulk` request would be dropped inside this one instead of doubling it.
    """
    return elasticapm.capture_span(
        f"ES bulk {alias}", span_type="db", span_subtype="elasticsearch", span_action="bulk",
        labels={"batch": batch}, leaf=True,
    )


def _record_bulk_result(apm_span: Any, tally: _Tally) -> None:
    if apm_span is not None:
        failed = tally.bad_lines + tally.failed_documents
        apm_span.label(documents=tally.sent, failed=failed, skipped_older=tally.skipped_older)
        apm_span.outcome = "failure" if failed else "success"


def _describe_node(apm_span: Any, client: Elasticsearch) -> None:
    """Where the bulk span went (host and port only: credentials travel in headers)."""
    if apm_span is not None:
        node = urlsplit(cluster_url(client))
        apm_span.update_context("db", {"type": "elasticsearch"})
        apm_span.update_context("destination", {"address": node.hostname, "port": node.port})


def run_concurrently(jobs: Sequence[Callable[[], IndexResult]], streams: int) -> Iterator[IndexResult]:
    """Run bulk jobs (one per batch) on `streams` threads; results come in job order.

    One `_bulk` stream leaves a node's write threads idle while the client reads the next
    chunk and waits for the answer: two streams keep a 2-core node busy, as Elastic's tuning
    guide advises. Each job runs in a copy of the caller's context, so its APM span nests in
    the stage's transaction. An error stops the jobs not yet started and is raised.
    """
    if streams <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job()
        return
    with ThreadPoolExecutor(max_workers=min(streams, len(jobs)), thread_name_prefix="vt-bulk") as pool, \
            stop_on_interrupt():  # the streams stop at their next line instead of finishing their batch
        yield from results_in_order([pool.submit(contextvars.copy_context().run, job) for job in jobs])


def index_summary_file(
    client: Elasticsearch,
    path: Path,
    *,
    alias: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    max_retries: int = DEFAULT_MAX_RETRIES,
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
    refresh: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> IndexResult:
    """Index an NDJSON summary file into `alias`, `_id` = summary_doc_id(vt.batch, vt.id).

    Each line is checked (JSON object with `vt.batch` and `vt.id` strings) and then sent as
    its original bytes, not re-serialised. Bad lines (a line longer than `max_line_bytes`
    too, never held whole) and refused documents are counted in `failed` with their line
    numbers; nothing is raised per document. `refresh` makes the documents searchable before
    returning (for counting right away).
    """
    tally = _Tally()
    started = time.monotonic()
    _run_bulk(client, _summary_actions(Path(path), alias, tally, max_line_bytes), tally,
              what=f"index {path} into {alias}", alias=alias, batch=Path(path).stem,
              chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes, max_retries=max_retries,
              initial_backoff=initial_backoff)
    if refresh:
        refresh_alias(client, alias)
    return tally.result(started)


def _summary_actions(path: Path, alias: str, tally: _Tally, max_line_bytes: int) -> Iterator[tuple[bytes, bytes]]:
    with open(path, "rb") as handle:
        for number, line in iter_lines(handle, max_line_bytes):
            raise_if_stopped()
            if isinstance(line, OversizedLine):
                tally.reject_line(number, line.reason)
                continue
            line = line.strip()
            if not line:
                continue
            try:
                doc_id = _summary_line_id(line)
            except ValueError as exc:
                tally.reject_line(number, str(exc))
                continue
            tally.send(doc_id, number)
            yield _index_action(alias, doc_id), line


class _SummaryIds(msgspec.Struct):
    """The members a summary's `_id` is made of: msgspec checks the whole line is JSON but
    builds nothing for the others (json.loads of every summary was a third of the indexer's time)."""

    batch: Any = msgspec.field(name="vt.batch", default=None)
    vt_id: Any = msgspec.field(name="vt.id", default=None)


_decode_summary_ids = msgspec.json.Decoder(_SummaryIds).decode


def _summary_line_id(line: bytes) -> str:
    """The `_id` of a summary line; ValueError saying what is wrong with a line that has none."""
    try:
        ids = _decode_summary_ids(line)
    except msgspec.DecodeError:
        ids = None
    if ids is not None and isinstance(ids.batch, str) and ids.batch and isinstance(ids.vt_id, str) and ids.vt_id:
        return summary_doc_id(ids.batch, ids.vt_id)
    summary = _json_object(line)  # the slow path, for its precise error
    return summary_doc_id(_text_field(summary, "vt.batch"), _text_field(summary, "vt.id"))


def _json_object(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object but {type(value).__name__}")
    return value


def _text_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"no {key!r} string")
    return value


def index_reports(
    client: Elasticsearch,
    raw_batch_path: Path,
    *,
    alias: str,
    feed: str,
    batch: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    max_retries: int = DEFAULT_MAX_RETRIES,
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
    refresh: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> IndexResult:
    """Index the full VT objects of a raw bz2 batch into the report alias `alias`.

    Each object is stored as delivered plus `vt.feed`, `vt.batch`, `vt.batch_time`, with
    `_id` = report_doc_id(id), `version_type=external_gte` and version = batch_version(batch):
    the same batch again rewrites the same documents (idempotent); an older batch arriving
    after a newer one gets 409 from Elasticsearch and is counted in `skipped_older`.
    Lines may be bare objects or `{"data": object}`; bad lines count as failed with their
    number, a line longer than `max_line_bytes` too (it is never held whole). A corrupt or
    truncated bz2 file raises BatchReadError (what was sent stays).
    """
    feed_name = get_feed(feed).name
    version = batch_version(batch)
    extra = {"vt.feed": feed_name, "vt.batch": batch, "vt.batch_time": batch_time(batch)}
    tally = _Tally()
    started = time.monotonic()
    actions = _report_actions(Path(raw_batch_path), alias, extra, version, tally, max_line_bytes)
    _run_bulk(client, actions, tally, what=f"index reports of {raw_batch_path} into {alias}",
              alias=alias, batch=batch, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
              max_retries=max_retries, initial_backoff=initial_backoff, conflicts_are_older=True)
    if refresh:
        refresh_alias(client, alias)
    return tally.result(started)


def _report_actions(
    path: Path, alias: str, extra: dict[str, str], version: int, tally: _Tally, max_line_bytes: int,
) -> Iterator[tuple[bytes, bytes]]:
    extra_members = json.dumps(extra, ensure_ascii=False)[1:-1].encode("utf-8")
    versioning = f',"version":{version},"version_type":"external_gte"'
    for number, line in iter_batch_lines(path, max_line_bytes):
        raise_if_stopped()
        if isinstance(line, OversizedLine):
            tally.reject_line(number, line.reason)
            continue
        line = line.strip()
        if not line:
            continue
        try:
            vt_id = _bare_report_id(line)
            if vt_id is not None:
                source = _append_members(line, extra_members)
            else:  # wrapped in {"data": ...}, or not a VT object: the slow path says which
                obj, wrapped = _vt_object(_json_object(line))
                vt_id = _text_field(obj, "id")
                source = (json.dumps({**obj, **extra}, ensure_ascii=False).encode("utf-8") if wrapped
                          else _append_members(line, extra_members))
        except ValueError as exc:
            tally.reject_line(number, str(exc))
            continue
        doc_id = report_doc_id(vt_id)
        tally.send(doc_id, number)
        yield _index_action(alias, doc_id, versioning), source


class _ReportId(msgspec.Struct):
    """A feed line's `id`, the rest of the (often 100 kB) report validated but not built."""

    id: Any = None


_decode_report_id = msgspec.json.Decoder(_ReportId).decode


def _bare_report_id(line: bytes) -> str | None:
    """The `id` of a bare VT object line, else None (not JSON, wrapped, no usable id)."""
    try:
        vt_id = _decode_report_id(line).id
    except msgspec.DecodeError:
        return None
    return vt_id if isinstance(vt_id, str) and vt_id else None


def _vt_object(value: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(object, whether it came wrapped in {"data": ...})."""
    if "id" not in value and isinstance(value.get("data"), dict):
        return value["data"], True
    return value, False


def _append_members(line: bytes, members: bytes) -> bytes:
    """Add `"k": v` members to a JSON object's text: much cheaper than dumping a 100 kB
    report again. `line` was parsed as a non-empty object, so it ends with `}`."""
    return line[:-1].rstrip() + b"," + members + b"}"


def refresh_alias(client: Elasticsearch, alias: str) -> None:
    """Make what was indexed into `alias` searchable now."""
    with _talking_to(client, f"refresh {alias}"):
        client.indices.refresh(index=alias)


def alias_exists(client: Elasticsearch, alias: str) -> bool:
    with _talking_to(client, f"look for the alias {alias}"):
        return bool(client.indices.exists_alias(name=alias))


# --- counts, lookups, search ------------------------------------------------------------------

def batch_counts(client: Elasticsearch, alias: str, batches: Sequence[str]) -> dict[str, int]:
    """Documents per batch (`vt.batch`) in `alias`, 0 for batches it does not hold.

    One search: a `terms` filter on the batches and a `terms` aggregation sized to them
    (10,080 batches = 7 days of minutes, well under `search.max_buckets` = 65,536). Only
    above MAX_BATCHES_PER_REQUEST batches is the question split into several searches.
    A missing alias counts as empty.
    """
    wanted = sorted(set(batches))
    counts = dict.fromkeys(wanted, 0)
    for start in range(0, len(wanted), MAX_BATCHES_PER_REQUEST):
        chunk = wanted[start:start + MAX_BATCHES_PER_REQUEST]
        with _talking_to(client, f"count batches in {alias}"):
            answer = client.search(
                index=alias, size=0, track_total_hits=False, ignore_unavailable=True,
                allow_no_indices=True, query={"bool": {"filter": [{"terms": {"vt.batch": chunk}}]}},
                aggs={"per_batch": {"terms": {"field": "vt.batch", "size": len(chunk)}}},
            )
        for bucket in answer.get("aggregations", {}).get("per_batch", {}).get("buckets", []):
            counts[bucket["key"]] = bucket["doc_count"]
    return {batch: counts[batch] for batch in batches}


@dataclass(frozen=True)
class LookupKey:
    """Where to find a value: `feed`, and `field` (`_id` or an indexed attribute) = `key`."""

    feed: str
    field: str
    key: str


def lookup_keys(value: str) -> list[LookupKey]:
    """The places a hash, URL, domain, IP or VT id may be found, most likely first.

    md5/sha1: file attributes. 64 hex: a file's sha256 or a URL's VT id. URL: the sha256 of
    the URL as given, and `attributes.url` (VT may canonicalise before hashing). Domains are
    lower-cased; IPv6 addresses are tried compressed and exploded.
    """
    text = value.strip()
    if not text:
        return []
    if _is_hex(text) and len(text) in (32, 40, 64):
        lower = text.lower()
        if len(text) == 32:
            return [LookupKey("files", "attributes.md5", lower)]
        if len(text) == 40:
            return [LookupKey("files", "attributes.sha1", lower)]
        return [LookupKey("files", "_id", lower), LookupKey("urls", "_id", lower)]
    address = _ip_address(text)
    if address is not None:
        forms = dict.fromkeys([text, address.compressed, address.exploded])
        return [LookupKey("ip_addresses", "_id", report_doc_id(form)) for form in forms]
    if "/" in text:
        return [LookupKey("urls", "_id", url_id(text)), LookupKey("urls", "attributes.url", text)]
    if "." in text:
        return [LookupKey("domains", "_id", report_doc_id(text.lower().rstrip(".")))]
    return []


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def lookup(
    client: Elasticsearch,
    values: Iterable[str],
    *,
    feeds: Iterable[str],
    prefix: str = DEFAULT_PREFIX,
    report_aliases: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any] | None]:
    """The newest full report for each value (None when the cache does not hold it).

    One search per feed holds all of that feed's keys: `ids` for sha256/URL/domain/IP ids and
    `terms` on md5/sha1/url attributes. It runs over every index behind the alias, collapses
    on the VT `id` and sorts by `vt.batch_time` descending, so each object comes back once,
    as its newest copy (the one with the highest external version).
    """
    searched = set(_feed_names(feeds))
    wanted = {value: [key for key in lookup_keys(value) if key.feed in searched]
              for value in dict.fromkeys(values)}
    by_feed: dict[str, set[LookupKey]] = {}
    for keys in wanted.values():
        for key in keys:
            by_feed.setdefault(key.feed, set()).add(key)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for feed, keys in by_feed.items():
        alias = report_alias(prefix, feed, report_aliases)
        ordered = sorted(keys, key=lambda k: (k.field, k.key))
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            for hit in _newest_reports(client, alias, ordered[start:start + LOOKUP_CHUNK]):
                for where in _hit_keys(hit):
                    found.setdefault((feed, *where), hit["_source"])
    return {value: next((found[(k.feed, k.field, k.key)] for k in keys
                         if (k.feed, k.field, k.key) in found), None)
            for value, keys in wanted.items()}


def _newest_reports(client: Elasticsearch, alias: str, keys: list[LookupKey]) -> list[dict[str, Any]]:
    fields: dict[str, list[str]] = {}
    for key in keys:
        fields.setdefault(key.field, []).append(key.key)
    should: list[dict[str, Any]] = [
        {"ids": {"values": terms}} if name == "_id" else {"terms": {name: terms}}
        for name, terms in fields.items()
    ]
    with _talking_to(client, f"look up reports in {alias}"):
        answer = client.search(
            index=alias, query={"bool": {"should": should, "minimum_should_match": 1}},
            collapse={"field": "id"}, sort=[{"vt.batch_time": {"order": "desc", "unmapped_type": "date"}}],
            size=min(10_000, len(keys) + 10), version=True, ignore_unavailable=True,
            allow_no_indices=True,
        )
    return answer["hits"]["hits"]


def _hit_keys(hit: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield "_id", hit["_id"]
    attributes = hit.get("_source", {}).get("attributes")
    if not isinstance(attributes, dict):
        return
    for name in ("md5", "sha1"):
        if isinstance(attributes.get(name), str):
            yield f"attributes.{name}", attributes[name].lower()
    if isinstance(attributes.get("url"), str):
        yield "attributes.url", attributes["url"]


def search_summaries(
    client: Elasticsearch, query: str, *, feeds: Iterable[str], prefix: str = DEFAULT_PREFIX,
    size: int = 20,
) -> list[dict[str, Any]]:
    """Summaries matching a Lucene `query_string` (e.g. `vt.yara.rule_names:*Emotet*`) in the
    feeds' summary aliases, newest `@timestamp` first. A query Lucene cannot parse raises
    InvalidQueryError saying where; other refusals ElasticsearchRequestError.
    """
    aliases = ",".join(summary_alias(prefix, feed) for feed in _feed_names(feeds))
    with _talking_to(client, f"search {aliases}"):
        try:
            answer = client.search(
                index=aliases, query={"query_string": {"query": query, "lenient": True}},
                sort=[{"@timestamp": {"order": "desc", "unmapped_type": "date"}},
                      {"vt.batch": {"order": "desc", "unmapped_type": "keyword"}}],
                size=size, ignore_unavailable=True, allow_no_indices=True,
            )
        except ApiError as exc:
            problem = query_syntax_problem(exc.body) if exc.meta.status == 400 else None
            if problem is None:
                raise
            raise InvalidQueryError(f"invalid query: {problem} (query: {_quoted_query(query)})") from None
    return [hit["_source"] for hit in answer["hits"]["hits"]]


_QUERY_POSITION = re.compile(r"\bline \d+, column \d+")
_LEXICAL_STATE = re.compile(r"\s*\(in lexical state \d+\)")
_CANNOT_PARSE = re.compile(r"^Cannot parse '.*?': ", re.DOTALL)
# JavaCC names one unexpected token as ` <KIND> "image "`: `Encountered " <FUZZY_SLOP> "~ "" at`.
_ONE_TOKEN = re.compile(r'^Encountered " (?:<\w+>|"[^"]*") "(.*?) "" at ')


def query_syntax_problem(body: Any) -> str | None:
    """Lucene's words for a query it cannot parse (`Encountered "<EOF>" at line 1, column 14`),
    from Elasticsearch's 400 answer; None when the answer is about something else.

    The innermost cause of a shard failure is the parser's own message; its first line says
    what and where (the rest lists every token it would have accepted).
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None
    for reason in _reasons_innermost_first(error):
        first_line = reason.strip().split("\n", 1)[0]
        if _QUERY_POSITION.search(first_line):
            text = _LEXICAL_STATE.sub("", _CANNOT_PARSE.sub("", first_line))
            text = _ONE_TOKEN.sub(lambda token: f'Encountered "{token.group(1)}" at ', text)
            return _one_line(text).rstrip(" .,")
    return None


def _reasons_innermost_first(error: Mapping[str, Any]) -> Iterator[str]:
    chains = [error, *(failure.get("reason") for failure in error.get("failed_shards") or []
                       if isinstance(failure, Mapping))]
    for cause in chains:
        reasons: list[str] = []
        while isinstance(cause, Mapping):
            if isinstance(cause.get("reason"), str):
                reasons.append(cause["reason"])
            cause = cause.get("caused_by")
        yield from reversed(reasons)


def _quoted_query(query: str, limit: int = 200) -> str:
    text = query.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"

