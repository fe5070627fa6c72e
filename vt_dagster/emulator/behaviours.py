"""`file_behaviour` objects: sandbox reports of what a file did when it ran.

Processes, files written/dropped/deleted, registry keys (persistence among run noise, and now
and then hundreds of tracing keys), DNS, traffic, HTTP, MITRE techniques and signatures. One
file is often run in several sandboxes, so a batch's reports share sha256s (`behaviour_objects`).
"""

from __future__ import annotations

import datetime as dt
import random

from vt_dagster.emulator.values import (
    FAMILIES_WIN,
    FILE_WORDS,
    VT_API_URL,
    Obj,
    b64ish,
    chance,
    drop_some,
    epoch,
    plain_url,
    random_domain,
    random_hex,
    random_ipv4,
    random_urls,
    sample,
)
from vt_dagster.emulator.verdicts import SANDBOXES, add_sigma

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
               f"powershell.exe -NoP -w hidden -enc {b64ish(rng, 40)}",
               "C:\\Windows\\SysWOW64\\WerFault.exe -u -p 4242 -s 312",
               f"schtasks.exe /create /tn Updater{rng.randint(1, 99)} /tr {temp} /sc minute",
               "C:\\Windows\\System32\\svchost.exe -k netsvcs")
    return sample(rng, options, 1, 5)


def _files_written(rng: random.Random, noisy: bool) -> list[str]:
    written = [f"{ROAMING}\\{random_hex(rng, 6)}\\{rng.choice(FILE_WORDS)}.{rng.choice(('exe', 'dat', 'tmp', 'log'))}"
               for _ in range(rng.randint(0, 8))]
    if noisy:  # a run that unpacks or caches a lot lists every file it touched
        written += [f"{TEMP}\\{random_hex(rng, 8)}.tmp" for _ in range(rng.randint(90, 220))]
    return written


def _files_dropped(rng: random.Random, implant: str) -> list[Obj]:
    """Dropped files: the implant first; hashes and types are not always given (some
    sandboxes list paths only)."""
    paths = [implant] if chance(rng, 0.5) else []
    paths += [f"%TEMP%\\{random_hex(rng, 8)}.{rng.choice(tuple(DROPPED_TYPES))}" for _ in range(rng.randint(0, 4))]
    dropped: list[Obj] = []
    for path in paths:
        item: Obj = {"path": path}
        if chance(rng, 0.85):
            item["sha256"] = random_hex(rng, 64)
        if chance(rng, 0.5):
            item["type"] = DROPPED_TYPES[path.rpartition(".")[2]]
        dropped.append(item)
    return dropped


def _registry_keys_set(rng: random.Random, implant: str, noisy: bool) -> list[Obj]:
    """Persistence keys (half of the runs) among the noise every run makes; a noisy run
    writes hundreds of tracing keys, as real ones do, and may bury the persistence among them."""
    name = implant.rsplit("\\", 1)[-1].partition(".")[0]
    keys = [{"key": key} if value is None else {"key": key, "value": value}
            for key, value in sample(rng, NOISE_KEYS, 0, 3)]
    if chance(rng, 0.5):
        keys += [{"key": key.format(name=name), "value": value.format(path=implant)}
                 for key, value in sample(rng, PERSISTENCE_KEYS, 1, 2)]
    if noisy:
        keys += [{"key": f"HKLM\\Software\\Microsoft\\Tracing\\{name}_RAS{random_hex(rng, 4)}\\EnableFileTracing",
                  "value": "0"} for _ in range(rng.randint(90, 220))]
    rng.shuffle(keys)
    return keys


def _files_deleted(rng: random.Random, written: list[str], implant: str) -> list[str]:
    """Clean-up: temporary files, sometimes the implant itself."""
    deleted = [f"{TEMP}\\__PSScriptPolicyTest_{random_hex(rng, 8)}.ps1" for _ in range(rng.randint(0, 3))]
    deleted += sample(rng, written, 0, 2)
    if chance(rng, 0.2):
        deleted.append(implant)
    return deleted


def _dns_lookups(rng: random.Random, hosts: list[str]) -> list[Obj]:
    return [{"hostname": host, "resolved_ips": [random_ipv4(rng)]} if chance(rng, 0.8) else {"hostname": host}
            for host in hosts]


def _ip_traffic(rng: random.Random) -> list[Obj]:
    return [{"destination_ip": random_ipv4(rng), "destination_port": rng.choice((80, 443, 8080, 4444, 53)),
             "transport_layer_protocol": rng.choice(("TCP", "UDP"))} for _ in range(rng.randint(0, 5))]


def _http_conversations(rng: random.Random, hosts: list[str]) -> list[Obj]:
    urls = [plain_url(rng, host) for host in hosts] + random_urls(rng, 0, 4)
    return [{"url": url, "request_method": rng.choice(("GET", "POST")),
             "response_status_code": rng.choice((200, 404, 302)), "request_headers": {"User-Agent": USER_AGENT}}
            for url in urls]


def _mitre_techniques(rng: random.Random) -> list[Obj]:
    return [{"id": technique, "signature_description": description, "severity": rng.choice(SEVERITIES)}
            for technique, description in sample(rng, MITRE, 0, 6)]


def _signature_matches(rng: random.Random, family: str) -> list[Obj]:
    names = ("contain obfuscated stackstrings", "check for debugger", "persist via Run registry key",
             f"{family} config")
    return [{"id": random_hex(rng, 8), "name": name, "format": rng.choice(("SIG_FORMAT_YARA", "SIG_FORMAT_CAPA")),
             "authors": ["@mr-tz"], "description": f"{name} detected"}
            for name in sample(rng, names, 0, 3)]


def behaviour_object(rng: random.Random, batch_time: dt.datetime, sha256: str) -> Obj:
    ts = epoch(batch_time)
    sandbox = rng.choice(SANDBOXES)
    malicious = chance(rng, 0.6)
    family = rng.choice(FAMILIES_WIN)
    hosts = [random_domain(rng) for _ in range(rng.randint(0, 5))]
    implant = f"{ROAMING}\\{rng.choice(FILE_WORDS)}{rng.randint(1, 99)}.exe"
    noisy = chance(rng, 0.04)
    written = _files_written(rng, noisy)
    attributes: Obj = {
        "sandbox_name": sandbox, "analysis_date": ts - rng.randint(0, 3000),
        "last_modification_date": ts + rng.randint(0, 59), "behash": random_hex(rng, 32),
        "verdicts": ["MALWARE", rng.choice(("TROJAN", "RANSOM", "STEALER", "BACKDOOR"))] if malicious else [],
        "tags": sample(rng, BEHAVIOUR_TAGS, 0, 5),
        "processes_created": _process_paths(rng, sha256),
        "command_executions": _process_paths(rng, sha256),
        "files_written": written,
        "files_dropped": _files_dropped(rng, implant),
        "files_deleted": _files_deleted(rng, written, implant),
        "registry_keys_set": _registry_keys_set(rng, implant, noisy),
        "registry_keys_deleted": sample(rng, DELETED_KEYS, 0, 2),
        "mutexes_created": [rng.choice(("Global\\", "Local\\", "")) + random_hex(rng, 16)
                            for _ in range(rng.randint(0, 3))],
        "dns_lookups": _dns_lookups(rng, hosts),
        "ip_traffic": _ip_traffic(rng),
        "http_conversations": _http_conversations(rng, hosts),
        "mitre_attack_techniques": _mitre_techniques(rng),
        "signature_matches": _signature_matches(rng, family),
        "has_html_report": chance(rng, 0.5), "has_pcap": chance(rng, 0.5), "has_evtx": False, "has_memdump": False,
    }
    drop_some(rng, attributes, BEHAVIOUR_OPTIONAL)
    if chance(rng, 0.3):
        sigma: Obj = {}
        add_sigma(rng, sigma)
        attributes["sigma_analysis_results"] = sigma["sigma_analysis_results"]
    behaviour_id = f"{sha256}_{sandbox}"
    return {"type": "file_behaviour", "id": behaviour_id,
            "links": {"self": f"{VT_API_URL}/file_behaviours/{behaviour_id}"}, "attributes": attributes}


def behaviour_objects(rng: random.Random, batch_time: dt.datetime, count: int) -> list[Obj]:
    """Sandbox reports: one file is often run in several sandboxes, so ids share a sha256."""
    objects: list[Obj] = []
    sha256 = random_hex(rng, 64)
    for _ in range(count):
        if not chance(rng, 0.35):
            sha256 = random_hex(rng, 64)
        objects.append(behaviour_object(rng, batch_time, sha256))
    return objects
