"""`url` objects of the URLs feed: the URL, scanner verdicts and what VT saw when it fetched it.

A fifth of the URLs are oddities (IDN, userinfo, ports, IPv6 hosts); most carry the final
page's title, headers, outgoing links and redirection chain, all URLs the whitelist sorts.
"""

from __future__ import annotations

import datetime as dt
import random

from vt_dagster.emulator.values import (
    VT_API_URL,
    Obj,
    chance,
    drop_some,
    epoch,
    odd_url,
    random_hex,
    random_submitter,
    random_url,
    random_urls,
    random_votes,
    sample,
    submission_times,
    vt_url_id,
)
from vt_dagster.emulator.verdicts import url_categories, url_engine_results

TITLES = ("Sign in to your account", "Microsoft Office 365", "Index of /", "Login | Bank",
          "Just a moment...", "404 Not Found", "Welcome to nginx!", "Документ", "交易确认",
          "DHL Express - Track", "Account suspended", "")


CONTENT_TYPES = ("text/html; charset=UTF-8", "application/octet-stream", "text/html")
WEB_SERVERS = ("nginx", "Apache/2.4.41 (Ubuntu)", "cloudflare", "LiteSpeed", "Microsoft-IIS/10.0")
URL_TAGS = ("ip", "redirector", "external-resources", "iframes", "multiple-redirects",
            "third-party-cookies", "trackers", "base64-embedded")
URL_THREAT_NAMES = ("Mal/HTMLGen-A", "Phishing.Generic", "JS:Trojan.Cryxos", "HTML/Phishing.Agent")
URL_OPTIONAL = ("title", "categories", "tld", "last_final_url", "outgoing_links", "threat_names", "tags")


def _http_headers(rng: random.Random, length: int) -> Obj:
    content_type = rng.choice(CONTENT_TYPES)
    headers = {"Content-Type": content_type, "Content-Length": str(length),
               "Date": "Mon, 01 Jan 2024 00:00:00 GMT", "Server": rng.choice(WEB_SERVERS)}
    if chance(rng, 0.4):
        headers["Set-Cookie"] = f"PHPSESSID={random_hex(rng, 26)}; path=/"
    if chance(rng, 0.3):
        headers["X-Powered-By"] = rng.choice(("PHP/7.4.33", "Express", "ASP.NET"))
    return headers


def url_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = epoch(batch_time)
    url = random_url(rng) if chance(rng, 0.8) else odd_url(rng)
    url_id = vt_url_id(url)
    badness = 0.0 if chance(rng, 0.5) else rng.uniform(0.01, 0.2)
    results, stats = url_engine_results(rng, badness)
    times = submission_times(rng, ts)
    times.pop("unique_sources")
    attributes: Obj = {"url": url, "last_final_url": url, "tld": _tld(url),
                       "categories": url_categories(rng), "threat_names": [],
                       "tags": sample(rng, URL_TAGS, 0, 3),
                       "reputation": rng.choice((0, 0, -1, -11, 2)), "total_votes": random_votes(rng),
                       "last_analysis_stats": stats, "last_analysis_results": results,
                       "has_content": False}
    attributes.update(times)
    if stats["malicious"] and chance(rng, 0.5):
        attributes["threat_names"] = sample(rng, URL_THREAT_NAMES, 1, 2)
    if chance(rng, 0.85):
        _add_url_response(rng, attributes, url)
    drop_some(rng, attributes, URL_OPTIONAL)
    return {"type": "url", "id": url_id, "links": {"self": f"{VT_API_URL}/urls/{url_id}"},
            "attributes": attributes, "context_attributes": {"submitter": random_submitter(rng)}}


def _tld(url: str) -> str:
    host = url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].rsplit(":", 1)[0].rstrip(".")
    return host.rsplit(".", 1)[-1].lower() if "." in host and not host.startswith("[") else ""


def _add_url_response(rng: random.Random, attributes: Obj, url: str) -> None:
    """What VT saw when it fetched the URL: redirects, final page, headers, links."""
    length = rng.randint(0, 400_000)
    if chance(rng, 0.3):
        chain = [url] + [random_url(rng) for _ in range(rng.randint(1, 3))]
        attributes["redirection_chain"] = chain
        attributes["last_final_url"] = chain[-1]
    attributes.update({
        "title": rng.choice(TITLES),
        "last_http_response_code": rng.choice((200, 200, 200, 301, 302, 403, 404, 500)),
        "last_http_response_content_length": length, "last_http_response_content_sha256": random_hex(rng, 64),
        "last_http_response_headers": _http_headers(rng, length), "has_content": length > 0,
        "outgoing_links": random_urls(rng, 0, 10),
    })
    if chance(rng, 0.4):
        attributes["favicon"] = {"dhash": random_hex(rng, 16), "raw_md5": random_hex(rng, 32)}
    if chance(rng, 0.4):
        attributes["html_meta"] = {"viewport": ["width=device-width, initial-scale=1"],
                                   "description": [rng.choice(TITLES) or "page"]}
    if chance(rng, 0.3):
        tag = {"url": "https://www.googletagmanager.com/gtag/js", "id": f"G-{random_hex(rng, 10).upper()}",
               "timestamp": attributes["last_analysis_date"]}
        attributes["trackers"] = {"Google Tag Manager": [tag]}
    if chance(rng, 0.25):
        attributes["last_http_response_cookies"] = {"PHPSESSID": random_hex(rng, 26)}
