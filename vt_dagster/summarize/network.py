"""Domain and IP address objects: their field tables, DNS records, popularity, certificate.

Together because both describe network infrastructure and share the HTTPS certificate fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vt_dagster.summarize.common import _COMMON_FIELDS, _FAVICON_FIELDS
from vt_dagster.summarize.fields import Field, Reader, _Builder, _compile, _Compiled, _copy_fields
from vt_dagster.summarize.values import _count, _date, _dicts, _keyword, _keywords

_DOMAIN_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + _FAVICON_FIELDS + (
    ("url.top_level_domain", ("tld",), _keyword),
    ("vt.registrar", ("registrar",), _keyword),
    ("vt.creation_date", ("creation_date",), _date),
    ("vt.last_update_date", ("last_update_date",), _date),
    ("vt.last_dns_records_date", ("last_dns_records_date",), _date),
    ("vt.last_https_certificate_date", ("last_https_certificate_date",), _date),
    ("vt.jarm", ("jarm",), _keyword),
)

_IP_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + (
    ("as.number", ("asn",), _count),
    ("as.organization.name", ("as_owner",), _keyword),
    ("geo.country_iso_code", ("country",), _keyword),
    ("geo.continent_code", ("continent",), _keyword),
    ("vt.network", ("network",), _keyword),
    ("vt.regional_internet_registry", ("regional_internet_registry",), _keyword),
    ("vt.last_https_certificate_date", ("last_https_certificate_date",), _date),
    ("vt.jarm", ("jarm",), _keyword),
)


def _certificate(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    _copy_fields(attributes, _CERTIFICATE_FIELDS, b.out)


def _cert(field: str, *path: str, read: Reader | None = None) -> Field:
    return field, ("last_https_certificate", *path), read or _keyword


_CERTIFICATE_FIELDS: _Compiled = _compile((
    _cert("tls.server.hash.sha1", "thumbprint"),
    _cert("tls.server.hash.sha256", "thumbprint_sha256"),
    _cert("tls.server.x509.serial_number", "serial_number"),
    _cert("tls.server.x509.issuer.common_name", "issuer", "CN"),
    _cert("tls.server.x509.issuer.organization", "issuer", "O"),
    _cert("tls.server.x509.subject.common_name", "subject", "CN"),
    _cert("tls.server.x509.alternative_names", "extensions", "subject_alternative_name",
          read=_keywords),
))


def _domain_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    b.put("url.domain", _keyword(obj.get("id")))


def _dns_records(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Records as "TYPE value" (exact lookups) and bare values (pivot on a host or IP)."""
    records: list[str] = []
    values: list[str] = []
    addresses: list[str] = []
    for record in _dicts(attributes.get("last_dns_records")):
        kind, value = _keyword(record.get("type")), _keyword(record.get("value"))
        if value is None:
            continue
        values.append(value)
        records.append(f"{kind} {value}" if kind else value)
        if kind in ("A", "AAAA"):
            addresses.append(value)
    b.put_list("vt.dns.records", records)
    b.put_list("vt.dns.values", values)
    b.add_ips(addresses)


def _popularity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Ranks as "list:rank" strings plus the best (lowest) rank for range queries."""
    ranks = attributes.get("popularity_ranks")
    if not isinstance(ranks, dict):
        return
    labels: list[str] = []
    best: int | None = None
    for source, entry in ranks.items():
        rank = _count(entry.get("rank")) if isinstance(entry, dict) else None
        if rank is None:
            continue
        labels.append(f"{source}:{rank}")
        best = rank if best is None else min(best, rank)
    b.put_list("vt.popularity.ranks", labels)
    b.put("vt.popularity.best_rank", best)


def _ip_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    b.add_ips((obj.get("id"),))

