"""Settings (pure): the ES_* environment read whole, secrets hidden, bad values refused in one line."""

from __future__ import annotations

import pytest

from vt_dagster.elastic import EsSettings, settings_from_env
from vt_dagster.resources import elasticsearch_resource_from_env


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
