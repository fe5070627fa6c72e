"""One document per `_id` across every index behind an alias, whatever rolled over when.

Elasticsearch keeps `_id` unique inside one index only. After a rollover, a document written
again through the write alias lands in the new write index beside its copy in the older one:
a batch indexed again, or an object VT analysed again today, would show twice. So before each
bulk request the indexer asks where the alias already holds its ids (one `ids` search with
`_index` and `_version` of every copy: `mget` refuses an alias of several indices), writes
through the alias as always, and then deletes the copies left in the other indices. Deletes
come after the writes succeeded, so nothing is lost; a crash in between leaves a duplicate
that the next indexing of the same documents removes.

Reports are versioned by batch minute: a report whose alias holds a newer copy anywhere is not
written, and deleting a copy is conditional (`external_gte` on the version kept), so a copy
newer than the one kept is never deleted, even by a run racing another one. Summaries of a
batch need the per-id search only when some index already holds that batch (one cheap count
per batch): the live case, a batch indexed for the first time, costs one request per batch.

`plan_group` and `GroupPlan.left_behind` are pure; `CopyFinder` asks Elasticsearch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch

from vt_dagster.elastic.errors import ElasticsearchRequestError, cluster_url, talking_to

# Elasticsearch's default `index.max_result_window`: the most hits one search returns.
MAX_HITS = 10_000
_COPY_FIELDS = "hits.total.value,hits.hits._index,hits.hits._id,hits.hits._version"


@dataclass(frozen=True)
class Copy:
    """Where the alias holds a document: a concrete index and the document's version there."""

    index: str
    version: int


@dataclass(frozen=True)
class StaleCopy:
    """A copy to delete; `keep_version`: delete it only while its version is not above this
    (reports, `external_gte`), None: delete it as it is (summaries)."""

    doc_id: str
    index: str
    keep_version: int | None


@dataclass
class GroupPlan:
    """What to do for one bulk request's documents.

    `skip`: reports not written because the alias holds a newer copy. `stale`: copies to
    delete whatever the writes do (older duplicates of a skipped report). `elsewhere`: the
    copies of each document to write, deleted after the write unless it landed beside them.
    """

    skip: set[str] = field(default_factory=set)
    stale: list[StaleCopy] = field(default_factory=list)
    elsewhere: dict[str, list[Copy]] = field(default_factory=dict)
    version: int | None = None

    def left_behind(self, landed: Mapping[str, str]) -> list[StaleCopy]:
        """The copies to delete once each `_id` of `landed` was written into the index it maps to."""
        return [StaleCopy(doc_id, copy.index, self.version)
                for doc_id, index in landed.items() for copy in self.elsewhere.get(doc_id, ())
                if copy.index != index]


def plan_group(ids: Iterable[str], copies: Mapping[str, Sequence[Copy]], version: int | None) -> GroupPlan:
    """The plan for documents `ids` about to be written with `version` (None: unversioned
    summaries), given the copies the alias already holds.

    A report older than a copy the alias holds is skipped, and that newest copy is the one
    kept: its other copies are stale. Otherwise every copy is kept until the write lands.
    """
    plan = GroupPlan(version=version)
    for doc_id in dict.fromkeys(ids):
        found = copies.get(doc_id)
        if not found:
            continue
        newest = max(found, key=lambda copy: (copy.version, copy.index))
        if version is not None and newest.version > version:
            plan.skip.add(doc_id)
            plan.stale += [StaleCopy(doc_id, copy.index, newest.version) for copy in found if copy is not newest]
        else:
            plan.elsewhere[doc_id] = list(found)
    return plan


def delete_action(stale: StaleCopy) -> bytes:
    """The `_bulk` action line deleting one copy from its concrete index."""
    versioning = (f',"version":{stale.keep_version},"version_type":"external_gte"'
                  if stale.keep_version is not None else "")
    return f'{{"delete":{{"_index":{json.dumps(stale.index)},"_id":"{stale.doc_id}"{versioning}}}}}'.encode()


class CopyFinder:
    """Asks one alias where it already holds documents; one per bulk run.

    `version` is the reports' version (None for summaries). Summaries are looked up only when
    some index of the alias holds their batch, asked once per batch.

    Searches see what was refreshed only (every second by default). Before the first id
    look-up the alias is refreshed once, so that what a run wrote a moment ago, maybe into the
    index that was the write index until a rollover in between, is seen too. The count of a
    batch is asked without it: summaries written less than a refresh interval before a
    rollover and written again just after it would be missed, which doubles that batch's
    count, fails its `documents_counted` check and makes the sensor index it again, removing
    the copy; a refresh per batch would cost the live case more than that moment is worth.
    """

    def __init__(self, client: Elasticsearch, alias: str, version: int | None) -> None:
        self.client = client
        self.alias = alias
        self.version = version
        self._batch_held: dict[str, bool] = {}
        self._refreshed = False

    def _refresh_once(self) -> None:
        """A missing alias is no error here: the writes then fail each document saying so."""
        if not self._refreshed:
            with talking_to(self.client, f"refresh {self.alias}"):
                self.client.indices.refresh(index=self.alias, ignore_unavailable=True, allow_no_indices=True)
            self._refreshed = True

    def plan(self, ids: Sequence[str], batches: Iterable[str]) -> GroupPlan:
        """The plan for a group of documents (`batches`: the `vt.batch` values among them)."""
        if self.version is None and not any(self.holds_batch(batch) for batch in set(batches)):
            return GroupPlan()
        return plan_group(ids, self.find(ids), self.version)

    def holds_batch(self, batch: str) -> bool:
        """Whether any index of the alias holds a document of `batch` (asked once per batch)."""
        if batch not in self._batch_held:
            with talking_to(self.client, f"look for batch {batch} in {self.alias}"):
                answer = self.client.search(
                    index=self.alias, size=0, terminate_after=1, track_total_hits=True,
                    query={"bool": {"filter": [{"term": {"vt.batch": batch}}]}},
                    ignore_unavailable=True, allow_no_indices=True, filter_path="hits.total.value",
                )
            self._batch_held[batch] = answer.get("hits", {}).get("total", {}).get("value", 0) > 0
        return self._batch_held[batch]

    def find(self, ids: Sequence[str]) -> dict[str, list[Copy]]:
        """Every copy of `ids` in the alias, by `_id`: one search sized for two copies of each;
        a second one when some are held more often, and halves of the group only when the
        copies outnumber what one search may return."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        self._refresh_once()
        hits, total = self._search_copies(unique, min(MAX_HITS, 2 * len(unique)))
        if len(hits) < total <= MAX_HITS:
            hits, total = self._search_copies(unique, total)
        if total > len(hits):
            if len(unique) == 1:
                raise ElasticsearchRequestError(
                    f"Elasticsearch at {cluster_url(self.client)} holds more than {MAX_HITS} copies of "
                    f"document {unique[0]} in {self.alias}: remove them by hand"
                )
            half = len(unique) // 2
            return {**self.find(unique[:half]), **self.find(unique[half:])}
        copies: dict[str, list[Copy]] = {}
        for hit in hits:
            copies.setdefault(hit["_id"], []).append(Copy(hit["_index"], int(hit["_version"])))
        return copies

    def _search_copies(self, ids: list[str], size: int) -> tuple[list[dict[str, Any]], int]:
        """(up to `size` copies of `ids`, how many the alias holds)."""
        with talking_to(self.client, f"look up copies of {len(ids)} document(s) in {self.alias}"):
            answer = self.client.search(
                index=self.alias, query={"ids": {"values": ids}}, source=False, version=True, size=size,
                track_total_hits=True, ignore_unavailable=True, allow_no_indices=True, filter_path=_COPY_FIELDS,
            )
        hits = answer.get("hits", {})
        return hits.get("hits", []), hits.get("total", {}).get("value", 0)
