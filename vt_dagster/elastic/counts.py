"""What an alias holds: documents per batch (the sensor's and the checks' question)."""

from __future__ import annotations

from collections.abc import Sequence

from elasticsearch import Elasticsearch

from vt_dagster.elastic.errors import talking_to

# A terms aggregation returns at most `search.max_buckets` (65,536 by default) buckets.
MAX_BATCHES_PER_REQUEST = 60_000


def refresh_alias(client: Elasticsearch, alias: str) -> None:
    """Make what was indexed into `alias` searchable now."""
    with talking_to(client, f"refresh {alias}"):
        client.indices.refresh(index=alias)


def alias_exists(client: Elasticsearch, alias: str) -> bool:
    with talking_to(client, f"look for the alias {alias}"):
        return bool(client.indices.exists_alias(name=alias))



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
        with talking_to(client, f"count batches in {alias}"):
            answer = client.search(
                index=alias, size=0, track_total_hits=False, ignore_unavailable=True,
                allow_no_indices=True, query={"bool": {"filter": [{"terms": {"vt.batch": chunk}}]}},
                aggs={"per_batch": {"terms": {"field": "vt.batch", "size": len(chunk)}}},
            )
        for bucket in answer.get("aggregations", {}).get("per_batch", {}).get("buckets", []):
            counts[bucket["key"]] = bucket["doc_count"]
    return {batch: counts[batch] for batch in batches}
