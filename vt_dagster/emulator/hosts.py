"""`domain` and `ip_address` objects: DNS records, WHOIS, TLS certificates, networks.

Both feeds describe a host as VT last saw it; their certificates carry CRL/OCSP/CA URLs that are
noise the URL whitelist must drop, and IPs come from the real networks of `values.NETWORKS`.
"""

from __future__ import annotations

import datetime as dt
import random
import re

from vt_dagster.emulator.values import (
    COUNTRIES,
    DAY,
    VT_API_URL,
    Obj,
    chance,
    drop_some,
    epoch,
    random_domain,
    random_hex,
    random_ipv4,
    random_ipv6,
    random_network,
    random_votes,
    sample,
    utc_date,
)
from vt_dagster.emulator.verdicts import url_categories, url_engine_results

CERT_ISSUERS = (  # issuer, CA Issuers URL, OCSP URL
    ({"C": "US", "O": "Let's Encrypt", "CN": "R11"}, "http://r11.i.lencr.org/", "http://r11.o.lencr.org"),
    ({"C": "US", "O": "Let's Encrypt", "CN": "E6"}, "http://e6.i.lencr.org/", "http://e6.o.lencr.org"),
    ({"C": "US", "O": "Google Trust Services", "CN": "WE1"}, "http://i.pki.goog/we1.crt", "http://o.pki.goog/we1"),
    ({"C": "US", "O": "Amazon", "OU": "Server CA 1B", "CN": "Amazon"},
     "http://crt.sca1b.amazontrust.com/sca1b.crt", "http://ocsp.sca1b.amazontrust.com"),
    ({"C": "US", "O": "DigiCert Inc", "CN": "DigiCert Global G2 TLS RSA SHA256 2020 CA1"},
     "http://cacerts.digicert.com/DigiCertGlobalG2TLSRSASHA2562020CA1-1.crt", "http://ocsp.digicert.com"),
    ({"C": "GB", "ST": "Greater Manchester", "L": "Salford", "O": "Sectigo Limited",
      "CN": "Sectigo RSA Domain Validation Secure Server CA"},
     "http://crt.sectigo.com/SectigoRSADomainValidationSecureServerCA.crt", "http://ocsp.sectigo.com"),
)


def _cert_extensions(rng: random.Random, host: str, ca_issuers: str, ocsp: str) -> Obj:
    return {
        "key_usage": ["digitalSignature", "keyEncipherment"], "extended_key_usage": ["serverAuth", "clientAuth"],
        "subject_alternative_name": [host, f"*.{host}"], "CA": False,
        "authority_key_identifier": {"keyid": random_hex(rng, 40)}, "subject_key_identifier": random_hex(rng, 40),
        "certificate_policies": ["2.23.140.1.2.1"],
        "ca_information_access": {"CA Issuers": ca_issuers, "OCSP": ocsp},
        "1.3.6.1.4.1.11129.2.4.2": random_hex(rng, 64),
    }


def _certificate(rng: random.Random, host: str, ts: int) -> Obj:
    """last_https_certificate: its CRL/OCSP/CA URLs are noise the URL whitelist must drop."""
    issuer, ca_issuers, ocsp = rng.choice(CERT_ISSUERS)
    not_before = ts - rng.randint(1, 80) * DAY
    cert: Obj = {
        "size": rng.randint(1100, 1900), "version": "V3", "signature_algorithm": "sha256RSA",
        "serial_number": random_hex(rng, 32), "thumbprint": random_hex(rng, 40),
        "thumbprint_sha256": random_hex(rng, 64),
        "issuer": dict(issuer), "subject": {"CN": host},
        "validity": {"not_before": utc_date(not_before), "not_after": utc_date(not_before + 90 * DAY)},
        "public_key": {"algorithm": "RSA",
                       "rsa": {"key_size": 2048, "modulus": random_hex(rng, 512), "exponent": "010001"}},
        "cert_signature": {"signature_algorithm": "sha256RSA", "signature": random_hex(rng, 512)},
        "extensions": _cert_extensions(rng, host, ca_issuers, ocsp),
        "tags": [],
    }
    if issuer["O"] in ("DigiCert Inc", "Amazon") or chance(rng, 0.2):
        cert["extensions"]["crl_distribution_points"] = [f"http://crl3.digicert.com/{random_hex(rng, 8)}.crl"]
    return cert


REGISTRARS = ("NameCheap, Inc.", "GoDaddy.com, LLC", "REG.RU LLC", "Alibaba Cloud Computing (Beijing) Co., Ltd.",
              "Tucows Domains Inc.", "PDR Ltd. d/b/a PublicDomainRegistry.com", "Dynadot Inc",
              "CommuniGal Communication Ltd.", "MarkMonitor Inc.", "NICENIC INTERNATIONAL GROUP CO., LIMITED")
ODD_DOMAINS = ("xn--80ak6aa92e.com", "bücher-günstig.de", "пример.рф", "EXAMPLE-Upper.COM")
JARMS = ("29d29d00029d29d21c41d41d00041d49101d6002693c68bb11aceec119f3e8",
         "27d40d40d29d40d1dc42d43d00041d4689ee210389f4f6b4b5b1b93f92252d")
RANK_SOURCES = ("Cisco Umbrella", "Majestic", "Tranco", "Cloudflare Radar", "Statvoo")
NAMESERVER_DOMAINS = ("cloudflare.com", "awsdns-11.net", "registrar-servers.com", "reg.ru")
CNAME_TARGETS = ("ghs.googlehosted.com", "proxy-ssl.webflow.com")
DOMAIN_OPTIONAL = ("categories", "popularity_ranks", "last_dns_records", "tags", "jarm", "tld")
WHOIS_TIME = "%Y-%m-%dT%H:%M:%SZ"


def _whois(domain: str, registrar: str, created: int, updated: int, nameservers: list[str]) -> str:
    lines = [f"Creation Date: {utc_date(created, WHOIS_TIME)}", "DNSSEC: unsigned",
             f"Domain Name: {domain.upper()}",
             "Domain Status: clientTransferProhibited https://icann.org/epp#clientTransferProhibited"]
    lines += [f"Name Server: {server.upper()}" for server in nameservers]
    lines += [f"Registrar: {registrar}", f"Registry Expiry Date: {utc_date(created + 3 * 365 * DAY, WHOIS_TIME)}",
              f"Updated Date: {utc_date(updated, WHOIS_TIME)}",
              "Registrant Country: " + ("PA" if "Namecheap" in registrar else "US")]
    return "\n".join(lines)


def _dns_records(rng: random.Random, domain: str) -> tuple[list[Obj], list[str]]:
    """A/AAAA/NS/MX/TXT/CNAME/SOA records, in VT's `last_dns_records` shape."""
    nameservers = [f"ns{index}.{rng.choice(NAMESERVER_DOMAINS + (domain,))}" for index in (1, 2)]
    records: list[Obj] = [{"type": "A", "value": random_ipv4(rng), "ttl": rng.choice((60, 300, 3600))}
                          for _ in range(rng.randint(0, 4))]
    if chance(rng, 0.3):
        records.append({"type": "AAAA", "value": random_ipv6(rng), "ttl": 300})
    records += [{"type": "NS", "value": server, "ttl": 21600} for server in nameservers]
    if chance(rng, 0.5):
        records.append({"type": "MX", "value": f"mail.{domain}", "priority": 10, "ttl": 3600})
    if chance(rng, 0.5):
        spf_domain = rng.choice(("google.com", "mailgun.org", domain))
        records.append({"type": "TXT", "value": f"v=spf1 include:_spf.{spf_domain} ~all", "ttl": 3600})
    if chance(rng, 0.2):
        target = rng.choice(CNAME_TARGETS + (domain + ".cdn.cloudflare.net",))
        records.append({"type": "CNAME", "value": target, "ttl": 300})
    records.append({"type": "SOA", "value": nameservers[0], "rname": f"hostmaster.{domain}",
                    "serial": rng.randint(1, 2024123199), "refresh": 10000, "retry": 2400,
                    "expire": 604800, "minimum": 1800, "ttl": 3600})
    return records, nameservers


def _popularity_ranks(rng: random.Random, ts: int) -> Obj:
    return {source: {"timestamp": ts - rng.randint(0, 3) * DAY, "rank": rng.randint(1, 1_000_000)}
            for source in sample(rng, RANK_SOURCES, 0, 3)}


def domain_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = epoch(batch_time)
    domain = random_domain(rng, subdomain=0.25) if chance(rng, 0.93) else rng.choice(ODD_DOMAINS)
    badness = 0.0 if chance(rng, 0.6) else rng.uniform(0.01, 0.15)
    results, stats = url_engine_results(rng, badness)
    registrar = rng.choice(REGISTRARS)
    created = ts - rng.randint(1, 7000) * DAY
    records, nameservers = _dns_records(rng, domain)
    attributes: Obj = {
        "last_dns_records": records, "last_dns_records_date": ts - rng.randint(0, 30) * DAY,
        "tld": domain.rsplit(".", 1)[-1].lower(), "tags": sample(rng, ("dga", "parked", "newly-registered"), 0, 1),
        "categories": url_categories(rng), "reputation": rng.choice((0, 0, -1, -37, 5)),
        "total_votes": random_votes(rng), "last_analysis_stats": stats, "last_analysis_results": results,
        "last_analysis_date": ts + rng.randint(0, 59), "last_modification_date": ts + rng.randint(0, 59),
        "popularity_ranks": _popularity_ranks(rng, ts),
    }
    if chance(rng, 0.9):
        updated = min(ts, created + rng.randint(0, 900) * DAY)
        attributes.update({"registrar": registrar, "creation_date": created, "last_update_date": updated,
                           "expiration_date": created + 3 * 365 * DAY, "whois_date": ts - rng.randint(0, 60) * DAY,
                           "whois": _whois(domain, registrar, created, updated, nameservers)})
    if chance(rng, 0.7):
        attributes["last_https_certificate"] = _certificate(rng, domain, ts)
        attributes["last_https_certificate_date"] = ts - rng.randint(0, 30) * DAY
        attributes["jarm"] = rng.choice(JARMS + (random_hex(rng, 62),))
    if chance(rng, 0.3):
        attributes["favicon"] = {"dhash": random_hex(rng, 16), "raw_md5": random_hex(rng, 32)}
    drop_some(rng, attributes, DOMAIN_OPTIONAL)
    return {"type": "domain", "id": domain, "links": {"self": f"{VT_API_URL}/domains/{domain}"},
            "attributes": attributes}


def _ip_whois(ip: str, owner: str, country: str, registry: str) -> str:
    handle = re.sub(r"[^a-z0-9]+", "", owner.split()[0].lower()) or "net"
    if "." in ip:
        prefix = ip.rsplit(".", 2)[0]
        net_range = f"NetRange: {prefix}.0.0 - {prefix}.255.255"
    else:
        net_range = f"inet6num: {ip.split('::')[0]}::/32"
    return "\n".join((net_range, f"NetName: {handle.upper()}-NET", f"OrgName: {owner}", f"Country: {country}",
                      f"OrgAbuseEmail: abuse@{handle}.example", f"source: {registry}"))


IP_OPTIONAL = ("network", "country", "continent", "whois", "regional_internet_registry")


def ip_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = epoch(batch_time)
    asn, owner, prefix4, prefix6 = random_network(rng)
    ipv6 = chance(rng, 0.15)
    if ipv6:
        ip, network = f"{prefix6}::{rng.randint(1, 0xFFFF):x}", f"{prefix6}::/32"
    else:
        ip, network = f"{prefix4}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"{prefix4}.0.0/16"
    country, continent, registry, _places = rng.choice(COUNTRIES)
    badness = 0.0 if chance(rng, 0.6) else rng.uniform(0.01, 0.12)
    results, stats = url_engine_results(rng, badness)
    attributes: Obj = {
        "as_owner": owner, "asn": asn, "country": country, "continent": continent, "network": network,
        "regional_internet_registry": registry, "reputation": rng.choice((0, 0, 0, -3, 1)),
        "tags": sample(rng, ("suspicious-udp", "self-signed", "tor"), 0, 1), "total_votes": random_votes(rng),
        "last_analysis_stats": stats, "last_analysis_results": results,
        "last_analysis_date": ts + rng.randint(0, 59), "last_modification_date": ts + rng.randint(0, 59),
        "whois": _ip_whois(ip, owner, country, registry), "whois_date": ts - rng.randint(0, 60) * DAY,
    }
    if chance(rng, 0.35):
        attributes["last_https_certificate"] = _certificate(rng, random_domain(rng), ts)
        attributes["last_https_certificate_date"] = ts - rng.randint(0, 30) * DAY
        attributes["jarm"] = random_hex(rng, 62)
    if chance(rng, 0.05):
        attributes.pop("as_owner")
        attributes.pop("asn")
    drop_some(rng, attributes, IP_OPTIONAL)
    return {"type": "ip_address", "id": ip, "links": {"self": f"{VT_API_URL}/ip_addresses/{ip}"},
            "attributes": attributes}
