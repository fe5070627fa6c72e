"""The VT feeds emulator: generated objects look like VT's, and the HTTP API behaves like VT's.

Server tests start a real emulator on loopback and talk to it with `requests`; the clock is
fixed so availability windows are exact.
"""

from __future__ import annotations

import argparse
import bz2
import datetime as dt
import hashlib
import io
import ipaddress
import json
import logging
import random
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from vt_dagster.emulator import (
    DEFAULT_API_KEY,
    EmulatorConfig,
    FeedsEmulator,
    add_arguments,
    generate_batch,
    generate_object,
    generate_objects,
)
from vt_dagster.emulator.batches import index_batch_dir
from vt_dagster.emulator.cli import config_from_args
from vt_dagster.feeds import FEEDS, get_feed
from vt_dagster.summarize import MAX_BEHAVIOUR_PATHS

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 5, 1, 12, 30, 30, tzinfo=UTC)
NEWEST_MINUTE = "202405011130"  # NOW - 60 minutes
TOO_NEW_MINUTE = "202405011131"
OLDEST_MINUTE = "202404241230"  # NOW - 7 days
TOO_OLD_MINUTE = "202404241229"
NEWEST_HOUR = "2024050110"  # NOW - 2 hours
TOO_NEW_HOUR = "2024050111"
SMALL = {"files": 2, "urls": 2, "domains": 1, "ip_addresses": 1, "file_behaviours": 1}
HEX = set("0123456789abcdef")


def small_config(**overrides: object) -> EmulatorConfig:
    settings: dict[str, object] = {"now": NOW, "objects_per_minute": dict(SMALL), "seed": 3}
    settings.update(overrides)
    return EmulatorConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def vt() -> Iterator[FeedsEmulator]:
    with FeedsEmulator(small_config()) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as client:
        client.headers["x-apikey"] = DEFAULT_API_KEY
        yield client


def feed_url(emulator: FeedsEmulator, feed: str, key: str) -> str:
    return f"{emulator.base_url}/feeds/{get_feed(feed).api_path}/{key}"


def hourly_url(emulator: FeedsEmulator, feed: str, hour: str) -> str:
    return f"{emulator.base_url}/feeds/{get_feed(feed).api_path}/hourly/{hour}"


def assert_vt_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def lines_of(batch: bytes) -> list[dict]:
    return [json.loads(line) for line in bz2.decompress(batch).decode("utf-8").splitlines()]


def all_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_strings(item)


# ---------------------------------------------------------------------------------------------
# generator (pure, no server)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("feed_name", list(FEEDS))
def test_every_feed_generates_valid_vt_objects(feed_name: str) -> None:
    feed = FEEDS[feed_name]
    objects = generate_objects(feed_name, "202405011100", 5, 40)
    assert objects
    for obj in objects:
        assert obj["type"] == feed.object_type
        assert obj["id"] and isinstance(obj["attributes"], dict) and obj["attributes"]
        assert obj["links"]["self"].endswith(f"/{obj['id']}")
        assert json.loads(json.dumps(obj)) == obj
    check = {
        "files": check_file, "urls": check_url, "domains": check_domain,
        "ip_addresses": check_ip, "file_behaviours": check_behaviour,
    }[feed_name]
    for obj in objects:
        check(obj)


def check_file(obj: dict) -> None:
    attributes = obj["attributes"]
    assert obj["id"] == attributes["sha256"] and len(obj["id"]) == 64 and set(obj["id"]) <= HEX
    assert len(attributes["md5"]) == 32 and len(attributes["sha1"]) == 40
    minute = int(dt.datetime(2024, 5, 1, 11, 0, tzinfo=UTC).timestamp())
    assert minute <= attributes["last_analysis_date"] < minute + 60
    assert attributes["first_submission_date"] <= attributes["last_submission_date"]
    submitter = obj["context_attributes"]["submitter"]
    assert len(submitter["country"]) == 2 and submitter["country"].isupper()
    assert submitter["interface"] and submitter["id"]
    assert obj["context_attributes"]["download_url"].startswith("https://")


def check_url(obj: dict) -> None:
    url = obj["attributes"]["url"]
    assert obj["id"] == hashlib.sha256(url.encode("utf-8")).hexdigest()
    assert "submitter" in obj["context_attributes"]
    assert sum(obj["attributes"]["last_analysis_stats"].values()) == len(obj["attributes"]["last_analysis_results"])


def check_domain(obj: dict) -> None:
    records = obj["attributes"].get("last_dns_records", [{"type": "NS"}, {"type": "SOA"}])
    assert {"NS", "SOA"} <= {record["type"] for record in records}
    assert "." in obj["id"]


def check_ip(obj: dict) -> None:
    ipaddress.ip_address(obj["id"])
    assert obj["attributes"]["last_analysis_results"]


def check_behaviour(obj: dict) -> None:
    sha256, _, sandbox = obj["id"].partition("_")
    assert len(sha256) == 64 and sandbox == obj["attributes"]["sandbox_name"]
    for key in ("processes_created", "dns_lookups", "ip_traffic", "http_conversations", "mitre_attack_techniques"):
        assert isinstance(obj["attributes"][key], list)
    assert all(conversation["url"] for conversation in obj["attributes"]["http_conversations"])
    attributes = obj["attributes"]
    assert all(isinstance(item["key"], str) for item in attributes.get("registry_keys_set", []))
    assert all(isinstance(item["path"], str) for item in attributes.get("files_dropped", []))
    for key in ("registry_keys_deleted", "files_written", "files_deleted"):
        assert all(isinstance(item, str) and item for item in attributes.get(key, []))


def test_behaviours_carry_persistence_traces_and_sometimes_more_than_a_summary_keeps() -> None:
    objects = generate_objects("file_behaviours", "202405011100", 5, 300)
    keys = [item["key"] for obj in objects for item in obj["attributes"].get("registry_keys_set", [])]
    assert any("\\CurrentVersion\\Run\\" in key for key in keys)
    assert any("\\CURRENTVERSION\\RUN\\" in key for key in keys)  # sandboxes differ in case
    assert any("\\Services\\" in key and key.endswith("\\ImagePath") for key in keys)
    assert any(obj["attributes"].get("registry_keys_deleted") for obj in objects)
    assert any(obj["attributes"].get("files_deleted") for obj in objects)
    dropped = [item for obj in objects for item in obj["attributes"].get("files_dropped", [])]
    assert any("sha256" not in item for item in dropped) and any("type" in item for item in dropped)
    longest = max(len(obj["attributes"].get("registry_keys_set", [])) for obj in objects)
    assert longest > MAX_BEHAVIOUR_PATHS


def test_generate_object_accepts_api_paths_and_uses_the_batch_time() -> None:
    moment = dt.datetime(2024, 5, 1, 9, 15, tzinfo=UTC)
    behaviour = generate_object("file-behaviours", random.Random(1), moment)
    assert behaviour["type"] == "file_behaviour"
    file_obj = generate_object("files", random.Random(1), moment)
    assert 0 <= file_obj["attributes"]["last_analysis_date"] - int(moment.timestamp()) < 60
    assert generate_object("files", random.Random(1), moment) == file_obj


def test_file_objects_have_real_sizes_and_about_seventy_engines() -> None:
    objects = generate_objects("files", "202405011100", 1, 150)
    sizes = [len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()) for obj in objects]
    assert all(10_000 <= size <= 40_000 for size in sizes), (min(sizes), max(sizes))
    assert 14_000 <= statistics.median(sizes) <= 24_000
    for obj in objects:
        results = obj["attributes"]["last_analysis_results"]
        assert 65 <= len(results) <= 80
        engine = next(iter(results.values()))
        assert set(engine) == {"category", "engine_name", "engine_version", "result", "method", "engine_update"}
        assert sum(obj["attributes"]["last_analysis_stats"].values()) == len(results)


def test_file_objects_vary_like_real_ones() -> None:
    objects = generate_objects("files", "202405011100", 2, 300)
    present = {key: sum(key in obj["attributes"] for obj in objects)
               for key in ("pe_info", "androguard", "signature_info", "crowdsourced_yara_results",
                           "sigma_analysis_results", "crowdsourced_ids_results", "sandbox_verdicts",
                           "popular_threat_classification", "trid", "names")}
    for key, count in present.items():
        assert 0 < count, key
    assert present["pe_info"] < len(objects) and present["names"] < len(objects)
    apk = [obj for obj in objects if "androguard" in obj["attributes"]]
    assert all(obj["attributes"]["type_tag"] == "apk" for obj in apk)
    assert any("://" in text for obj in apk for text in obj["attributes"]["androguard"]["StringsInformation"])
    assert any("relationships" in obj for obj in objects)
    assert any(obj["attributes"]["last_analysis_stats"]["malicious"] == 0 for obj in objects)


def test_urls_carry_the_noise_a_whitelist_has_to_drop() -> None:
    objects = generate_objects("files", "202405011100", 4, 200) + generate_objects("urls", "202405011100", 4, 200)
    text = "\n".join(all_strings(objects))
    for needle in ("crl.microsoft.com", "ocsp.digicert.com", "schemas.xmlsoap.org", "CRL.Microsoft.com",
                   "crl.microsoft.com.", "xn--", "пример.рф", "@", ":8080/"):
        assert needle in text, needle
    raw = b"".join(bz2.decompress(generate_batch("urls", "202405011100", 4, 50)).splitlines())
    assert any(byte > 127 for byte in raw), "feed lines are real UTF-8, not only \\u escapes"


def test_ip_feed_mixes_ipv4_and_ipv6() -> None:
    objects = generate_objects("ip_addresses", "202405011100", 1, 80)
    versions = {ipaddress.ip_address(obj["id"]).version for obj in objects}
    assert versions == {4, 6}


def test_batches_are_deterministic_bz2_json_lines() -> None:
    batch = generate_batch("files", "202405011100", 9, 20)
    assert batch == generate_batch("files", "202405011100", 9, 20)
    assert batch != generate_batch("files", "202405011100", 10, 20)
    assert batch != generate_batch("files", "202405011101", 9, 20)
    assert batch.startswith(b"BZh9")
    lines = lines_of(batch)
    assert 16 <= len(lines) <= 24
    assert all({"type", "id", "attributes"} <= set(line) for line in lines)


def test_batch_size_varies_by_minute_but_is_never_empty() -> None:
    counts = {len(generate_objects("domains", f"2024050111{minute:02d}", 1, 50)) for minute in range(12)}
    assert len(counts) > 1 and all(40 <= count <= 60 for count in counts)
    assert all(len(generate_objects("urls", f"2024050111{minute:02d}", 1, 1)) == 1 for minute in range(10))
    assert bz2.decompress(generate_batch("urls", "202405011100", 1, 0)) == b""


def test_deterministic_across_processes() -> None:
    """String seeds are not salted: another interpreter makes the same bytes."""
    code = ("import hashlib, sys; from vt_dagster.emulator import generate_batch; "
            "sys.stdout.write(hashlib.sha256(generate_batch('urls', '202405011100', 5, 5)).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=Path(__file__).resolve().parents[1])
    assert other.stdout == hashlib.sha256(generate_batch("urls", "202405011100", 5, 5)).hexdigest()


# ---------------------------------------------------------------------------------------------
# server: authentication, licence, redirect and download
# ---------------------------------------------------------------------------------------------


@pytest.mark.service
def test_missing_and_wrong_api_key_get_401(vt: FeedsEmulator) -> None:
    url = feed_url(vt, "files", NEWEST_MINUTE)
    assert_vt_error(requests.get(url), 401, "AuthenticationRequiredError")
    assert_vt_error(requests.get(url, headers={"x-apikey": "not-the-key"}), 401, "WrongCredentialsError")


@pytest.mark.service
def test_unlicensed_feed_gets_403(session: requests.Session) -> None:
    with FeedsEmulator(small_config(licensed_feeds=["files", "file-behaviours"])) as vt:
        assert_vt_error(session.get(feed_url(vt, "urls", NEWEST_MINUTE)), 403, "ForbiddenError")
        assert_vt_error(session.get(hourly_url(vt, "domains", NEWEST_HOUR)), 403, "ForbiddenError")
        assert session.get(feed_url(vt, "file_behaviours", NEWEST_MINUTE)).status_code == 200


@pytest.mark.service
def test_unknown_feed_bad_time_and_unknown_path(vt: FeedsEmulator, session: requests.Session) -> None:
    assert_vt_error(session.get(f"{vt.base_url}/feeds/nope/{NEWEST_MINUTE}"), 404, "NotFoundError")
    assert_vt_error(session.get(feed_url(vt, "files", "2024-05-01T11:00")), 400, "BadRequestError")
    assert_vt_error(session.get(feed_url(vt, "files", "202405011199")), 400, "BadRequestError")
    assert_vt_error(session.get(hourly_url(vt, "files", "20240501")), 400, "BadRequestError")
    assert_vt_error(session.get(f"{vt.base_url}/files/abc"), 404, "NotFoundError")


@pytest.mark.service
def test_minute_batch_is_a_302_to_a_keyless_bz2_download(vt: FeedsEmulator, session: requests.Session) -> None:
    answer = session.get(feed_url(vt, "file_behaviours", NEWEST_MINUTE), allow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(f"http://127.0.0.1:{vt.port}/_download/")
    download = requests.get(location)  # no key, like VT's signed storage URL
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert int(download.headers["Content-Length"]) == len(download.content)
    objects = lines_of(download.content)
    assert objects and all(obj["type"] == "file_behaviour" and obj["id"] and obj["attributes"] for obj in objects)
    assert download.content == generate_batch("file_behaviours", NEWEST_MINUTE, 3, SMALL["file_behaviours"])
    assert_vt_error(requests.get(location[:-3] + "abc"), 404, "NotFoundError")


@pytest.mark.service
@pytest.mark.parametrize("feed_name", list(FEEDS))
def test_every_feed_is_served(vt: FeedsEmulator, session: requests.Session, feed_name: str) -> None:
    answer = session.get(feed_url(vt, feed_name, OLDEST_MINUTE))
    assert answer.status_code == 200
    assert {obj["type"] for obj in lines_of(answer.content)} == {FEEDS[feed_name].object_type}


# ---------------------------------------------------------------------------------------------
# server: the availability window and gaps
# ---------------------------------------------------------------------------------------------


@pytest.mark.service
def test_last_sixty_minutes_are_not_available_yet(vt: FeedsEmulator, session: requests.Session) -> None:
    assert session.get(feed_url(vt, "files", NEWEST_MINUTE), allow_redirects=False).status_code == 302
    assert_vt_error(session.get(feed_url(vt, "files", TOO_NEW_MINUTE)), 400, "NotAvailableYet")
    assert_vt_error(session.get(feed_url(vt, "files", "202405011229")), 400, "NotAvailableYet")


@pytest.mark.service
def test_last_two_hours_have_no_hourly_package_yet(vt: FeedsEmulator, session: requests.Session) -> None:
    assert session.get(hourly_url(vt, "urls", NEWEST_HOUR), allow_redirects=False).status_code == 302
    assert_vt_error(session.get(hourly_url(vt, "urls", TOO_NEW_HOUR)), 400, "NotAvailableYet")
    assert_vt_error(session.get(hourly_url(vt, "urls", "2024050112")), 400, "NotAvailableYet")


@pytest.mark.service
def test_older_than_seven_days_is_404(vt: FeedsEmulator, session: requests.Session) -> None:
    assert session.get(feed_url(vt, "urls", OLDEST_MINUTE), allow_redirects=False).status_code == 302
    assert_vt_error(session.get(feed_url(vt, "urls", TOO_OLD_MINUTE)), 404, "NotFoundError")
    assert_vt_error(session.get(hourly_url(vt, "urls", "2024042411")), 404, "NotFoundError")


@pytest.mark.service
def test_gap_minutes_are_404_for_every_feed(session: requests.Session) -> None:
    gap = "202405011105"
    with FeedsEmulator(small_config(gap_minutes={gap})) as vt:
        for feed_name in FEEDS:
            assert_vt_error(session.get(feed_url(vt, feed_name, gap)), 404, "NotFoundError")
        assert session.get(feed_url(vt, "files", "202405011106")).status_code == 200
        vt.config.gap_minutes.add("202405011106")  # gaps can be added while running
        assert_vt_error(session.get(feed_url(vt, "files", "202405011106")), 404, "NotFoundError")


@pytest.mark.service
def test_gap_rate_drops_a_stable_fraction_of_minutes(session: requests.Session) -> None:
    with FeedsEmulator(small_config(gap_rate=0.25, objects_per_minute=0)) as vt:
        statuses = [session.get(feed_url(vt, "urls", f"2024050110{minute:02d}"), allow_redirects=False).status_code
                    for minute in range(60)]
        again = [session.get(feed_url(vt, "files", f"2024050110{minute:02d}"), allow_redirects=False).status_code
                 for minute in range(60)]
    assert set(statuses) == {302, 404} and 5 <= statuses.count(404) <= 25
    assert statuses == again


# ---------------------------------------------------------------------------------------------
# server: hourly packages
# ---------------------------------------------------------------------------------------------


@pytest.mark.service
def test_hourly_package_holds_the_sixty_minute_files_byte_for_byte(session: requests.Session) -> None:
    gap = "202405011007"
    with FeedsEmulator(small_config(gap_minutes={gap})) as vt:
        answer = session.get(hourly_url(vt, "files", NEWEST_HOUR), allow_redirects=False)
        assert answer.status_code == 302
        package = requests.get(answer.headers["Location"])
        assert package.status_code == 200 and package.headers["Content-Type"] == "application/octet-stream"
        with tarfile.open(fileobj=io.BytesIO(package.content), mode="r:bz2") as tar:
            members = {member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
                       for member in tar.getmembers()}
        expected = [f"2024050110{minute:02d}" for minute in range(60) if f"2024050110{minute:02d}" != gap]
        assert sorted(members) == [f"{key}.bz2" for key in expected]
        for key in expected:
            assert members[f"{key}.bz2"] == session.get(feed_url(vt, "files", key)).content
        assert session.get(hourly_url(vt, "files", NEWEST_HOUR)).content == package.content


# ---------------------------------------------------------------------------------------------
# server: determinism, quota and faults
# ---------------------------------------------------------------------------------------------


@pytest.mark.service
def test_same_seed_serves_identical_bytes_other_seed_differs(session: requests.Session) -> None:
    with FeedsEmulator(small_config(seed=5)) as first, FeedsEmulator(small_config(seed=5)) as second, \
            FeedsEmulator(small_config(seed=6)) as other:
        bodies = [session.get(feed_url(vt, "urls", NEWEST_MINUTE)).content for vt in (first, second, other)]
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


@pytest.mark.service
def test_rate_limit_answers_429_and_downloads_are_free(session: requests.Session) -> None:
    with FeedsEmulator(small_config(rate_limit_per_minute=3)) as vt:
        for minute in range(3):
            assert session.get(feed_url(vt, "files", f"2024050111{minute:02d}")).status_code == 200
        assert_vt_error(session.get(feed_url(vt, "files", "202405011103")), 429, "QuotaExceededError")
        assert_vt_error(session.get(hourly_url(vt, "files", NEWEST_HOUR)), 429, "QuotaExceededError")


@pytest.mark.service
def test_injected_server_errors_hit_the_next_matching_requests(vt: FeedsEmulator, session: requests.Session) -> None:
    url = feed_url(vt, "files", NEWEST_MINUTE)
    vt.inject_fault("503", count=2)
    assert_vt_error(session.get(url), 503, "TransientError")
    assert_vt_error(session.get(url), 503, "TransientError")
    assert session.get(url).status_code == 200
    vt.inject_fault("500", path_contains="/urls/")
    assert session.get(url).status_code == 200
    assert_vt_error(session.get(feed_url(vt, "urls", NEWEST_MINUTE)), 500, "TransientError")
    vt.inject_fault("429", path_contains="/_download/")
    answer = session.get(url)
    assert answer.history[0].status_code == 302
    assert_vt_error(answer, 429, "TooManyRequestsError")
    faults = [(record.status, record.fault) for record in vt.requests if record.fault]
    assert faults == [(503, "503"), (503, "503"), (500, "500"), (429, "429")]


@pytest.mark.service
def test_fail_rate_one_makes_every_api_request_503(session: requests.Session) -> None:
    with FeedsEmulator(small_config(fail_rate=1.0)) as vt:
        assert_vt_error(session.get(feed_url(vt, "files", NEWEST_MINUTE)), 503, "TransientError")


@pytest.mark.service
def test_truncated_download_breaks_the_transfer(vt: FeedsEmulator, session: requests.Session) -> None:
    url = feed_url(vt, "files", NEWEST_MINUTE)
    vt.inject_fault("truncate")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(url)
    assert [record.fault for record in vt.requests] == [None, "truncate"]
    assert lines_of(session.get(url).content)


@pytest.mark.service
def test_truncate_rate_one_cuts_every_download(session: requests.Session) -> None:
    with FeedsEmulator(small_config(truncate_rate=1.0)) as vt:
        answer = session.get(feed_url(vt, "files", NEWEST_MINUTE), allow_redirects=False)
        assert answer.status_code == 302
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            session.get(answer.headers["Location"])


@pytest.mark.service
def test_stalled_download_sends_half_the_body_waits_then_the_rest(vt: FeedsEmulator, session: requests.Session) -> None:
    url = feed_url(vt, "files", NEWEST_MINUTE)
    whole = session.get(url).content
    vt.inject_fault("stall", seconds=0.5)
    started = time.monotonic()
    answer = session.get(url, stream=True)
    first = answer.raw.read(len(whole) // 2)
    assert time.monotonic() - started < 0.4 and first == whole[: len(whole) // 2]
    assert first + answer.raw.read() == whole
    assert time.monotonic() - started >= 0.5
    assert [record.fault for record in vt.requests][-2:] == [None, "stall"]


@pytest.mark.service
def test_reset_closes_the_socket_without_an_answer(vt: FeedsEmulator, session: requests.Session) -> None:
    vt.inject_fault("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(feed_url(vt, "files", NEWEST_MINUTE))
    assert session.get(feed_url(vt, "files", NEWEST_MINUTE)).status_code == 200
    assert vt.requests[0].status == 0 and vt.requests[0].fault == "reset"


@pytest.mark.service
def test_slow_fault_and_slow_seconds_delay_answers(vt: FeedsEmulator, session: requests.Session) -> None:
    url = feed_url(vt, "files", NEWEST_MINUTE)
    vt.inject_fault("slow", seconds=0.4)
    started = time.monotonic()
    assert session.get(url, allow_redirects=False).status_code == 302
    assert time.monotonic() - started >= 0.4
    with pytest.raises(requests.exceptions.ReadTimeout):
        vt.inject_fault("slow", seconds=1.0)
        session.get(url, timeout=0.2)
    with FeedsEmulator(small_config(slow_seconds=0.2)) as slow:
        started = time.monotonic()
        assert session.get(feed_url(slow, "files", NEWEST_MINUTE)).status_code == 200
        assert time.monotonic() - started >= 0.4  # the API answer and the download


@pytest.mark.service
def test_unknown_fault_kind_is_refused(vt: FeedsEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        vt.inject_fault("404")


# ---------------------------------------------------------------------------------------------
# server: admin endpoints, batch folder, key hygiene, lifecycle, CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.service
def test_admin_endpoints_drive_faults_and_list_requests(vt: FeedsEmulator, session: requests.Session) -> None:
    admin = f"http://127.0.0.1:{vt.port}/_emulator"
    created = requests.post(f"{admin}/faults", json={"kind": "503", "count": 1, "path_contains": "/urls/"})
    assert created.status_code == 201 and created.json()["faults"][0]["kind"] == "503"
    assert_vt_error(requests.post(f"{admin}/faults", json={"kind": "explode"}), 400, "BadRequestError")
    assert_vt_error(requests.post(f"{admin}/faults", data=b"not json"), 400, "BadRequestError")
    assert_vt_error(session.get(feed_url(vt, "urls", NEWEST_MINUTE)), 503, "TransientError")
    listed = requests.get(f"{admin}/requests").json()["requests"]
    assert listed == [{"method": "GET", "path": f"/api/v3/feeds/urls/{NEWEST_MINUTE}", "status": 503, "fault": "503",
                       "had_api_key": True}]
    assert requests.get(f"{admin}/status").json()["now"].startswith("2024-05-01T12:30:30")
    assert requests.delete(f"{admin}/requests").json() == {"requests": []}
    assert vt.requests == []


@pytest.mark.service
def test_batch_dir_serves_real_files_and_404s_the_rest(tmp_path: Path, session: requests.Session) -> None:
    files_batch = generate_batch("files", "202405011100", 42, 2)
    urls_batch = b"BZh9" + b"not generated, served as is"
    behaviour_batch = generate_batch("file_behaviours", "202405011001", 42, 1)
    (tmp_path / "raw" / "files" / "2024-05-01").mkdir(parents=True)
    (tmp_path / "raw" / "files" / "2024-05-01" / "202405011100.bz2").write_bytes(files_batch)
    (tmp_path / "urls_202405011100.bz2").write_bytes(urls_batch)
    (tmp_path / "file-behaviours").mkdir()
    (tmp_path / "file-behaviours" / "202405011001.bz2").write_bytes(behaviour_batch)
    (tmp_path / "notes.bz2").write_bytes(b"ignored: no minute in the name")
    index = index_batch_dir(tmp_path)
    assert set(index) == {("files", "202405011100"), ("urls", "202405011100"), ("file_behaviours", "202405011001")}
    with FeedsEmulator(small_config(batch_dir=tmp_path)) as vt:
        assert session.get(feed_url(vt, "files", "202405011100")).content == files_batch
        assert session.get(feed_url(vt, "urls", "202405011100")).content == urls_batch
        assert_vt_error(session.get(feed_url(vt, "files", "202405011101")), 404, "NotFoundError")
        assert_vt_error(session.get(feed_url(vt, "domains", "202405011100")), 404, "NotFoundError")
        package = session.get(hourly_url(vt, "file_behaviours", NEWEST_HOUR))
        with tarfile.open(fileobj=io.BytesIO(package.content), mode="r:bz2") as tar:
            assert tar.getnames() == ["202405011001.bz2"]
            assert tar.extractfile("202405011001.bz2").read() == behaviour_batch  # type: ignore[union-attr]
        assert_vt_error(session.get(hourly_url(vt, "urls", NEWEST_HOUR)), 404, "NotFoundError")


@pytest.mark.service
def test_client_api_key_is_never_logged_or_recorded(caplog: pytest.LogCaptureFixture) -> None:
    secret = "vt-secret-5e1b0c77"
    caplog.set_level(logging.DEBUG)
    with FeedsEmulator(small_config(api_key=secret)) as vt:
        for key in (secret, "wrong-secret-91a2"):
            requests.get(feed_url(vt, "urls", NEWEST_MINUTE), headers={"x-apikey": key})
        recorded = requests.get(f"http://127.0.0.1:{vt.port}/_emulator/requests").text
        status = requests.get(f"http://127.0.0.1:{vt.port}/_emulator/status").text
    for text in (caplog.text, recorded, status, repr(vt.requests)):
        assert secret not in text and "wrong-secret-91a2" not in text


@pytest.mark.service
def test_stop_frees_the_port_and_its_threads(session: requests.Session) -> None:
    vt = FeedsEmulator(small_config()).start()
    url = feed_url(vt, "files", NEWEST_MINUTE)
    assert session.get(url).status_code == 200  # leaves a keep-alive connection open
    vt.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, headers={"x-apikey": DEFAULT_API_KEY}, timeout=2)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("vt-feeds-emulator")]
    with pytest.raises(RuntimeError):
        _ = vt.base_url


def test_cli_arguments_build_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--objects-per-minute", "files=7,urls=3", "--gap-minutes",
                              "202405011100,202405011101", "--licensed-feeds", "files,file-behaviours",
                              "--now", "202405011230", "--rate-limit", "5", "--seed", "9"])
    config = config_from_args(args)
    assert config.objects_per_minute["files"] == 7 and config.objects_per_minute["urls"] == 3
    assert config.gap_minutes == {"202405011100", "202405011101"}
    assert config.licensed_feeds == {"files", "file_behaviours"}
    assert config.current_time() == dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert config.rate_limit_per_minute == 5 and config.seed == 9
    real = config_from_args(parser.parse_args(["--real-scale"]))
    assert real.objects_per_minute["files"] == 1500
    with pytest.raises(SystemExit):
        parser.parse_args(["--now", "yesterday"])


@pytest.mark.service
def test_cli_serves_until_sigterm(session: requests.Session) -> None:
    code = ("import argparse, sys; from vt_dagster.emulator.cli import add_arguments, run_from_args; "
            "p = argparse.ArgumentParser(); add_arguments(p); sys.exit(run_from_args(p.parse_args(sys.argv[1:])))")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--now", "202405011230", "--objects-per-minute", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "VT_API_URL=http://127.0.0.1:" in line and f"VT_API_KEY={DEFAULT_API_KEY}" in line
        base_url = line.split("VT_API_URL=")[1].split()[0]
        assert session.get(f"{base_url}/feeds/files/{NEWEST_MINUTE}").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
