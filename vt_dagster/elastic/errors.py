"""The one-line errors of the Elasticsearch layer, and the translation of transport failures
into them: callers catch `ElasticsearchUnavailable` (nothing answers at the URL) and
`ElasticsearchRequestError` (the cluster refused a request), never elastic-transport's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch
from elasticsearch import ConnectionError as TransportConnectionError


class ElasticsearchError(RuntimeError):
    """Base of the one-line errors the Elasticsearch package raises."""


class ElasticsearchUnavailable(ElasticsearchError):
    """Nothing answers at the configured URL (refused, unresolvable, timed out)."""


class ElasticsearchRequestError(ElasticsearchError):
    """The cluster answered but refused a request (auth, bad query, conflicting setup...)."""


class InvalidQueryError(ElasticsearchRequestError):
    """A search query Elasticsearch cannot parse: the message says where, the user fixes it."""


class TemplateFileError(ValueError):
    """An index template or ILM policy file is missing or is not the JSON we expect."""



def cluster_url(client: Elasticsearch) -> str:
    """The URL the client talks to (no credentials: auth travels in headers)."""
    nodes = client.transport.node_pool.all()
    return nodes[0].base_url if nodes else "<no node configured>"


@contextmanager
def talking_to(client: Elasticsearch, what: str) -> Iterator[None]:
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
    return one_line(text, 160)


def describe_api_error(exc: ApiError) -> str:
    """`<status> <type>: <reason>` of an Elasticsearch error answer, on one line."""
    return f"{exc.meta.status} {error_text(exc.body if isinstance(exc.body, dict) else {}, exc.message)}"


def error_text(body: Mapping[str, Any], fallback: str) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return cause_text(error)
    return one_line(error if isinstance(error, str) else fallback)


def cause_text(error: Mapping[str, Any]) -> str:
    """`type: reason`, followed by the innermost cause when it says more."""
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    while isinstance(cause, dict) and isinstance(cause.get("caused_by"), dict):
        cause = cause["caused_by"]
    if isinstance(cause, dict) and cause.get("reason"):
        text += f" (caused by {cause.get('type')}: {cause['reason']})"
    return one_line(text)


def one_line(value: Any, limit: int = 400) -> str:
    return " ".join(str(value).split())[:limit]
