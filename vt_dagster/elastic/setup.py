"""Setup: ILM policies, index templates and a bootstrap index + write alias per feed and
family, created when missing and rewritten only when asked; when asked, the templates'
mappings also go onto each alias's current write index."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

import vt_dagster
from vt_dagster.elastic.errors import (
    ElasticsearchRequestError, TemplateFileError, cluster_url, describe_api_error, error_text, talking_to,
)
from vt_dagster.elastic.names import (
    DEFAULT_PREFIX, bootstrap_index, check_name, family_name, feed_names, report_alias, summary_alias,
)

# The project's folder (the one holding the vt_dagster package) keeps the template files.
TEMPLATES_DIR = Path(vt_dagster.__file__).resolve().parent.parent / "index_templates"
SetupStatus = Literal["created", "present", "updated", "skipped"]


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


def family_template(raw: Mapping[str, Any], *, prefix: str, family: str, source: str,
                    replicas: int | None = None) -> dict[str, Any]:
    """The family's index template: the file's body with `index_patterns` = `<prefix>-<family>-*`
    and, when given, `replicas` as `index.number_of_replicas` (a setting, not the file's)."""
    if not isinstance(raw.get("template"), dict):
        raise TemplateFileError(f"{source} has no 'template' object: not a composable index template")
    body = copy.deepcopy(dict(raw))
    body["index_patterns"] = [f"{prefix}-{family}-*"]
    if replicas is not None:
        _set_index_setting(body["template"].setdefault("settings", {}), "number_of_replicas", replicas)
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
    _set_index_setting(settings, f"lifecycle.{key}", value)


def _set_index_setting(settings: dict[str, Any], key: str, value: Any) -> None:
    """`index.<key>` in a template's settings, nested or flat as the file writes them."""
    index = settings.get("index")
    if not isinstance(index, dict):
        settings[f"index.{key}"] = value
        return
    *parents, last = key.split(".")
    for part in parents:
        index = index.setdefault(part, {})
    index[last] = value


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
            return False, f"GET _ilm/policy answered {exc.meta.status}: {error_text(body, exc.message)}"
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
    replicas: int | None = None,
) -> list[SetupAction]:
    """Create what is missing (ILM policies, index templates, bootstrap index + write alias per
    feed and family) and report each item; with `update`, rewrite policies and templates whose
    content differs from the files and settings, and put the templates' mappings onto each
    alias's current write index (a `mapping` action per index). Never replaces an existing alias
    or index.

    The templates carry `replicas` (`ES_INDEX_REPLICAS`), else the cluster's own default: 0
    replicas on a single data node (a replica there has nowhere to go and keeps the cluster
    yellow), 1 on a cluster (any one node may fail without losing a document).
    """
    check_name(prefix, "index prefix")
    names = feed_names(feeds)
    templates_dir = Path(templates_dir)
    with talking_to(client, "check the cluster"):
        data_nodes = int(client.cluster.health()["number_of_data_nodes"])
        ilm, why_not = ilm_availability(client)
    replica_plan = ReplicaPlan.choose(replicas, data_nodes)
    actions: list[SetupAction] = []
    if not ilm:
        actions.append(SetupAction(
            "ilm", "-", "skipped",
            f"ILM is not available on this cluster ({why_not}): indices will not roll over automatically",
        ))
    for family in FAMILIES:
        actions += _setup_family(client, family, names, prefix=prefix, update=update, ilm=ilm,
                                 templates_dir=templates_dir, report_aliases=report_aliases or {},
                                 replicas=replica_plan)
    return actions


@dataclass(frozen=True)
class ReplicaPlan:
    """How many replicas the templates get, and why: the setup output says both."""

    replicas: int
    reason: str

    @classmethod
    def choose(cls, configured: int | None, data_nodes: int) -> ReplicaPlan:
        nodes = f"{data_nodes} data node{'s' if data_nodes != 1 else ''}"
        if configured is None:
            return cls(0 if data_nodes <= 1 else 1, f"{nodes}, ES_INDEX_REPLICAS unset")
        reason = f"ES_INDEX_REPLICAS={configured}, {nodes}"
        if configured >= data_nodes:
            reason += f": {configured + 1} copies of a shard need {configured + 1} data nodes, indices stay yellow"
        return cls(configured, reason)

    def __str__(self) -> str:
        return f"replicas from settings: {self.replicas} ({self.reason})"


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
    replicas: ReplicaPlan,
) -> list[SetupAction]:
    name = family_name(prefix, family.name)
    actions: list[SetupAction] = []
    if ilm:
        policy = ilm_policy_body(load_json_file(templates_dir / family.policy_file), source=family.policy_file)
        actions.append(_ensure_policy(client, name, policy, update))
    template = family_template(load_json_file(templates_dir / family.template_file),
                               prefix=prefix, family=family.name, source=family.template_file,
                               replicas=replicas.replicas)
    actions.append(_with_replicas(_ensure_template(client, name, template, update), replicas))
    for feed in feeds:
        alias = (report_alias(prefix, feed, report_aliases) if family is REPORTS
                 else summary_alias(prefix, feed))
        check_name(alias, "alias")
        covered = alias.startswith(f"{name}-")
        managed_elsewhere = False
        if ilm or not covered:
            body = alias_template(template, alias=alias, policy=name if ilm else None)
            action = _ensure_alias_template(client, alias, body, update, covered)
            managed_elsewhere = action.status == "skipped"
            actions.append(_with_replicas(action, replicas))
        actions.append(_ensure_write_alias(client, alias))
        if update and not managed_elsewhere:
            actions.append(_ensure_write_index_mapping(client, alias, template["template"].get("mappings", {})))
    return actions


def _with_replicas(action: SetupAction, replicas: ReplicaPlan) -> SetupAction:
    """A template's action, saying the replicas it carries (not for one setup left alone)."""
    if action.status == "skipped":
        return action
    detail = f"{action.detail}; {replicas}" if action.detail else str(replicas)
    return replace(action, detail=detail)


def _ensure_policy(client: Elasticsearch, name: str, body: dict[str, Any], update: bool) -> SetupAction:
    wanted = body["policy"]["_meta"][HASH_KEY]
    with talking_to(client, f"read ILM policy {name}"):
        try:
            stored = client.ilm.get_lifecycle(name=name)[name]["policy"]
        except NotFoundError:
            stored = None
    if stored is None:
        with talking_to(client, f"create ILM policy {name}"):
            client.ilm.put_lifecycle(name=name, body=body)
        return SetupAction("ilm_policy", name, "created")
    return _keep_or_rewrite(
        "ilm_policy", name, stored.get("_meta", {}).get(HASH_KEY) == wanted, update,
        lambda: client.ilm.put_lifecycle(name=name, body=body), client,
    )


def _stored_template(client: Elasticsearch, name: str) -> dict[str, Any] | None:
    with talking_to(client, f"read index template {name}"):
        try:
            found = client.indices.get_index_template(name=name)["index_templates"]
        except NotFoundError:
            return None
    return found[0]["index_template"] if found else None


def _ensure_template(client: Elasticsearch, name: str, body: dict[str, Any], update: bool) -> SetupAction:
    stored = _stored_template(client, name)
    if stored is None:
        with talking_to(client, f"create index template {name}"):
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
        return SetupAction(kind, name, "present",
                           "differs from the file or settings: run setup with update to apply it")
    with talking_to(client, f"update {kind} {name}"):
        rewrite()
    return SetupAction(kind, name, "updated")


def _exists(client: Elasticsearch, name: str) -> bool:
    with talking_to(client, f"check whether {name} exists"):
        return bool(client.indices.exists(index=name))


def _ensure_write_alias(client: Elasticsearch, alias: str) -> SetupAction:
    with talking_to(client, f"read alias {alias}"):
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
    with talking_to(client, f"create index {index} for alias {alias}"):
        if _exists(client, index):
            client.indices.update_aliases(
                actions=[{"add": {"index": index, "alias": alias, "is_write_index": True}}])
            return SetupAction("write_alias", alias, "created", f"alias added to existing index {index}")
        client.indices.create(index=index, aliases={alias: {"is_write_index": True}})
    return SetupAction("write_alias", alias, "created", f"write index {index}")


def _write_index_note(alias: str, indices: Mapping[str, Any]) -> str:
    writer = _write_index_of(alias, indices)
    if writer:
        return f"write index {writer}"
    return f"{len(indices)} indices and no write index: writes to {alias} will fail"


def _write_index_of(alias: str, indices: Mapping[str, Any]) -> str | None:
    """The index writes to `alias` go to, from a `GET _alias/<alias>` answer."""
    writers = [name for name, info in indices.items()
               if info.get("aliases", {}).get(alias, {}).get("is_write_index")]
    if writers:
        return writers[0]
    return next(iter(indices)) if len(indices) == 1 else None


def _ensure_write_index_mapping(client: Elasticsearch, alias: str, mappings: Mapping[str, Any]) -> SetupAction:
    """Put the template's mappings onto the alias's current write index.

    A template reaches an index only when the index is created, i.e. at the next rollover:
    until then a strict index refuses every document carrying a field the template gained.
    Adding fields is allowed on a live index; changing one is not, and is reported (not
    raised) with the rollover that applies it.
    """
    with talking_to(client, f"read alias {alias}"):
        indices = client.indices.get_alias(name=alias).body
    index = _write_index_of(alias, indices)
    if index is None:
        return SetupAction("mapping", alias, "skipped", _write_index_note(alias, indices))
    with talking_to(client, f"read the mapping of {index}"):
        before = client.indices.get_mapping(index=index).body
    with talking_to(client, f"update the mapping of {index}"):
        try:
            client.indices.put_mapping(index=index, body=dict(mappings))
        except BadRequestError as exc:
            return SetupAction("mapping", index, "skipped", (
                f"the template's mappings conflict with this write index of {alias} ({describe_api_error(exc)}): "
                f"they apply to the next index, after a rollover (POST {alias}/_rollover)"))
    with talking_to(client, f"read the mapping of {index}"):
        after = client.indices.get_mapping(index=index).body
    return SetupAction("mapping", index, "updated" if after != before else "present", f"write index of {alias}")
