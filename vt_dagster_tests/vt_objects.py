"""Realistic and maximal VT objects for every feed: a line of each with every field its summarizer reads."""

from __future__ import annotations

from typing import Any

from vt_dagster.summarize import MAX_BEHAVIOUR_PATHS

VT_API = "https://www.virustotal.com/api/v3"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
RUN_KEY = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"


def _file_object() -> dict[str, Any]:
    """A file feed line with every field the file summarizer reads (an APK-ish PE hybrid)."""
    return {
        "type": "file",
        "id": SHA256,
        "links": {"self": f"{VT_API}/files/{SHA256}"},
        "attributes": {
            "md5": "098f6bcd4621d373cade4e832627b4f6",
            "sha1": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
            "sha256": SHA256,
            "ssdeep": "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C",
            "tlsh": "T1D8A022A2A3C83E2C8F8D6D4E8E2A4F0E0C3C0B0A0A0E0C3C0B0A0A0E0C3C0B0A0A0E",
            "vhash": "017067655d1d1bz4!z",
            "authentihash": "4f2a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",
            "size": 1_532_416,
            "names": ["invoice.exe", "invoice.pdf.exe", "invoice.exe", "  "],
            "meaningful_name": "invoice.exe",
            "type_tag": "peexe",
            "type_description": "Win32 EXE",
            "type_extension": "exe",
            "magic": "PE32 executable for MS Windows (GUI) Intel 80386 32-bit",
            "tags": ["peexe", "signed", "overlay"],
            "capabilities_tags": ["keylogger", "screenshot"],
            "packers": {"PEiD": "UPX -> www.upx.sourceforge.net", "F-PROT": "UPX"},
            "exiftool": {"MIMEType": "application/octet-stream", "FileType": "Win32 EXE"},
            "pe_info": {"imphash": "f34d5f2d4577ed6d9ceec516c1f5a744", "timestamp": 1700000000},
            "signature_info": {
                "verified": "Signed",
                "signers": "Evil Corp Ltd; Sectigo Public Code Signing CA R36; Sectigo",
                "signers details": [
                    {"name": "Evil Corp Ltd", "status": "Valid", "thumbprint": "AB12"},
                    {"name": "Sectigo Public Code Signing CA R36", "status": "Valid"},
                ],
                "original name": "client.exe",
                "product": "Invoice Viewer",
                "description": "Invoice Viewer Setup",
                "file version": "1.2.3.4",
            },
            "creation_date": 1_700_000_000,
            "first_submission_date": 1_717_000_000,
            "last_submission_date": 1_717_240_000,
            "first_seen_itw_date": 1_716_990_000,
            "last_seen_itw_date": 1_717_230_000,
            "last_analysis_date": 1_717_240_100,
            "last_modification_date": 1_717_240_200,
            "times_submitted": 3,
            "unique_sources": 2,
            "reputation": -12,
            "downloadable": True,
            "total_votes": {"harmless": 0, "malicious": 4},
            "main_icon": {"raw_md5": "0b5ad8f6f8d3a6e5e2c8e76c1d3d8f11",
                          "dhash": "71b0b0d4d4b0b071"},
            "last_analysis_stats": {
                "harmless": 0, "type-unsupported": 4, "suspicious": 1, "confirmed-timeout": 0,
                "timeout": 1, "failure": 2, "malicious": 55, "undetected": 10, "new-category": 3,
            },
            "popular_threat_classification": {
                "suggested_threat_label": "trojan.agenttesla/msil",
                "popular_threat_category": [{"count": 30, "value": "trojan"}],
                "popular_threat_name": [
                    {"count": 12, "value": "agenttesla"}, {"count": 3, "value": "msil"},
                ],
            },
            "crowdsourced_yara_results": [
                {"rule_name": "AgentTesla_Strings", "ruleset_name": "agenttesla",
                 "source": "https://github.com/example/rules", "author": "someone"},
                {"rule_name": "UPX_Packed", "ruleset_name": "packers"},
            ],
            "sigma_analysis_results": [
                {"rule_title": "Scheduled Task Creation", "rule_level": "low", "rule_id": "x1"},
                {"rule_title": "Suspicious PowerShell", "rule_level": "high", "rule_id": "x2"},
            ],
            "sigma_analysis_stats": {"critical": 0, "high": 1, "medium": 0, "low": 1},
            "crowdsourced_ids_results": [
                {"rule_msg": "ET MALWARE AgentTesla Exfil Via SMTP", "alert_severity": "high",
                 "alert_context": [{"dest_ip": "203.0.113.9", "dest_port": 587}]},
            ],
            "crowdsourced_ids_stats": {"high": 1, "medium": 0, "low": 0, "info": 2},
            "sandbox_verdicts": {
                "Zenbox": {"category": "malicious", "confidence": 80, "sandbox_name": "Zenbox",
                           "malware_classification": ["MALWARE", "TROJAN"],
                           "malware_names": ["AgentTesla"]},
                "C2AE": {"category": "malicious", "sandbox_name": "C2AE",
                         "malware_classification": ["MALWARE"], "malware_names": []},
            },
            "androguard": {
                "Package": "com.example.invoice",
                "StringsInformation": [
                    "https://c2.badexample.net/api/v1/register",
                    "Visit HTTP://promo.badexample.net/x?id=1 now",
                    "http://schemas.android.com/apk/res/android",
                    "content://sms/inbox",
                    "no url here",
                ],
            },
            "network_infrastructure": [
                "http://c2.badexample.net/gate.php",
                "ocsp.digicert.com",
                {"url": "http://198.51.100.4:8080/panel"},
            ],
        },
        "relationships": {
            "contacted_urls": {"data": [
                {"type": "url", "id": "a" * 64,
                 "context_attributes": {"url": "http://c2.badexample.net/gate.php"}},
                {"type": "url", "id": "b" * 64,
                 "context_attributes": {"url": "http://crl.microsoft.com/pki/x.crl"}},
            ]},
            "embedded_urls": {"data": [
                {"type": "url", "id": "c" * 64,
                 "attributes": {"url": "https://paste.example/raw/1"}},
                "http://schemas.microsoft.com/SMI/2005/WindowsSettings",
            ]},
            "itw_urls": {"data": [
                {"type": "url", "id": "d" * 64,
                 "context_attributes": {"url": "https://drive.google.com/uc?id=1&export=download"}},
            ]},
        },
        "context_attributes": {
            "download_url": "https://www.virustotal.com/api/v3/feeds/files/TOKEN/download",
            "submitter": {"city": "ashburn", "country": "US", "region": "virginia",
                          "id": "4f3c2a1b", "interface": "api"},
        },
    }


def _url_object() -> dict[str, Any]:
    return {
        "type": "url",
        "id": "e" * 64,
        "attributes": {
            "url": "http://login.badexample.net/owa/?user=a@b.example",
            "last_final_url": "https://login.badexample.net/owa/auth.php",
            "redirection_chain": [
                "http://login.badexample.net/owa/?user=a@b.example",
                "https://www.google.com/url?q=https://login.badexample.net/owa/auth.php",
                "https://login.badexample.net/owa/auth.php",
            ],
            "outgoing_links": [
                "https://exfil.badexample.org/collect",
                "http://www.w3.org/1999/xhtml",
                "https://www.microsoft.com/",
                "https://exfil.badexample.org/collect",
            ],
            "title": "  Outlook Web App  ",
            "tld": "net",
            "last_http_response_code": 200,
            "last_http_response_content_length": 5321,
            "last_http_response_content_sha256": "f" * 64,
            "favicon": {"raw_md5": "7a5e3d2c1b0a99887766554433221100", "dhash": "e0e0f0f0b0b0e0e0"},
            "categories": {"Forcepoint ThreatSeeker": "phishing", "Sophos": "phishing",
                           "BitDefender": "phishing and fraud"},
            "targeted_brand": {"Phishtank": "Microsoft", "OpenPhish": "Microsoft"},
            "threat_names": ["Phishing.Outlook"],
            "tags": ["phishing"],
            "reputation": -5,
            "times_submitted": 2,
            "first_submission_date": 1_717_200_000,
            "last_submission_date": 1_717_230_000,
            "last_analysis_date": 1_717_230_060,
            "last_modification_date": 1_717_230_120,
            "last_analysis_stats": {"harmless": 60, "malicious": 8, "suspicious": 1,
                                    "undetected": 20, "timeout": 0},
            "total_votes": {"harmless": 0, "malicious": 1},
        },
        "context_attributes": {
            "url": "http://login.badexample.net/owa/?user=a@b.example",
            "submitter": {"city": "paris", "country": "FR", "region": "ile-de-france",
                          "id": "99aa", "interface": "web"},
        },
    }


def _domain_object() -> dict[str, Any]:
    return {
        "data": {
            "type": "domain",
            "id": "badexample.net",
            "attributes": {
                "tld": "net",
                "registrar": "NameCheap, Inc.",
                "creation_date": 1_710_000_000,
                "last_update_date": 1_715_000_000,
                "last_dns_records_date": 1_717_000_000,
                "last_dns_records": [
                    {"type": "A", "value": "203.0.113.7", "ttl": 300},
                    {"type": "AAAA", "value": "2001:db8::7", "ttl": 300},
                    {"type": "MX", "value": "mx.badexample.net", "priority": 10},
                    {"type": "NS", "value": "ns1.dns.example"},
                    {"type": "A", "value": "203.0.113.7"},
                ],
                "jarm": "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5",
                "last_https_certificate_date": 1_717_000_100,
                "last_https_certificate": {
                    "thumbprint": "1" * 40,
                    "thumbprint_sha256": "2" * 64,
                    "serial_number": "0a1b2c",
                    "issuer": {"CN": "R3", "O": "Let's Encrypt", "C": "US"},
                    "subject": {"CN": "badexample.net"},
                    "extensions": {
                        "subject_alternative_name": ["badexample.net", "*.badexample.net"],
                    },
                },
                "popularity_ranks": {
                    "Cisco Umbrella": {"rank": 950_000, "timestamp": 1_717_000_000},
                    "Tranco": {"rank": 120_000, "timestamp": 1_717_000_000},
                },
                "categories": {"Webroot": "Phishing and Other Frauds", "Sophos": "phishing"},
                "favicon": {"raw_md5": "7a5e3d2c1b0a99887766554433221100",
                            "dhash": "e0e0f0f0b0b0e0e0"},
                "tags": ["dga"],
                "reputation": -20,
                "last_analysis_date": 1_717_100_000,
                "last_modification_date": 1_717_100_100,
                "last_analysis_stats": {"harmless": 50, "malicious": 9, "suspicious": 0,
                                        "undetected": 30, "timeout": 0},
                "total_votes": {"harmless": 0, "malicious": 3},
            },
        }
    }


def _ip_object() -> dict[str, Any]:
    return {
        "type": "ip_address",
        "id": "203.0.113.7",
        "attributes": {
            "asn": 64_500,
            "as_owner": "EXAMPLE-AS",
            "country": "NL",
            "continent": "EU",
            "network": "203.0.113.0/24",
            "regional_internet_registry": "RIPE NCC",
            "jarm": "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5",
            "last_https_certificate_date": 1_717_000_100,
            "last_https_certificate": {
                "thumbprint": "3" * 40, "thumbprint_sha256": "4" * 64, "serial_number": "ff01",
                "issuer": {"CN": "R3", "O": "Let's Encrypt"}, "subject": {"CN": "badexample.net"},
                "extensions": {"subject_alternative_name": ["badexample.net"]},
            },
            "tags": [],
            "reputation": 0,
            "last_analysis_date": 1_717_100_000,
            "last_modification_date": 1_717_100_100,
            "last_analysis_stats": {"harmless": 70, "malicious": 2, "suspicious": 0,
                                    "undetected": 17, "timeout": 0},
            "total_votes": {"harmless": 1, "malicious": 0},
        },
    }


def _behaviour_object() -> dict[str, Any]:
    """A file-behaviours feed line as VT's sandboxes report it."""
    dropped = "5" * 64
    schtasks = '"C:\\Windows\\System32\\schtasks.exe" /Create /TN Updates /XML tmp1.xml'
    return {
        "type": "file_behaviour",
        "id": f"{SHA256}_VirusTotal Jujubox",
        "links": {"self": f"{VT_API}/file_behaviours/{SHA256}_VirusTotal Jujubox"},
        "attributes": {
            "sandbox_name": "VirusTotal Jujubox",
            "analysis_date": 1_717_241_000,
            "behash": "5e2f0c8f0b1d3c2a9e8d7c6b5a493827",
            "has_pcap": True,
            "tags": ["DETECT_DEBUG_ENVIRONMENT", "LONG_SLEEPS", "PERSISTENCE"],
            "verdicts": ["MALWARE", "TROJAN"],
            "verdict_labels": ["AgentTesla"],
            "verdict_confidence": 85,
            "processes_created": [
                "C:\\Users\\user\\AppData\\Local\\Temp\\invoice.exe",
                schtasks,
            ],
            "command_executions": [
                schtasks,
            ],
            "mutexes_created": ["Global\\7d1f4b3a", "Local\\ZonesCacheCounterMutex"],
            "files_dropped": [
                {"path": "C:\\Users\\user\\AppData\\Roaming\\svchost.exe", "sha256": dropped,
                 "type": "Win32 EXE"},
                {"path": "C:\\Users\\user\\tmp1.xml"},
            ],
            "files_written": [
                "C:\\Users\\user\\AppData\\Roaming\\svchost.exe",
                "C:\\Windows\\System32\\Tasks\\Updates",
            ],
            "files_deleted": ["C:\\Users\\user\\tmp1.xml"],
            "registry_keys_set": [
                {"key": f"{RUN_KEY}\\Updates",
                 "value": "C:\\Users\\user\\AppData\\Roaming\\svchost.exe"},
                {"key": "HKLM\\SYSTEM\\ControlSet001\\Services\\Updates\\ImagePath",
                 "value": "\\??\\C:\\Users\\user\\AppData\\Roaming\\svchost.exe"},
            ],
            "registry_keys_deleted": [
                "HKCU\\Software\\Classes\\mscfile\\shell\\open\\command",
            ],
            "registry_keys_opened": ["HKLM\\Software\\Microsoft\\Cryptography"],
            "dns_lookups": [
                {"hostname": "c2.badexample.net", "resolved_ips": ["203.0.113.7"]},
                {"hostname": "ocsp.digicert.com", "resolved_ips": ["192.0.2.80"]},
                {"hostname": "nx.badexample.org"},
            ],
            "ip_traffic": [
                {"destination_ip": "203.0.113.7", "destination_port": 443,
                 "transport_layer_protocol": "TCP"},
                {"destination_ip": "198.51.100.53", "destination_port": 53,
                 "transport_layer_protocol": "UDP"},
            ],
            "http_conversations": [
                {"url": "http://c2.badexample.net/gate.php", "request_method": "POST",
                 "response_status_code": 200},
                {"url": "http://crl.microsoft.com/pki/crl/products/MicCodSigPCA.crl",
                 "request_method": "GET"},
            ],
            "mitre_attack_techniques": [
                {"id": "T1053.005", "signature_description": "Scheduled Task",
                 "severity": "IMPACT_SEVERITY_MEDIUM"},
                {"id": "T1055", "signature_description": "Process Injection"},
            ],
            "signature_matches": [
                {"name": "Creates a scheduled task", "format": "SIG_FORMAT_YARA",
                 "severity": "SIG_SEVERITY_MEDIUM"},
            ],
            "sigma_analysis_results": [
                {"rule_title": "Scheduled Task Creation", "rule_level": "low"},
            ],
            "ids_alerts": [
                {"rule_msg": "ET MALWARE AgentTesla CnC Checkin", "alert_severity": "high"},
            ],
        },
    }


MAXIMAL_OBJECTS = {
    "files": _file_object, "urls": _url_object, "domains": _domain_object,
    "ip_addresses": _ip_object, "file_behaviours": _behaviour_object,
}


def overfull_behaviour_object() -> dict[str, Any]:
    """A noisy sandbox report: every trace list holds more distinct values than the cap."""
    extra = MAX_BEHAVIOUR_PATHS + 7
    folder = "C:\\Users\\user\\AppData\\Local\\Temp"
    return {
        "type": "file_behaviour",
        "id": f"{SHA256}_Zenbox",
        "attributes": {
            "sandbox_name": "Zenbox",
            "registry_keys_set": [
                {"key": f"HKLM\\Software\\Microsoft\\Tracing\\app{n}\\EnableFileTracing", "value": "0"}
                for n in range(extra)
            ],
            "registry_keys_deleted": [f"HKCU\\Software\\Temp\\k{n}" for n in range(extra)],
            "files_dropped": [{"path": f"{folder}\\d{n}.tmp", "sha256": f"{n:064x}"} for n in range(extra)],
            "files_written": [f"{folder}\\w{n}.tmp" for n in range(extra)],
            "files_deleted": [f"{folder}\\x{n}.tmp" for n in range(extra)],
        },
    }
