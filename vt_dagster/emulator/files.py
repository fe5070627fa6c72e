"""`file` objects of the files feed: hashes, names, AV verdicts, type sections, relationships.

One object as `GET /files/{id}` returns it, with the feed's `context_attributes` (download URL,
submitter); the type-specific sections come from `file_types`, the verdicts from `verdicts`.
"""

from __future__ import annotations

import datetime as dt
import random

from vt_dagster.emulator.file_types import FILE_TYPE_WEIGHTS, FILE_TYPES
from vt_dagster.emulator.values import (
    DAY,
    FILE_WORDS,
    THREAT_CATEGORIES,
    VT_API_URL,
    Obj,
    b64ish,
    chance,
    drop_some,
    epoch,
    random_hex,
    random_submitter,
    random_urls,
    random_votes,
    sample,
    submission_times,
    utc_date,
    vt_url_id,
)
from vt_dagster.emulator.verdicts import (
    add_ids,
    add_sigma,
    detection_values,
    file_engine_results,
    sandbox_verdicts,
    threat_classification,
    yara_results,
)


def _ssdeep(rng: random.Random, size: int) -> str:
    block = 3
    while block * 64 < size:
        block *= 2
    return f"{block}:{b64ish(rng, rng.randint(30, 64))}:{b64ish(rng, rng.randint(12, 40))}"


def _tlsh(rng: random.Random) -> str:
    return "T1" + random_hex(rng, 70).upper()


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
    number = rng.randint(1, 9999) if chance(rng, 0.5) else ""
    return f"{word}{separator}{number}.{extension}"


def _file_names(rng: random.Random, extension: str) -> list[str]:
    names = [_file_name(rng, extension) for _ in range(rng.randint(1, 4))]
    if chance(rng, 0.15):
        names.append(rng.choice(UNICODE_NAMES))
    if chance(rng, 0.2):
        user = rng.choice(("admin", "user", "Администратор"))
        names.append(f"C:\\Users\\{user}\\AppData\\Local\\Temp\\{random_hex(rng, 8)}.{extension}")
    if chance(rng, 0.3):
        names.append(random_hex(rng, 64))
    return names


def _file_relationships(rng: random.Random) -> Obj:
    """contacted/embedded/in-the-wild URLs, as VT ships them in `relationships`."""
    relationships: Obj = {}
    for relation in ("contacted_urls", "embedded_urls", "itw_urls"):
        if chance(rng, 0.25):
            urls = random_urls(rng, 1, 8)
            relationships[relation] = {
                "data": [{"type": "url", "id": vt_url_id(url), "context_attributes": {"url": url}} for url in urls]
            }
    return relationships


def _vhash(rng: random.Random) -> str:
    choices = (f"{rng.randint(10**8, 10**9)}{random_hex(rng, 8)}", f"0{rng.randint(10**7, 10**8)}\"z",
               random_hex(rng, 32))
    return rng.choice(choices)


def _file_context(rng: random.Random) -> Obj:
    token = b64ish(rng, 96).replace("/", "_").replace("+", "-")
    return {"download_url": f"{VT_API_URL}/feeds/files/{token}/download", "submitter": random_submitter(rng)}


def file_object(rng: random.Random, batch_time: dt.datetime) -> Obj:
    ts = epoch(batch_time)
    kind = rng.choices(FILE_TYPES, FILE_TYPE_WEIGHTS)[0]
    md5, sha1, sha256 = random_hex(rng, 32), random_hex(rng, 40), random_hex(rng, 64)
    size = int(rng.lognormvariate(11.5, 1.6)) + 64
    names = _file_names(rng, kind.extension)
    family, category = rng.choice(kind.families), rng.choice(THREAT_CATEGORIES)
    verdict = 0.0 if chance(rng, 0.45) else rng.uniform(0.03, 0.85)
    values = detection_values(rng, family, category, kind.platform, md5)
    engine_update = utc_date(ts - rng.randint(0, 2) * DAY, "%Y%m%d")
    results, stats = file_engine_results(rng, verdict, values, kind.tag == "apk", engine_update)
    attributes: Obj = {
        "type_description": kind.description, "type_tag": kind.tag, "type_extension": kind.extension,
        "type_tags": sample(rng, (kind.tag, "executable", "windows", "android", "document", "text"), 1, 3),
        "md5": md5, "sha1": sha1, "sha256": sha256, "ssdeep": _ssdeep(rng, size), "size": size,
        "magic": kind.magic, "names": names, "meaningful_name": names[0],
        "trid": [{"file_type": kind.trid, "probability": round(rng.uniform(40, 99), 1)},
                 {"file_type": "Generic Win/DOS Executable", "probability": round(rng.uniform(0, 20), 1)}],
        "tags": sample(rng, (kind.tag,) + FILE_TAGS, 0, 8),
        "reputation": rng.choice((0, 0, 0, -1, -5, -23, 3)), "total_votes": random_votes(rng),
        "last_analysis_stats": stats, "last_analysis_results": results,
        "downloadable": True, "capabilities_tags": [],
    }
    attributes.update(submission_times(rng, ts))
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
        attributes["popular_threat_classification"] = threat_classification(rng, family, category, families)
    if chance(rng, likely):
        attributes["crowdsourced_yara_results"] = yara_results(rng, family)
    if chance(rng, likely * 0.8):
        add_sigma(rng, attributes)
    if chance(rng, likely * 0.5):
        add_ids(rng, attributes, family)
    if chance(rng, likely):
        attributes["sandbox_verdicts"] = sandbox_verdicts(rng, family, malicious)
    if chance(rng, 0.05):
        attributes.pop("names")
    if chance(rng, 0.05):
        attributes["tags"] = []
    drop_some(rng, attributes, FILE_OPTIONAL)
