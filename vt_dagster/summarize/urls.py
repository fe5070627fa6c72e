"""URL objects: the URL field table, the URL and its host, and the URL's own link lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vt_dagster.summarize.common import _COMMON_FIELDS, _FAVICON_FIELDS
from vt_dagster.summarize.fields import Field, _Builder
from vt_dagster.summarize.values import _as_list, _count, _date, _dig, _integer, _keyword, _keywords, _values
from vt_dagster.whitelist import host_of

_URL_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + _FAVICON_FIELDS + (
    ("url.top_level_domain", ("tld",), _keyword),
    ("vt.last_final_url", ("last_final_url",), _keyword),
    ("vt.title", ("title",), _keyword),
    ("vt.last_http_response_code", ("last_http_response_code",), _integer),
    ("vt.last_http_response_content_length", ("last_http_response_content_length",), _count),
    ("vt.last_http_response_content_sha256", ("last_http_response_content_sha256",), _keyword),
    ("vt.threat_names", ("threat_names",), _keywords),
    ("vt.first_submission_date", ("first_submission_date",), _date),
    ("vt.last_submission_date", ("last_submission_date",), _date),
    ("vt.times_submitted", ("times_submitted",), _count),
)


def _url_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """The URL itself (feed lines also carry it in context_attributes) and its host."""
    url = _keyword(attributes.get("url")) or _keyword(_dig(obj, ("context_attributes", "url")))
    if url is None:
        return
    b.out["url.full"] = url
    b.put("url.domain", host_of(url))


def _url_lists(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """The redirection chain is the URL's own path: kept whole. Outgoing links are filtered."""
    b.put_list("vt.redirection_chain", _as_list(attributes.get("redirection_chain")))
    b.put_filtered("vt.outgoing_links", _as_list(attributes.get("outgoing_links")))
    b.put_list("vt.targeted_brands", _values(attributes.get("targeted_brand")))

