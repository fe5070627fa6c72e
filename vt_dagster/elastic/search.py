"""Search: a Lucene query over the summary aliases, and Lucene's own words when it cannot parse one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from vt_dagster.elastic.errors import InvalidQueryError, one_line, talking_to
from vt_dagster.elastic.names import DEFAULT_PREFIX, feed_names, summary_alias

def search_summaries(
    client: Elasticsearch, query: str, *, feeds: Iterable[str], prefix: str = DEFAULT_PREFIX,
    size: int = 20,
) -> list[dict[str, Any]]:
    """Summaries matching a Lucene `query_string` (e.g. `vt.yara.rule_names:*Emotet*`) in the
    feeds' summary aliases, newest `@timestamp` first. A query Lucene cannot parse raises
    InvalidQueryError saying where; other refusals ElasticsearchRequestError.
    """
    aliases = ",".join(summary_alias(prefix, feed) for feed in feed_names(feeds))
    with talking_to(client, f"search {aliases}"):
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
            return one_line(text).rstrip(" .,")
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
