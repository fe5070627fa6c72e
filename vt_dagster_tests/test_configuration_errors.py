"""A wrong `VT_FEEDS` or `VT_URL_WHITELIST` is refused by every entry point with the same line:
the CLIs print it alone and exit 2, the code location fails to load with it (in the UI too),
the summaries asset fails its run with it."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from vt_dagster import cli, vt_download
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.config_errors import ConfigurationError
from vt_dagster.emulator import generate_batch
from vt_dagster.feeds import enabled_feeds, get_feed, minute_key, newest_available_minute
from vt_dagster.local_es import free_port
from vt_dagster.resources import VTStorageResource, summarizer_resource_from_env
from vt_dagster.storage import raw_batch_path, summary_path
from vt_dagster.whitelist import host_of

KNOWN = "(known: files, urls, domains, ip_addresses, file_behaviours)"
UNKNOWN_FEED = f"VT_FEEDS: unknown feed 'nonsense' {KNOWN}"
BATCH = "202611230700"
RAW = str(raw_batch_path(Path("data"), "files", BATCH))
"""The one raw batch of `data_root`, relative to the folder the commands run in."""


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding one raw batch of the files feed; the process runs inside tmp_path."""
    root = tmp_path / "data"
    raw = raw_batch_path(root, "files", BATCH)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(generate_batch("files", BATCH, 1, 3))
    monkeypatch.chdir(tmp_path)
    for name in ("VT_FEEDS", "VT_URL_WHITELIST", "VT_DATA_DIR", "DAGSTER_HOME", "ES_URL", "ES_INDEX_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VT_API_KEY", "never-used")
    return root


def only_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- VT_FEEDS: the rule ------------------------------------------------------------------------


def test_unset_or_empty_vt_feeds_means_files_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VT_FEEDS", raising=False)
    assert [f.name for f in enabled_feeds()] == ["files", "urls"]
    assert [f.name for f in enabled_feeds("  ")] == ["files", "urls"]


def test_blank_entries_and_repeats_are_ignored() -> None:
    assert [f.name for f in enabled_feeds("domains,,files, ,file-behaviours,files,")] == [
        "domains", "files", "file_behaviours"]


@pytest.mark.parametrize(("value", "message"), [
    ("files,nonsense", UNKNOWN_FEED),
    (",", f"VT_FEEDS: names no feed {KNOWN}"),
])
def test_a_vt_feeds_naming_an_unknown_feed_or_none_is_a_configuration_error(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        enabled_feeds(value)
    assert str(raised.value) == message and raised.value.setting == "VT_FEEDS"


def test_a_configuration_error_survives_pickling() -> None:
    copy = pickle.loads(pickle.dumps(ConfigurationError("VT_FEEDS", "names no feed")))
    assert str(copy) == "VT_FEEDS: names no feed" and copy.setting == "VT_FEEDS"


# --- VT_FEEDS: every entry point ---------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["setup-elasticsearch"],
    ["lookup", "44d88612fea8a8f36de82e1278abb02f"],
    ["search", "vt.feed:files"],
    ["back-populate-summaries"],
    ["create-single-summary", RAW],
])
def test_every_vt_dagster_command_refuses_an_unknown_feed_in_vt_feeds(
    argv: list[str], data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VT_FEEDS", "files,nonsense")
    monkeypatch.setenv("VT_DATA_DIR", str(data_root))
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert only_line(err) == f"vt-dagster {argv[0]}: {UNKNOWN_FEED}" and out == ""
    assert not (data_root / "summary").exists()


@pytest.mark.parametrize("argv", [
    ["setup-elasticsearch", "--feeds", "files,bogus"],
    ["lookup", "example.com", "--feeds", "bogus"],
    ["search", "vt.feed:files", "--feeds", "urls,bogus"],
    ["create-single-summary", RAW, "--feed", "bogus", "--batch", BATCH],
])
def test_a_feed_flag_refuses_an_unknown_feed_naming_the_flag(
    argv: list[str], data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = next(arg for arg in argv if arg.startswith("--feed"))
    assert cli.main(argv) == 2
    assert only_line(capsys.readouterr().err) == f"vt-dagster {argv[0]}: {flag}: unknown feed 'bogus' {KNOWN}"


@pytest.mark.parametrize("argv", [
    ["--setup-elasticsearch", "True"],
    ["--download-feed", "files", "--num-days-ago", "1"],
    ["--back-populate-summaries"],
    ["--create-single-summary", RAW],
])
def test_every_vt_download_command_refuses_an_unknown_feed_in_vt_feeds(
    argv: list[str], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VT_FEEDS", "files,nonsense")
    assert vt_download.main(argv) == 2
    assert only_line(capsys.readouterr().err) == f"vt-download: error: {UNKNOWN_FEED}"
    assert not (tmp_path / ".dagster_home").exists() and not (data_root / "summary").exists()


def test_the_console_scripts_print_only_that_line(data_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "VT_FEEDS": "files,nonsense", "PYTHONWARNINGS": "default"}
    for program, argv in (("vt-dagster", ["-m", "vt_dagster", "back-populate-summaries"]),
                          ("vt-download", ["-m", "vt_dagster.vt_download", "--back-populate-summaries"])):
        done = subprocess.run([sys.executable, *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        prefix = "vt-dagster back-populate-summaries: " if program == "vt-dagster" else "vt-download: error: "
        assert done.stderr == f"{prefix}{UNKNOWN_FEED}\n" and done.stdout == ""


def test_the_code_location_fails_to_load_with_that_line(tmp_path: Path) -> None:
    env = {**os.environ, "VT_FEEDS": "files,nonsense", "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m", "vt_dagster.definitions"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr  # Dagster logs to stdout, Python warnings go to stderr
    assert done.returncode == 1
    assert f"\nvt_dagster.config_errors.ConfigurationError: {UNKNOWN_FEED}\n" in output
    assert "definitions.py" in output and "feeds.py" not in output, "a stack of one frame of the project's"


@pytest.mark.service
def test_the_ui_shows_that_line_as_the_code_location_load_error(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "VT_FEEDS": "files,nonsense", "DAGSTER_HOME": str(tmp_path)}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-m", "vt_dagster.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name "
             "locationOrLoadError { __typename ... on PythonError { errorChain { error { message } } } } } } } }")
    try:
        error = None
        deadline = time.monotonic() + 120
        while error is None and time.monotonic() < deadline and server.poll() is None:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10)
                entries = answer.json()["data"]["workspaceOrError"]["locationEntries"]
                error = entries[0]["locationOrLoadError"] if entries else None
            except (requests.RequestException, ValueError, KeyError):
                pass
            if error is None:
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert error is not None, "the webserver never reported the code location"
    # Dagster wraps every load error in its own "Error occurred during the loading of Dagster
    # definitions"; the UI shows what caused it right under it: our line, and nothing else.
    assert error["__typename"] == "PythonError"
    assert [link["error"]["message"].strip() for link in error["errorChain"]] == [
        f"vt_dagster.config_errors.ConfigurationError: {UNKNOWN_FEED}"]


# --- VT_URL_WHITELIST: every entry point ---------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["create-single-summary", RAW],
    ["back-populate-summaries", "--data-dir", "data"],
])
def test_the_summary_commands_refuse_a_missing_vt_url_whitelist(
    argv: list[str], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "absent.txt"
    monkeypatch.setenv("VT_URL_WHITELIST", str(missing))
    assert cli.main(argv) == 2
    assert only_line(capsys.readouterr().err) == f"vt-dagster {argv[0]}: VT_URL_WHITELIST: no such file: {missing}"
    assert not (data_root / "summary").exists()
    assert cli.main([*argv, "--url-whitelist", str(tmp_path)]) == 2
    assert only_line(capsys.readouterr().err) == f"vt-dagster {argv[0]}: --url-whitelist: cannot read {tmp_path}: Is a directory"


@pytest.mark.parametrize("argv", [
    ["--create-single-summary", RAW],
    ["--back-populate-summaries"],
    ["--download-feed", "files", "--num-days-ago", "1", "--create-summaries", "True"],
])
def test_every_vt_download_summary_command_refuses_a_missing_vt_url_whitelist(
    argv: list[str], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "absent.txt"
    monkeypatch.setenv("VT_URL_WHITELIST", str(missing))
    monkeypatch.setenv("VT_DATA_DIR", str(data_root))
    assert vt_download.main(argv) == 2
    assert only_line(capsys.readouterr().err) == f"vt-download: error: VT_URL_WHITELIST: no such file: {missing}"
    assert not (tmp_path / ".dagster_home").exists() and not (data_root / "summary").exists()


def test_the_summaries_asset_fails_its_run_with_that_line(data_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "absent.txt"
    monkeypatch.setenv("VT_URL_WHITELIST", str(missing))
    partition = minute_key(newest_available_minute(dt.datetime.now(dt.timezone.utc)))
    raw = raw_batch_path(data_root, "files", partition)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(generate_batch("files", partition, 1, 3))
    result = dg.materialize(
        [build_summaries_asset(get_feed("files"))],
        resources={"vt_storage": VTStorageResource(root=str(data_root)), "vt_summarizer": summarizer_resource_from_env()},
        partition_key=partition, raise_on_error=False, instance=dg.DagsterInstance.ephemeral(),
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description == f"VT_URL_WHITELIST: no such file: {missing}"
    assert not summary_path(data_root, "files", partition).exists()


# --- VT_URL_WHITELIST: the commands use it, as the asset does --------------------------------------


@pytest.mark.parametrize("argv", [
    ["create-single-summary", RAW],
    ["back-populate-summaries", "--data-dir", "data"],
])
def test_the_summary_commands_drop_the_urls_vt_url_whitelist_names(
    argv: list[str], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = summary_path(data_root, "files", BATCH)

    def contacted_hosts() -> set[str | None]:
        return {host_of(url) for line in dest.read_text().splitlines()
                for url in json.loads(line).get("vt.contacted_urls", [])}

    assert cli.main(argv) == 0
    noise = contacted_hosts()
    assert noise, "the generated batch contacts URLs"
    whitelist = tmp_path / "noise.txt"
    whitelist.write_text("\n".join(sorted(host for host in noise if host)) + "\n")
    dest.unlink()
    monkeypatch.setenv("VT_URL_WHITELIST", str(whitelist))
    assert cli.main(argv) == 0
    assert contacted_hosts().isdisjoint(noise)
