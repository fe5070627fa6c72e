"""Setup: templates, replicas and ILM policies from the JSON files, made once, updated only when asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from vt_dagster import elastic
from vt_dagster.elastic import ElasticsearchRequestError, bootstrap_index, setup_elasticsearch, summary_alias


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


# --- against the node -------------------------------------------------------------------------

def cluster_state(client: Elasticsearch, prefix: str) -> dict[str, Any]:
    """Templates, indices with their settings and aliases under `prefix`."""
    templates = client.indices.get_index_template(name=f"{prefix}*")["index_templates"]
    indices = client.indices.get(index=f"{prefix}*", allow_no_indices=True)
    return {
        "templates": sorted(templates, key=lambda t: t["name"]),
        "indices": {name: {"aliases": info["aliases"], "uuid": info["settings"]["index"]["uuid"]}
                    for name, info in indices.items()},
    }


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
