"""Shared vocabulary and random values of the generated VT objects: hashes, dates, hosts, URLs.

Every object type draws its hex digests, timestamps, domains, IPs and URLs here, so the
untidiness of real feeds (IDN hosts, ports, userinfo, upper case, certificate-authority noise
that the URL whitelist must drop) looks the same in files, URLs, domains, IPs and behaviours.
Each helper draws from the batch's `random.Random` in a fixed order, which is part of the bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

VT_API_URL = "https://www.virustotal.com/api/v3"
Obj = dict[str, Any]
DAY = 86400


# --------------------------------------------------------------------------------------------
# small random helpers
# --------------------------------------------------------------------------------------------


def random_hex(rng: random.Random, chars: int) -> str:
    """`chars` random lowercase hex digits."""
    return format(rng.getrandbits(chars * 4), f"0{chars}x")


def chance(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability


def sample(rng: random.Random, population: tuple | list, low: int, high: int) -> list:
    """Between `low` and `high` distinct items, in population order (so output stays stable)."""
    count = min(len(population), rng.randint(low, high))
    picked = sorted(rng.sample(range(len(population)), count))
    return [population[index] for index in picked]


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def utc_date(ts: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime(fmt)


def b64ish(rng: random.Random, chars: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choices(alphabet, k=chars))


# --------------------------------------------------------------------------------------------
# shared vocabulary
# --------------------------------------------------------------------------------------------

SYLLABLES = (
    "ka", "lo", "mi", "ne", "ta", "ru", "so", "vi", "pa", "de", "zo", "ha", "bu", "ge",
    "ri", "mo", "xa", "qu", "fi", "le", "wo", "yu", "ce", "no", "sa", "tri", "plex", "net",
    "cloud", "sec", "pay", "mail", "shop", "app", "web", "data", "soft", "link", "host",
)
TLDS = ("com", "com", "com", "net", "org", "ru", "cn", "info", "xyz", "top", "io", "de", "br",
        "in", "online", "site", "club", "co.uk", "com.br", "shop", "tk", "uk", "fr", "jp")
PATH_WORDS = (
    "login", "update", "secure", "account", "verify", "download", "files", "wp-content",
    "uploads", "images", "invoice", "doc", "bin", "api", "v2", "static", "js", "panel",
    "admin", "gate", "index", "payload", "cdn", "assets", "media", "track", "redirect",
)
FILE_WORDS = ("invoice", "setup", "update", "payment", "scan", "order", "document", "report",
              "crack", "keygen", "installer", "patch", "client", "loader", "photo", "resume")
FAMILIES_WIN = ("agenttesla", "formbook", "lokibot", "remcos", "njrat", "asyncrat", "redline",
                "vidar", "raccoon", "smokeloader", "guloader", "nanocore", "azorult", "qakbot",
                "emotet", "icedid", "dridex", "ursnif", "cobaltstrike", "xmrig", "zusy",
                "tasker", "stealc", "lummastealer", "amadey", "darkgate", "sality", "virut")
FAMILIES_ANDROID = ("hydra", "cerberus", "joker", "anubis", "flubot", "hiddad", "triada",
                    "spynote", "smsthief", "ermac", "banbra", "airpush")
FAMILIES_LINUX = ("mirai", "gafgyt", "xorddos", "tsunami", "xmrig", "kaiji", "mozi")
FAMILIES_DOC = ("emotet", "qakbot", "sagent", "valyria", "donoff", "obfuse", "encdoc")
FAMILIES_WEB = ("phish", "cryxos", "faceliker", "redirector", "iframeinject", "coinhive",
                "fakejquery", "socgholish")
THREAT_CATEGORIES = ("trojan", "downloader", "dropper", "ransomware", "miner", "adware",
                     "pua", "spyware", "banker", "worm", "virus", "hacktool", "phishing")
COUNTRIES = (
    # code, continent, registry, ((city, region), ...)
    ("US", "NA", "ARIN", (("ashburn", "VA"), ("new york", "NY"), ("san jose", "CA"), ("dallas", "TX"))),
    ("DE", "EU", "RIPE NCC", (("frankfurt am main", "HE"), ("berlin", "BE"), ("munich", "BY"))),
    ("GB", "EU", "RIPE NCC", (("london", "ENG"), ("manchester", "ENG"))),
    ("FR", "EU", "RIPE NCC", (("paris", "IDF"), ("roubaix", "HDF"))),
    ("NL", "EU", "RIPE NCC", (("amsterdam", "NH"),)),
    ("RU", "EU", "RIPE NCC", (("moscow", "MOW"), ("saint petersburg", "SPE"))),
    ("CN", "AS", "APNIC", (("beijing", "BJ"), ("shanghai", "SH"), ("shenzhen", "GD"))),
    ("JP", "AS", "APNIC", (("tokyo", "13"), ("osaka", "27"))),
    ("KR", "AS", "APNIC", (("seoul", "11"),)),
    ("IN", "AS", "APNIC", (("mumbai", "MH"), ("bengaluru", "KA"))),
    ("SG", "AS", "APNIC", (("singapore", "01"),)),
    ("BR", "SA", "LACNIC", (("são paulo", "SP"), ("rio de janeiro", "RJ"))),
    ("AR", "SA", "LACNIC", (("buenos aires", "C"),)),
    ("ZA", "AF", "AFRINIC", (("johannesburg", "GT"),)),
    ("NG", "AF", "AFRINIC", (("lagos", "LA"),)),
    ("AU", "OC", "APNIC", (("sydney", "NSW"),)),
    ("UA", "EU", "RIPE NCC", (("kyiv", "30"),)),
    ("TR", "AS", "RIPE NCC", (("istanbul", "34"),)),
    ("VN", "AS", "APNIC", (("hanoi", "HN"), ("hồ chí minh", "SG"))),
    ("ES", "EU", "RIPE NCC", (("madrid", "MD"),)),
)
NETWORKS = (
    # asn, as_owner, first two octets of its IPv4 prefix, IPv6 prefix
    (16509, "AMAZON-02", "52.95", "2600:1f18"),
    (14618, "AMAZON-AES", "54.210", "2600:1f10"),
    (15169, "GOOGLE", "142.250", "2607:f8b0"),
    (396982, "GOOGLE-CLOUD-PLATFORM", "34.117", "2600:1900"),
    (13335, "CLOUDFLARENET", "104.21", "2606:4700"),
    (8075, "MICROSOFT-CORP-MSN-AS-BLOCK", "20.42", "2603:1030"),
    (24940, "Hetzner Online GmbH", "88.198", "2a01:4f8"),
    (16276, "OVH SAS", "51.75", "2001:41d0"),
    (14061, "DIGITALOCEAN-ASN", "167.99", "2604:a880"),
    (63949, "Akamai Connected Cloud", "172.105", "2600:3c03"),
    (4134, "Chinanet", "222.186", "240e:3b7"),
    (4837, "CHINA UNICOM China169 Backbone", "123.125", "2408:8000"),
    (45090, "Shenzhen Tencent Computer Systems Company Limited", "43.155", "240d:c000"),
    (37963, "Hangzhou Alibaba Advertising Co.,Ltd.", "47.96", "2408:4000"),
    (9009, "M247 Europe SRL", "185.220", "2a02:6ea0"),
    (200019, "ALEXHOST SRL", "176.123", "2a0c:4c0"),
    (62240, "Clouvider", "185.245", "2a03:94e0"),
    (20473, "AS-CHOOPA", "45.77", "2001:19f0"),
    (13886, "CLOUD-SOUTH", "138.128", "2602:fe55"),
    (49505, "OOO \"Network of data-centers \"Selectel\"", "5.188", "2a0b:7280"),
)
NOISE_URLS = (
    "http://crl.microsoft.com/pki/crl/products/MicCodSigPCA_08-31-2010.crl",
    "http://www.microsoft.com/pki/certs/MicrosoftTimeStampPCA.crt",
    "http://ocsp.digicert.com",
    "http://crl3.digicert.com/DigiCertTrustedG4CodeSigningRSA4096SHA3842021CA1.crl",
    "http://cacerts.digicert.com/DigiCertAssuredIDRootCA.crt",
    "http://ocsp.sectigo.com",
    "http://crt.sectigo.com/SectigoPublicCodeSigningCAR36.crt",
    "http://ocsp.comodoca.com",
    "http://crl.globalsign.com/root-r3.crl",
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "http://schemas.microsoft.com/SMI/2005/WindowsSettings",
    "http://schemas.android.com/apk/res/android",
    "http://www.w3.org/2001/XMLSchema-instance",
    "http://www.w3.org/1999/xhtml",
    "http://ns.adobe.com/xap/1.0/",
    "https://www.google.com/",
    "http://www.apache.org/licenses/LICENSE-2.0",
    "http://CRL.Microsoft.com/pki/crl/products/MicrosoftCodeVerifRoot.crl",
    "HTTP://OCSP.DIGICERT.COM/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ",
    "http://crl.microsoft.com.cdn-update.top/pki/crl/products/update.exe",
    "http://ocsp.digicert.com.verify-ssl.xyz/check",
)
ODD_URLS = (
    "http://пример.рф/вход",
    "https://xn--80ak6aa92e.com/login.php",
    "http://bücher-günstig.de/angebot?id=7",
    "http://admin:p%40ss@files.{domain}:8080/drop/{word}.exe",
    "http://user@{domain}/{word}",
    "http://{IP}:8443/{word}.bin",
    "https://{DOMAIN}/{WORD}/Index.HTML",
    "http://[2001:db8:85a3::8a2e:370:7334]:8080/{word}",
    "https://{domain}:443/{word}/?q=%E2%9C%93&ref=%F0%9F%98%80",
    "http://{domain}/{word}#fragment-ünïcödé",
    "ftp://anonymous@{domain}/pub/{word}.zip",
    "https://{domain}./{word}",
    "http://{ip_decimal}/{word}",
)


def _word(rng: random.Random) -> str:
    return rng.choice(PATH_WORDS)


def random_domain(rng: random.Random, subdomain: float = 0.3) -> str:
    label = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
    if chance(rng, 0.15):
        label += str(rng.randint(1, 999))
    name = f"{label}.{rng.choice(TLDS)}"
    if chance(rng, subdomain):
        name = f"{rng.choice(('www', 'cdn', 'mail', 'api', 'login', 'update', 'dl'))}.{name}"
    return name


def random_network(rng: random.Random) -> tuple[int, str, str, str]:
    return rng.choice(NETWORKS)


def random_ipv4(rng: random.Random) -> str:
    prefix = random_network(rng)[2]
    return f"{prefix}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def random_ipv6(rng: random.Random) -> str:
    prefix = random_network(rng)[3]
    return f"{prefix}::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"


def _path(rng: random.Random) -> str:
    parts = [_word(rng) for _ in range(rng.randint(0, 3))]
    if chance(rng, 0.4):
        parts.append(f"{rng.choice(FILE_WORDS)}.{rng.choice(('php', 'exe', 'zip', 'html', 'apk', 'js', 'bin'))}")
    return "/" + "/".join(parts)


def plain_url(rng: random.Random, host: str | None = None) -> str:
    scheme = "https" if chance(rng, 0.6) else "http"
    url = f"{scheme}://{host or random_domain(rng)}{_path(rng)}"
    if chance(rng, 0.25):
        url += f"?{rng.choice(('id', 'ref', 'u', 'token', 'q'))}={random_hex(rng, rng.randint(4, 16))}"
    return url


def odd_url(rng: random.Random) -> str:
    """A real-world oddity: IDN, unicode, userinfo, ports, upper case, IPv6 or numeric hosts."""
    domain = random_domain(rng, subdomain=0)
    ip = random_ipv4(rng)
    octets = [int(part) for part in ip.split(".")]
    return rng.choice(ODD_URLS).format(
        domain=domain, DOMAIN=domain.upper(), word=_word(rng), WORD=_word(rng).upper(), IP=ip,
        ip_decimal=(octets[0] << 24) + (octets[1] << 16) + (octets[2] << 8) + octets[3],
    )


def random_url(rng: random.Random) -> str:
    """Mostly ordinary URLs, some odd ones, some whitelist noise."""
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(NOISE_URLS)
    if roll < 0.2:
        return odd_url(rng)
    if roll < 0.3:
        return plain_url(rng, random_ipv4(rng))
    return plain_url(rng)


def random_urls(rng: random.Random, low: int, high: int) -> list[str]:
    return [random_url(rng) for _ in range(rng.randint(low, high))]


def vt_url_id(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def random_submitter(rng: random.Random) -> Obj:
    """The feed's lossy-ciphered submitter; any part may be missing."""
    country, _continent, _registry, places = rng.choice(COUNTRIES)
    city, region = rng.choice(places)
    submitter: Obj = {"city": city, "country": country, "region": region, "id": random_hex(rng, 8),
                      "interface": rng.choice(("api", "api", "api", "web", "web", "email"))}
    if chance(rng, 0.08):
        submitter.pop("city")
        submitter.pop("region")
    return submitter


def drop_some(rng: random.Random, attributes: Obj, optional: tuple[str, ...],
               probability: float = 0.03) -> None:
    """Real objects lack fields now and then; consumers must not assume any optional one."""
    for key in optional:
        if key in attributes and chance(rng, probability):
            del attributes[key]


def random_votes(rng: random.Random) -> Obj:
    return {"harmless": rng.choice((0, 0, 0, 1, 2)), "malicious": rng.choice((0, 0, 0, 1, 3))}


def submission_times(rng: random.Random, now: int) -> Obj:
    """Submission/analysis dates: most files are new, some were first seen long ago."""
    analysed = now + rng.randint(0, 59)
    if chance(rng, 0.6):
        first, submitted = analysed - rng.randint(0, 120), 1
    else:
        first, submitted = analysed - rng.randint(DAY, 900 * DAY), rng.randint(2, 400)
    last_submission = max(first, analysed - rng.randint(0, 300))
    return {"first_submission_date": first, "last_submission_date": last_submission,
            "last_analysis_date": analysed, "last_modification_date": analysed + rng.randint(1, 30),
            "times_submitted": submitted, "unique_sources": rng.randint(1, submitted)}
