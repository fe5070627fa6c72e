"""vt_dagster.elastic: names and ids (pure), then setup, indexing, counts and lookups against
the real Elasticsearch node of the session (no mock stands in for it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from vt_dagster import elastic
from vt_dagster.elastic import (
    ElasticsearchRequestError,
    ElasticsearchUnavailable,
    EsSettings,
    IndexResult,
    InvalidQueryError,
    LookupKey,
    batch_counts,
    bootstrap_index,
    index_reports,
    index_summary_file,
    lookup,
    lookup_keys,
    make_client,
    report_alias,
    report_doc_id,
    run_concurrently,
    search_summaries,
    settings_from_env,
    setup_elasticsearch,
    summaries_table,
    summary_alias,
    summary_doc_id,
)
from vt_dagster.emulator import generate_objects
from vt_dagster.feeds import FEEDS
from vt_dagster.local_es import free_port
from vt_dagster.resources import elasticsearch_resource_from_env
from vt_dagster_tests.elastic_helpers import (
    BATCH,
    NEWER,
    SEED,
    recorded_requests,
    sample,
    stored_report,
    write_raw_batch,
    write_summaries,
)
from vt_dagster_tests.vt_objects import MAXIMAL_OBJECTS, overfull_behaviour_object


# --- helpers ----------------------------------------------------------------------------------

def doc_count(client: Elasticsearch, alias: str) -> int:
    client.indices.refresh(index=alias)
    return client.count(index=alias)["count"]


def cluster_state(client: Elasticsearch, prefix: str) -> dict[str, Any]:
    """Templates, indices with their settings and aliases under `prefix`."""
    templates = client.indices.get_index_template(name=f"{prefix}*")["index_templates"]
    indices = client.indices.get(index=f"{prefix}*", allow_no_indices=True)
    return {
        "templates": sorted(templates, key=lambda t: t["name"]),
        "indices": {name: {"aliases": info["aliases"], "uuid": info["settings"]["index"]["uuid"]}
                    for name, info in indices.items()},
    }


# --- pure: ids, names, settings ---------------------------------------------------------------

def test_summary_doc_id_is_sha256_of_batch_colon_id() -> None:
    expected = hashlib.sha256(b"202401151200:abc").hexdigest()
    assert summary_doc_id("202401151200", "abc") == expected
    assert summary_doc_id("202401151201", "abc") != expected


def test_report_doc_id_follows_assemblyline_convention() -> None:
    sha256 = "03BD9A94482F180BB047626CB2F27CCF8DAA0E201345480B43585580E09C311B"
    assert report_doc_id(sha256) == sha256.lower()
    assert report_doc_id("tawuhoju.com") == hashlib.sha256(b"tawuhoju.com").hexdigest()
    behaviour = sha256.lower() + "_VirusTotal Jujubox"
    assert report_doc_id(behaviour) == hashlib.sha256(behaviour.encode()).hexdigest()
    assert report_doc_id("g" * 64) == hashlib.sha256(b"g" * 64).hexdigest()


def test_names_follow_the_prefix_and_overrides() -> None:
    assert summary_alias("vt", "file-behaviours") == "vt-summaries-file_behaviours"
    assert report_alias("vt", "files") == "vt-reports-files"
    assert report_alias("vt", "files", {"files": "al-vt-files"}) == "al-vt-files"
    assert report_alias("vt", "urls", {"files": "al-vt-files"}) == "vt-reports-urls"
    assert bootstrap_index("vt-reports-files") == "vt-reports-files-000001"
    assert elastic.batch_version("197001010001") == 1


def test_settings_from_env_reads_every_variable_and_hides_secrets() -> None:
    settings = settings_from_env({
        "ES_URL": "https://es.example:9200/", "ES_API_KEY": "key-id:very-secret",
        "ES_CA_CERTS": "/etc/ca.pem", "ES_INDEX_PREFIX": "vtprod",
        "ES_REPORT_ALIAS_FILES": "al-vt-files", "ES_INDEX_REPLICAS": "2",
    })
    assert settings.url == "https://es.example:9200"
    assert settings.index_replicas == 2
    assert settings.auth == "api_key" and settings.ca_certs == "/etc/ca.pem"
    assert settings.index_prefix == "vtprod"
    assert settings.report_alias("files") == "al-vt-files"
    assert settings.report_alias("urls") == "vtprod-reports-urls"
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)
    assert settings_from_env({}) == EsSettings()


def test_credentials_in_es_url_are_moved_out_of_it() -> None:
    settings = settings_from_env({"ES_URL": "https://analyst:p%40ss@es.example:9200"})
    assert (settings.url, settings.username, settings.password) == (
        "https://es.example:9200", "analyst", "p@ss")
    assert "p@ss" not in repr(settings)


@pytest.mark.parametrize("env, message", [
    ({"ES_API_KEY": "k", "ES_USERNAME": "u", "ES_PASSWORD": "secret-pw"}, "not both"),
    ({"ES_USERNAME": "u"}, "together"),
    ({"ES_INDEX_PREFIX": "VT Prod"}, "ES_INDEX_PREFIX"),
    ({"ES_REPORT_ALIAS_URLS": "a,b"}, "ES_REPORT_ALIAS_URLS"),
    ({"ES_URL": "es.example:9200"}, "not a URL"),
    ({"ES_INDEX_REPLICAS": "one"}, "ES_INDEX_REPLICAS must be a whole number from 0 to 8, not 'one'"),
    ({"ES_INDEX_REPLICAS": "-1"}, "ES_INDEX_REPLICAS"),
    ({"ES_INDEX_REPLICAS": "9"}, "ES_INDEX_REPLICAS"),
])
def test_settings_from_env_rejects_bad_values_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        settings_from_env(env)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert "secret-pw" not in str(raised.value)


def test_bulk_streams_come_from_the_environment_and_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ES_BULK_STREAMS", raising=False)
    assert elasticsearch_resource_from_env().bulk_streams == 2
    monkeypatch.setenv("ES_BULK_STREAMS", "4")
    assert elasticsearch_resource_from_env().bulk_streams == 4
    for bad in ("0", "two", "99"):
        monkeypatch.setenv("ES_BULK_STREAMS", bad)
        with pytest.raises(ValueError, match=f"ES_BULK_STREAMS .*{bad!r}"):
            elasticsearch_resource_from_env()


def test_index_replicas_come_from_the_environment_into_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ES_INDEX_REPLICAS", raising=False)
    assert elasticsearch_resource_from_env().settings().index_replicas is None
    monkeypatch.setenv("ES_INDEX_REPLICAS", "0")
    assert elasticsearch_resource_from_env().settings().index_replicas == 0


def test_concurrent_bulk_jobs_overlap_and_results_keep_job_order() -> None:
    started = threading.Barrier(2, timeout=5)

    def job(n: int) -> IndexResult:
        if n < 2:
            started.wait()  # only passes if the first two jobs run at the same time
        time.sleep(0.02 * (3 - n))
        return IndexResult(indexed=n)

    jobs = [partial(job, n) for n in range(4)]
    assert [r.indexed for r in run_concurrently(jobs, streams=2)] == [0, 1, 2, 3]
    assert [r.indexed for r in run_concurrently(jobs[2:], streams=1)] == [2, 3]


def test_a_failing_bulk_job_stops_the_ones_not_started_and_is_raised() -> None:
    ran: list[int] = []

    def job(n: int) -> IndexResult:
        ran.append(n)
        if n == 0:
            raise ElasticsearchUnavailable("Elasticsearch at http://x is unreachable")
        time.sleep(0.05)
        return IndexResult(indexed=n)

    with pytest.raises(ElasticsearchUnavailable):
        list(run_concurrently([partial(job, n) for n in range(20)], streams=2))
    assert len(ran) < 20


def test_alias_templates_carry_lifecycle_settings_only_with_a_policy() -> None:
    raw = elastic.load_json_file(elastic.TEMPLATES_DIR / "vt_summaries.template.json")
    family = elastic.family_template(raw, prefix="vt", family="summaries", source="file.json")
    assert family["index_patterns"] == ["vt-summaries-*"]
    assert family["template"]["mappings"] == raw["template"]["mappings"]
    with_ilm = elastic.alias_template(family, alias="vt-summaries-files", policy="vt-summaries")
    assert with_ilm["index_patterns"] == ["vt-summaries-files-*"]
    assert with_ilm["priority"] == family["priority"] + 1
    assert with_ilm["template"]["settings"]["index"]["lifecycle"] == {
        "name": "vt-summaries", "rollover_alias": "vt-summaries-files"}
    without = elastic.alias_template(family, alias="al-files", policy=None)
    assert "lifecycle" not in json.dumps(without["template"]["settings"])
    assert "lifecycle" not in json.dumps(family)
    hashes = {body["_meta"][elastic.HASH_KEY] for body in (family, with_ilm, without)}
    assert len(hashes) == 3


def test_family_templates_carry_the_replicas_given_and_their_hash_tells_them_apart() -> None:
    raw = elastic.load_json_file(elastic.TEMPLATES_DIR / "vt_reports.template.json")
    bodies = {replicas: elastic.family_template(raw, prefix="vt", family="reports", source="f.json",
                                                replicas=replicas) for replicas in (None, 0, 1)}
    assert "number_of_replicas" not in json.dumps(bodies[None]["template"]["settings"])
    assert bodies[0]["template"]["settings"]["index"]["number_of_replicas"] == 0
    assert bodies[1]["template"]["settings"]["index"]["number_of_replicas"] == 1
    assert bodies[1]["template"]["settings"]["index"]["number_of_shards"] == 1
    assert len({body["_meta"][elastic.HASH_KEY] for body in bodies.values()}) == 3
    flat = {"template": {"settings": {"index.number_of_shards": 1}}}
    flat_body = elastic.family_template(flat, prefix="vt", family="reports", source="f.json", replicas=2)
    assert flat_body["template"]["settings"] == {"index.number_of_shards": 1, "index.number_of_replicas": 2}


@pytest.mark.parametrize("configured, data_nodes, replicas, says", [
    (None, 1, 0, "1 data node, ES_INDEX_REPLICAS unset"),
    (None, 3, 1, "3 data nodes, ES_INDEX_REPLICAS unset"),
    (2, 3, 2, "ES_INDEX_REPLICAS=2, 3 data nodes)"),
    (1, 1, 1, "2 copies of a shard need 2 data nodes, indices stay yellow"),
])
def test_replicas_are_0_on_one_data_node_1_on_a_cluster_unless_configured(
    configured: int | None, data_nodes: int, replicas: int, says: str
) -> None:
    plan = elastic.ReplicaPlan.choose(configured, data_nodes)
    assert plan.replicas == replicas and says in str(plan)


def test_ilm_policy_files_roll_over_daily_or_at_10gb_and_delete() -> None:
    for name in ("vt_summaries.ilm_policy.json", "vt_reports.ilm_policy.json"):
        body = elastic.ilm_policy_body(elastic.load_json_file(elastic.TEMPLATES_DIR / name), source=name)
        phases = body["policy"]["phases"]
        assert phases["hot"]["actions"]["rollover"] == {"max_primary_shard_size": "10gb", "max_age": "1d"}
        assert "delete" in phases["delete"]["actions"]
        assert body["policy"]["_meta"]["retention"]


def test_lookup_keys_classify_each_kind_of_value() -> None:
    sha256 = "a" * 64
    url = "http://218.54.47.77/"
    assert lookup_keys("B" * 32) == [LookupKey("files", "attributes.md5", "b" * 32)]
    assert lookup_keys("c" * 40) == [LookupKey("files", "attributes.sha1", "c" * 40)]
    assert lookup_keys(sha256) == [LookupKey("files", "_id", sha256), LookupKey("urls", "_id", sha256)]
    assert lookup_keys(url) == [LookupKey("urls", "_id", hashlib.sha256(url.encode()).hexdigest()),
                                LookupKey("urls", "attributes.url", url)]
    assert lookup_keys("Tawuhoju.COM.") == [LookupKey("domains", "_id", report_doc_id("tawuhoju.com"))]
    assert lookup_keys("138.128.150.133") == [
        LookupKey("ip_addresses", "_id", report_doc_id("138.128.150.133"))]
    assert len(lookup_keys("2001:db8::1")) == 2
    assert lookup_keys("nonsense") == [] and lookup_keys("  ") == []


def test_es_down_is_one_line_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = make_client(EsSettings(url=url))
    summaries = write_summaries(tmp_path, "files", BATCH, generate_objects("files", BATCH, SEED, 2))
    calls = [
        lambda: setup_elasticsearch(client, ["files"], prefix="vt"),
        lambda: index_summary_file(client, summaries, alias="vt-summaries-files"),
        lambda: batch_counts(client, "vt-summaries-files", [BATCH]),
        lambda: lookup(client, ["a" * 64], feeds=["files"]),
        lambda: elastic.alias_exists(client, "vt-summaries-files"),
        lambda: elastic.refresh_alias(client, "vt-summaries-files"),
    ]
    for call in calls:
        with pytest.raises(ElasticsearchUnavailable) as raised:
            call()
        message = str(raised.value)
        assert url in message and "\n" not in message and "unreachable" in message


def test_es_that_does_not_answer_fails_in_seconds_not_after_the_request_timeout(unanswering_es_url: str) -> None:
    client = make_client(EsSettings(url=unanswering_es_url, request_timeout=30))
    started = time.monotonic()
    with pytest.raises(ElasticsearchUnavailable, match=r"unreachable \(timed out\)") as raised:
        batch_counts(client, "vt-summaries-files", [BATCH])
    elapsed = time.monotonic() - started
    assert elapsed < elastic.CONNECT_TIMEOUT_S * (elastic.TRANSPORT_RETRIES + 1) + 2 <= 10
    assert unanswering_es_url in str(raised.value) and "\n" not in str(raised.value)


# --- setup ------------------------------------------------------------------------------------

def test_setup_twice_creates_once_then_reports_everything_present(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    feeds = ["files", "urls"]
    first = setup_elasticsearch(es_client, feeds, prefix=index_prefix)
    before = cluster_state(es_client, index_prefix)
    second = setup_elasticsearch(es_client, feeds, prefix=index_prefix)
    assert cluster_state(es_client, index_prefix) == before

    expected = {("index_template", f"{index_prefix}-summaries"), ("index_template", f"{index_prefix}-reports")}
    expected |= {("write_alias", f"{index_prefix}-{family}-{feed}")
                 for family in ("summaries", "reports") for feed in feeds}
    assert {(a.kind, a.name) for a in first if a.status == "created"} == expected
    assert {(a.kind, a.name) for a in second if a.status == "present"} == expected
    assert not [a for a in second if a.status in ("created", "updated")]
    for alias in (name for kind, name in expected if kind == "write_alias"):
        assert set(es_client.indices.get_alias(name=alias)) == {bootstrap_index(alias)}


def test_setup_puts_the_replicas_into_the_templates_and_says_so(es_client: Elasticsearch, index_prefix: str) -> None:
    data_nodes = es_client.cluster.health()["number_of_data_nodes"]
    default = 0 if data_nodes == 1 else 1
    actions = setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    templates = [a for a in actions if a.kind == "index_template"]
    assert templates and all(f"replicas from settings: {default} ({data_nodes} data node" in str(a) for a in templates)
    alias = summary_alias(index_prefix, "files")
    settings = es_client.indices.get_settings(index=alias).body
    assert [s["settings"]["index"]["number_of_replicas"] for s in settings.values()] == [str(default)]

    kept = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, replicas=default + 1)
    template = next(a for a in kept if a.name == f"{index_prefix}-summaries")
    assert template.status == "present" and "run setup with update" in template.detail
    assert f"replicas from settings: {default + 1} (ES_INDEX_REPLICAS={default + 1}" in template.detail
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix, replicas=default + 1, update=True)
    stored = es_client.indices.get_index_template(name=f"{index_prefix}-summaries")["index_templates"][0]
    assert stored["index_template"]["template"]["settings"]["index"]["number_of_replicas"] == str(default + 1)


def test_setup_without_ilm_says_so_once_on_one_line(es_client: Elasticsearch, index_prefix: str) -> None:
    actions = setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    skipped = [a for a in actions if a.status == "skipped"]
    assert len(skipped) == 1 and skipped[0].kind == "ilm"
    line = str(skipped[0])
    assert "\n" not in line
    assert "ILM is not available on this cluster" in line and "will not roll over" in line
    settings = es_client.indices.get_settings(index=f"{index_prefix}*").body
    assert "lifecycle" not in json.dumps(settings)


def test_setup_loads_templates_from_the_json_files(es_client: Elasticsearch, index_prefix: str) -> None:
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    for family in elastic.FAMILIES:
        raw = json.loads((elastic.TEMPLATES_DIR / family.template_file).read_text())
        stored = es_client.indices.get_index_template(
            name=f"{index_prefix}-{family.name}")["index_templates"][0]["index_template"]
        assert stored["index_patterns"] == [f"{index_prefix}-{family.name}-*"]
        assert stored["template"]["mappings"] == raw["template"]["mappings"]
        assert stored["_meta"]["source_file"] == family.template_file
        mapping = es_client.indices.get_mapping(index=f"{index_prefix}-{family.name}-files")
        dynamic = next(iter(mapping.values()))["mappings"]["dynamic"]
        assert str(dynamic).lower() == str(raw["template"]["mappings"]["dynamic"]).lower()


def test_setup_update_rewrites_only_what_changed(
    es_client: Elasticsearch, index_prefix: str, tmp_path: Path
) -> None:
    templates = tmp_path / "index_templates"
    shutil.copytree(elastic.TEMPLATES_DIR, templates)
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates)
    changed = json.loads((templates / "vt_summaries.template.json").read_text())
    changed["_meta"]["description"] += " (edited)"
    (templates / "vt_summaries.template.json").write_text(json.dumps(changed))
    name = f"{index_prefix}-summaries"

    def status(actions: list[elastic.SetupAction], wanted: str) -> elastic.SetupAction:
        return next(a for a in actions if a.name == wanted)

    kept = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates)
    assert status(kept, name).status == "present" and "update" in status(kept, name).detail
    stored = es_client.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
    assert not stored["_meta"]["description"].endswith("(edited)")

    updated = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates,
                                  update=True)
    assert status(updated, name).status == "updated"
    assert status(updated, f"{index_prefix}-reports").status == "present"
    assert status(updated, f"{index_prefix}-summaries-files").status == "present"
    stored = es_client.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
    assert stored["_meta"]["description"].endswith("(edited)")


def test_setup_never_replaces_an_existing_write_alias(es_client: Elasticsearch, index_prefix: str) -> None:
    alias = summary_alias(index_prefix, "files")
    own_index = f"{alias}-existing"
    es_client.indices.create(index=own_index, aliases={alias: {"is_write_index": True}})
    actions = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, update=True)
    action = next(a for a in actions if a.name == alias)
    assert (action.status, action.detail) == ("present", f"write index {own_index}")
    assert not es_client.indices.exists(index=bootstrap_index(alias))


def test_setup_refuses_a_plain_index_where_the_alias_belongs(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    alias = summary_alias(index_prefix, "files")
    es_client.indices.create(index=alias)
    with pytest.raises(ElasticsearchRequestError) as raised:
        setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    assert alias in str(raised.value) and "\n" not in str(raised.value)


def test_overridden_report_alias_gets_its_own_template(es_client: Elasticsearch, index_prefix: str) -> None:
    override = f"{index_prefix}-al-files"
    actions = setup_elasticsearch(es_client, ["files"], prefix=index_prefix,
                                  report_aliases={"files": override})
    assert {(a.kind, a.name, a.status) for a in actions} >= {
        ("index_template", override, "created"), ("write_alias", override, "created")}
    mapping = es_client.indices.get_mapping(index=bootstrap_index(override))
    assert "attributes" in next(iter(mapping.values()))["mappings"]["properties"]


# --- summaries --------------------------------------------------------------------------------

def test_index_summary_file_twice_keeps_one_document_per_summary(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = summary_alias(ready, "files")
    objects = generate_objects("files", BATCH, SEED, 40)
    path = write_summaries(tmp_path, "files", BATCH, objects)

    first = index_summary_file(es_client, path, alias=alias, chunk_size=7)
    second = index_summary_file(es_client, path, alias=alias, refresh=True)
    assert (first.indexed, first.failed, first.errors) == (len(objects), 0, [])
    assert (second.indexed, second.failed) == (len(objects), 0)
    assert doc_count(es_client, alias) == len(objects)

    hits = es_client.search(index=alias, size=1000)["hits"]["hits"]
    assert {hit["_id"] for hit in hits} == {summary_doc_id(BATCH, obj["id"]) for obj in objects}
    assert all(hit["_id"] == summary_doc_id(hit["_source"]["vt.batch"], hit["_source"]["vt.id"])
               for hit in hits)


def test_every_summary_field_indexes_into_the_strict_template(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    """Maximal objects (every documented field between them), the real samples and generated
    batches: the strict mapping accepts every document of every feed."""
    feed_of = {feed.object_type: name for name, feed in FEEDS.items()}
    objects: dict[str, list[dict[str, Any]]] = {name: [] for name in FEEDS}
    for feed, make in MAXIMAL_OBJECTS.items():
        objects[feed].append(make())
    objects["file_behaviours"].append(overfull_behaviour_object())
    for path in sorted(samples_dir.glob("*.json")):
        obj = json.loads(path.read_text(encoding="utf-8"))
        objects[feed_of[obj.get("data", obj)["type"]]].append(obj)
    fields: set[str] = set()
    for feed, listed in objects.items():
        listed += generate_objects(feed, BATCH, SEED, 20)
        path = write_summaries(tmp_path, feed, BATCH, listed)
        fields |= {key for line in path.read_text().splitlines() for key in json.loads(line)}
        result = index_summary_file(es_client, path, alias=summary_alias(ready, feed), refresh=True)
        assert (result.failed, result.errors) == (0, []), feed
        assert result.indexed == len(listed)
    assert {"vt.behaviour.registry_keys_set", "vt.behaviour.cut.files_written"} <= fields


def test_sandbox_traces_match_any_case_by_prefix_and_wildcard(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    """Sandboxes spell one Run key differently; a hunter's query finds every spelling."""
    sha256 = "ab" * 32
    spellings = {
        "VirusTotal Jujubox": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\xws",
        "Lastline": "HKU\\S-1-5-21-1003\\SOFTWARE\\MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN\\XWS",
        "SNDBOX": "\\REGISTRY\\USER\\S-1-5-21-1000\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
    }
    objects = [{"type": "file_behaviour", "id": f"{sha256}_{sandbox}", "attributes": {
        "sandbox_name": sandbox, "registry_keys_set": [{"key": key, "value": "xws.exe"}],
        "files_dropped": [{"path": f"C:\\Users\\{sandbox}\\AppData\\Roaming\\XWS.EXE"}],
        "command_executions": ["C:\\Windows\\System32\\CMD.exe /c whoami"],
    }} for sandbox, key in spellings.items()]
    objects.append({"type": "file_behaviour", "id": f"{sha256}_Zenbox", "attributes": {
        "registry_keys_set": [{"key": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce"}],
    }})
    alias = summary_alias(ready, "file_behaviours")
    path = write_summaries(tmp_path, "file_behaviours", BATCH, objects)
    assert index_summary_file(es_client, path, alias=alias, refresh=True).failed == 0

    def sandboxes(query: str) -> set[str]:
        hits = search_summaries(es_client, query, feeds=["file_behaviours"], prefix=ready)
        return {hit["vt.id"].partition("_")[2] for hit in hits}

    run_key = r"vt.behaviour.registry_keys_set:*\\currentversion\\run\\*"
    assert sandboxes(run_key) == {"VirusTotal Jujubox", "Lastline"}
    assert sandboxes(run_key.upper().replace("VT.BEHAVIOUR.REGISTRY_KEYS_SET", "vt.behaviour.registry_keys_set")) \
        == {"VirusTotal Jujubox", "Lastline"}
    assert sandboxes(r"vt.behaviour.registry_keys_set:*\\currentversion\\run*") == set(spellings) | {"Zenbox"}
    assert sandboxes(r"vt.behaviour.files_dropped:*\\appdata\\roaming\\*.exe") == set(spellings)
    assert sandboxes(r"vt.behaviour.registry_keys_set:hkcu\\software*") == {"VirusTotal Jujubox", "Zenbox"}
    # the Query DSL prefix query normalizes too; the summary keeps VT's spelling
    answer = es_client.search(index=alias, query={"prefix": {"vt.behaviour.registry_keys_set": "hku\\s-1-5-21"}})
    [hit] = answer["hits"]["hits"]
    assert hit["_source"]["vt.behaviour.registry_keys_set"] == [spellings["Lastline"]]
    # command lines stay exact keywords: their case matters
    assert sandboxes(r"vt.behaviour.command_executions:*CMD.exe*") == set(spellings)
    assert sandboxes(r"vt.behaviour.command_executions:*cmd.exe*") == set()


def test_bad_lines_and_refused_documents_are_counted_and_the_rest_indexed(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = summary_alias(ready, "files")
    good = [json.loads(line) for line in
            write_summaries(tmp_path, "files", BATCH, generate_objects("files", BATCH, SEED, 3))
            .read_text().splitlines()]
    unknown_field = {**good[0], "vt.id": "extra-field", "vt.not_in_schema": "x"}
    type_conflict = {**good[0], "vt.id": "type-conflict", "file.size": "not a number"}
    no_id = {key: value for key, value in good[0].items() if key != "vt.id"}
    lines = [json.dumps(good[0]), json.dumps(unknown_field), "{not json", json.dumps(good[1]),
             "", json.dumps(type_conflict), json.dumps(no_id), "[1, 2]", json.dumps(good[2])]
    path = tmp_path / "mixed.summary"
    path.write_text("\n".join(lines) + "\n")

    result = index_summary_file(es_client, path, alias=alias, refresh=True)
    assert (result.indexed, result.failed) == (3, 5)
    assert doc_count(es_client, alias) == 3
    errors = "\n".join(result.errors)
    assert len(result.errors) == 5
    assert "line 2 " in errors and "strict_dynamic_mapping_exception" in errors
    assert "line 3: invalid JSON" in errors
    assert "line 6 " in errors and "file.size" in errors
    assert "line 7: no 'vt.id' string" in errors
    assert "line 8: not a JSON object" in errors


def test_indexing_into_a_missing_alias_fails_without_creating_an_index(
    es_client: Elasticsearch, index_prefix: str, tmp_path: Path
) -> None:
    alias = summary_alias(index_prefix, "files")
    objects = generate_objects("files", BATCH, SEED, 3)
    result = index_summary_file(es_client, write_summaries(tmp_path, "files", BATCH, objects), alias=alias)
    assert (result.indexed, result.failed) == (0, len(objects))
    assert "require_alias" in result.errors[0]
    assert not es_client.indices.exists(index=alias)


def test_batch_counts_are_exact_for_present_and_absent_batches_in_one_request(
    es_client: Elasticsearch, ready: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = summary_alias(ready, "urls")
    expected: dict[str, int] = {}
    for minute, batch in enumerate(("202401151200", "202401151201", "202401151203")):
        objects = generate_objects("urls", batch, SEED, 5 + 4 * minute)
        index_summary_file(es_client, write_summaries(tmp_path, "urls", batch, objects), alias=alias)
        expected[batch] = len(objects)
    es_client.indices.refresh(index=alias)
    asked = ["202401151203", "202401151202", "202401151200", "202401151201", "202401151159"]

    with recorded_requests(es_client, monkeypatch) as calls:
        counts = batch_counts(es_client, alias, asked)
    assert calls == [f"POST /{alias}/_search"]
    assert list(counts) == asked
    assert counts == {**expected, "202401151202": 0, "202401151159": 0}
    assert batch_counts(es_client, summary_alias(ready, "domains"), asked) == dict.fromkeys(asked, 0)


def test_batch_counts_answer_a_week_of_minutes_in_one_request(
    es_client: Elasticsearch, ready: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = summary_alias(ready, "files")
    week = [f"2024011{day}{hour:02d}{minute:02d}" for day in range(1, 8)
            for hour in range(24) for minute in range(60)]
    assert len(week) == 10_080
    with recorded_requests(es_client, monkeypatch) as calls:
        counts = batch_counts(es_client, alias, week)
    assert len(calls) == 1 and counts == dict.fromkeys(week, 0)


def test_search_summaries_finds_newest_first(es_client: Elasticsearch, ready: str, tmp_path: Path) -> None:
    for feed in ("files", "urls"):
        path = write_summaries(tmp_path, feed, BATCH, generate_objects(feed, BATCH, SEED, 10))
        index_summary_file(es_client, path, alias=summary_alias(ready, feed), refresh=True)
    hits = search_summaries(es_client, "vt.feed:(files OR urls)", feeds=["files", "urls", "domains"],
                            prefix=ready, size=50)
    assert {hit["vt.feed"] for hit in hits} == {"files", "urls"}
    stamps = [hit["@timestamp"] for hit in hits]
    assert stamps == sorted(stamps, reverse=True)
    one = hits[0]
    assert search_summaries(es_client, f'vt.id:"{one["vt.id"]}"', feeds=["files", "urls"],
                            prefix=ready) == [one]
    assert one["vt.id"] in summaries_table(hits)
    with pytest.raises(InvalidQueryError) as raised:
        search_summaries(es_client, "vt.id:(", feeds=["files"], prefix=ready)
    assert str(raised.value) == 'invalid query: Encountered "<EOF>" at line 1, column 7 (query: vt.id:()'


# --- reports ----------------------------------------------------------------------------------

def test_an_older_batch_never_overwrites_a_newer_report(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    alias = report_alias(ready, "files")
    obj = sample(samples_dir, "msticpy_vt3_file_1.json")
    newer = write_raw_batch(tmp_path, "files", NEWER, [json.dumps(obj)])
    older = write_raw_batch(tmp_path, "files", BATCH, [json.dumps(obj)])

    assert index_reports(es_client, newer, alias=alias, feed="files", batch=NEWER).indexed == 1
    late = index_reports(es_client, older, alias=alias, feed="files", batch=BATCH)
    assert (late.indexed, late.skipped_older, late.failed) == (0, 1, 0)
    again = index_reports(es_client, newer, alias=alias, feed="files", batch=NEWER)
    assert (again.indexed, again.skipped_older, again.failed) == (1, 0, 0)

    [report] = stored_report(es_client, alias, obj["id"])
    assert report["vt.batch"] == NEWER and report["vt.batch_time"] == "2024-01-15T13:00:00Z"
    assert report["vt.feed"] == "files"
    assert {key: value for key, value in report.items() if not key.startswith("vt.")} == obj


def test_reports_accept_wrapped_objects_and_count_bad_lines(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    alias = report_alias(ready, "domains")
    wrapped = sample(samples_dir, "opencti_vt_test_domain.json")
    path = write_raw_batch(tmp_path, "domains", BATCH,
                           [json.dumps(wrapped), "{truncated", json.dumps({"no": "id"}),
                            json.dumps({"id": 5, "type": "domain"}), "[1, 2]", '{"id": "", "type": "domain"}'])
    result = index_reports(es_client, path, alias=alias, feed="domains", batch=BATCH)
    assert (result.indexed, result.failed) == (1, 5)
    assert [e.split(":")[0] for e in result.errors] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "invalid JSON" in result.errors[0] and "no 'id' string" in result.errors[2]
    assert "not a JSON object" in result.errors[3] and "no 'id' string" in result.errors[4]
    [report] = stored_report(es_client, alias, report_doc_id("tawuhoju.com"))
    assert report["id"] == "tawuhoju.com" and report["vt.batch"] == BATCH


def test_a_corrupt_raw_batch_raises_one_line(es_client: Elasticsearch, ready: str, tmp_path: Path) -> None:
    path = write_raw_batch(tmp_path, "files", BATCH, ['{"id": "x", "type": "file"}'] * 50)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(elastic.BatchReadError) as raised:
        index_reports(es_client, path, alias=report_alias(ready, "files"), feed="files", batch=BATCH)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


@pytest.fixture
def report_cache(es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path) -> dict[str, Any]:
    """The four real samples plus generated objects, each feed in its report alias."""
    objects = {
        "files": [sample(samples_dir, "msticpy_vt3_file_1.json"), *generate_objects("files", BATCH, SEED, 5)],
        "urls": [sample(samples_dir, "msticpy_vt3_url_0.json"), *generate_objects("urls", BATCH, SEED, 5)],
        "domains": [sample(samples_dir, "opencti_vt_test_domain.json")],
        "ip_addresses": [sample(samples_dir, "opencti_vt_test_ipv4.json")],
    }
    for feed, batch_objects in objects.items():
        path = write_raw_batch(tmp_path, feed, BATCH, [json.dumps(obj) for obj in batch_objects])
        result = index_reports(es_client, path, alias=report_alias(ready, feed), feed=feed, batch=BATCH,
                               refresh=True)
        assert (result.indexed, result.failed) == (len(batch_objects), 0)
    return objects


def test_lookup_finds_every_object_type_with_one_search_per_feed(
    es_client: Elasticsearch, ready: str, report_cache: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    file_attributes = report_cache["files"][0]["attributes"]
    url_object = report_cache["urls"][0]
    generated_url = report_cache["urls"][1]
    values = {
        file_attributes["sha256"].upper(): report_cache["files"][0]["id"],
        file_attributes["sha1"]: report_cache["files"][0]["id"],
        file_attributes["md5"]: report_cache["files"][0]["id"],
        url_object["attributes"]["url"]: url_object["id"],
        generated_url["id"]: generated_url["id"],
        generated_url["attributes"]["url"]: generated_url["id"],
        "TAWUHOJU.com": "tawuhoju.com",
        "138.128.150.133": "138.128.150.133",
        "f" * 64: None,
        "unknown.example": None,
        "nonsense": None,
    }
    feeds = ["files", "urls", "domains", "ip_addresses"]
    with recorded_requests(es_client, monkeypatch) as calls:
        found = lookup(es_client, list(values), feeds=feeds, prefix=ready)
    assert {value: (report or {}).get("id") for value, report in found.items()} == values
    assert sorted(calls) == sorted(f"POST /{report_alias(ready, feed)}/_search" for feed in feeds)
    assert found["138.128.150.133"]["attributes"]["as_owner"] == "CLOUD-SOUTH"
    assert found["TAWUHOJU.com"]["vt.feed"] == "domains"


def test_lookup_only_searches_the_feeds_asked_for(
    es_client: Elasticsearch, ready: str, report_cache: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = report_cache["files"][0]["id"]
    with recorded_requests(es_client, monkeypatch) as calls:
        assert lookup(es_client, [sha256, "tawuhoju.com"], feeds=["domains"], prefix=ready) == {
            sha256: None, "tawuhoju.com": report_cache["domains"][0]["data"] | {
                "vt.feed": "domains", "vt.batch": BATCH, "vt.batch_time": "2024-01-15T12:00:00Z"}}
    assert calls == [f"POST /{report_alias(ready, 'domains')}/_search"]


def test_lookup_returns_the_newest_report_across_rolled_over_indices(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    alias = report_alias(ready, "files")
    obj = sample(samples_dir, "msticpy_vt3_file_1.json")
    newer = {**obj, "attributes": {**obj["attributes"], "times_submitted": 999}}
    index_reports(es_client, write_raw_batch(tmp_path, "files", NEWER, [json.dumps(newer)]),
                  alias=alias, feed="files", batch=NEWER)
    es_client.indices.rollover(alias=alias)
    # An older copy in the new write index, as another writer sharing the alias (or a crash
    # between the indexer's writes and its deletes) can leave it...
    es_client.index(index=alias, id=obj["id"], document={**obj, "vt.batch": BATCH,
                                                         "vt.batch_time": "2024-01-15T12:00:00Z"})
    assert len(stored_report(es_client, alias, obj["id"])) == 2
    # ...and lookups still answer with the newest batch.
    found = lookup(es_client, [obj["id"], obj["attributes"]["md5"]], feeds=["files"], prefix=ready)
    assert {report["vt.batch"] for report in found.values()} == {NEWER}
    assert found[obj["id"]]["attributes"]["times_submitted"] == 999
