"""What scanners say about a generated object: AV engines, URL scanners, categories, crowdsourced rules.

File objects get ~75 AV engines that each name a detection their vendor's way; URL, domain and
IP objects get URL scanners and vendor categories. The crowdsourced sections (threat
classification, YARA, Sigma, IDS, sandbox verdicts) live here too: VT has them mostly for
detected files, and behaviour reports share Sigma and the sandbox names.
"""

from __future__ import annotations

import random

from vt_dagster.emulator.values import (
    THREAT_CATEGORIES,
    Obj,
    chance,
    random_domain,
    random_hex,
    random_ipv4,
    random_url,
    sample,
)


def _counts(rng: random.Random, values: tuple | list, low: int, high: int) -> list[Obj]:
    """VT's `[{"count", "value"}]` lists, biggest count first."""
    chosen = sample(rng, values, low, high)
    counts = sorted((rng.randint(1, 30) for _ in chosen), reverse=True)
    return [{"count": count, "value": value} for count, value in zip(counts, chosen)]


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


def detection_values(rng: random.Random, family: str, category: str, platform: str,
                      md5: str) -> dict[str, str]:
    """One object's naming material, shared by all engines so engines agree like real ones."""
    return {"P": platform, "C": category.capitalize(), "F": family.capitalize(),
            "N": str(rng.randint(10_000_000, 99_999_999)), "H": random_hex(rng, 6),
            "L": "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=rng.randint(1, 3))),
            "M": md5[:12]}


def file_engine_results(rng: random.Random, verdict: float, values: dict[str, str],
                         mobile: bool, update: str) -> tuple[Obj, Obj]:
    """~75 `last_analysis_results` entries and their `last_analysis_stats`."""
    results: Obj = {}
    stats = {"harmless": 0, "type-unsupported": 0, "suspicious": 0, "confirmed-timeout": 0,
             "timeout": 0, "failure": 0, "malicious": 0, "undetected": 0}
    for name, version, template, mobile_only in FILE_ENGINES:
        if mobile_only != mobile and chance(rng, 0.9):
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


def url_engine_results(rng: random.Random, badness: float) -> tuple[Obj, Obj]:
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


URL_CATEGORY_SOURCES = ("Forcepoint ThreatSeeker", "Sophos", "BitDefender", "alphaMountain.ai",
                        "Xcitium Verdict Cloud", "Webroot")
URL_CATEGORIES = ("phishing", "malicious web sites", "information technology", "business",
                  "parked", "newly registered websites", "uncategorized", "search engines and portals",
                  "suspicious", "file sharing", "Malware Sites", "spam URLs", "compromised websites")


def url_categories(rng: random.Random) -> Obj:
    return {source: rng.choice(URL_CATEGORIES) for source in sample(rng, URL_CATEGORY_SOURCES, 0, 4)}


def threat_classification(rng: random.Random, family: str, category: str,
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


def yara_results(rng: random.Random, family: str) -> list[Obj]:
    results = []
    for ruleset, author, source in sample(rng, YARA_RULESETS, 1, 4):
        year = rng.randint(2019, 2025)
        suspicious = rng.choice(("Obfuscated", "Packed", "Base64_Encoded_URL", "PowerShell_Caret"))
        rule = rng.choice((f"MAL_{family.capitalize()}_{year}", f"win_{family}_auto", f"SUSP_{suspicious}",
                           f"Windows_Trojan_{family.capitalize()}_{random_hex(rng, 8)}"))
        results.append({"ruleset_id": random_hex(rng, 10), "rule_name": rule,
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


def add_sigma(rng: random.Random, obj: Obj) -> None:
    """sigma_analysis_results plus the stats/summary VT derives from them."""
    chosen = sample(rng, SIGMA_RULES, 1, 5)
    results, stats = [], {"critical": 0, "high": 0, "medium": 0, "low": 0}
    for title, level in chosen:
        stats[level] += 1
        results.append({
            "rule_title": title, "rule_source": rng.choice(SIGMA_SOURCES), "rule_level": level,
            "rule_id": random_hex(rng, 64), "rule_author": rng.choice(SIGMA_AUTHORS),
            "rule_description": f"Detects {title.lower()}",
            "match_context": [{"values": {
                "EventID": "1", "Image": "C:\\Windows\\System32\\cmd.exe",
                "CommandLine": f"cmd.exe /c schtasks /create /tn {random_hex(rng, 6)} "
                               f"/tr %TEMP%\\{random_hex(rng, 8)}.exe",
                "ParentImage": f"C:\\Users\\user\\AppData\\Local\\Temp\\{random_hex(rng, 8)}.exe",
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


def add_ids(rng: random.Random, obj: Obj, family: str) -> None:
    results, stats = [], {"info": 0, "high": 0, "low": 0, "medium": 0}
    for message, category, severity in sample(rng, IDS_RULES, 1, 3):
        stats[severity] += 1
        sid = rng.randint(2_000_000, 2_060_000)
        msg = message.replace("{F}", family.capitalize())
        context = {"dest_ip": random_ipv4(rng), "dest_port": rng.choice((80, 443, 8080, 53, 4444))}
        if chance(rng, 0.6):
            context["hostname"] = random_domain(rng)
        if chance(rng, 0.4):
            context["url"] = random_url(rng)
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


def sandbox_verdicts(rng: random.Random, family: str, malicious: bool) -> Obj:
    verdicts: Obj = {}
    for name in sample(rng, SANDBOXES[:10], 1, 3):
        verdict: Obj = {
            "category": "malicious" if malicious else rng.choice(("harmless", "undetected")),
            "sandbox_name": name,
            "malware_classification": ["MALWARE", "TROJAN"] if malicious else ["CLEAN"],
        }
        if malicious:
            verdict["confidence"] = rng.choice((30, 50, 70, 90, 100))
            if chance(rng, 0.5):
                verdict["malware_names"] = [family.capitalize()]
        verdicts[name] = verdict
    return verdicts
