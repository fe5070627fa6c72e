"""logstash/vt_summaries.conf agrees with the Python indexer.

Logstash cannot be installed here, so the config is parsed (a small parser for the Logstash
config grammar: sections, plugins, settings, arrays, hashes, if/else) and its paths, field
references, id scheme and target alias are checked against vt_dagster's own functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from vt_dagster.elastic import TEMPLATES_DIR, summary_alias, summary_doc_id
from vt_dagster.emulator import generate_objects
from vt_dagster.feeds import FEEDS
from vt_dagster.storage import PART_SUFFIX, summary_path
from vt_dagster.summarize import summarize_object
from vt_dagster.whitelist import UrlWhitelist

LOGSTASH_DIR = Path(__file__).resolve().parents[1] / "logstash"
CONFIG = LOGSTASH_DIR / "vt_summaries.conf"
BATCH = "202401151200"
DATA_DIR = "/srv/vt_data"

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<arrow>=>)
  | (?P<word>[A-Za-z0-9_@.\-]+)
  | (?P<punct>==|!=|=~|!~|<=|>=|[{}\[\],!<>])
""", re.VERBOSE)


# --- a parser for the Logstash config grammar -------------------------------------------------

@dataclass
class Plugin:
    section: str
    name: str
    settings: dict[str, Any]
    conditions: tuple[str, ...]


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SyntaxError(f"unexpected {text[position:position + 20]!r} at offset {position}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind == "string":
            tokens.append((kind, match.group()[1:-1].replace('\\"', '"')))
        elif kind != "space":
            tokens.append((kind, match.group()))
    return tokens


class ConfigParser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0
        self.plugins: list[Plugin] = []

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.at >= len(self.tokens):
            raise SyntaxError(f"config ends early (expected {expected!r})")
        value = self.tokens[self.at][1]
        if expected is not None and value != expected:
            raise SyntaxError(f"expected {expected!r}, got {value!r} (token {self.at})")
        self.at += 1
        return value

    def parse(self) -> list[Plugin]:
        while self.peek() is not None:
            section = self.take()
            assert section in ("input", "filter", "output"), section
            self.take("{")
            self.block(section, ())
        return self.plugins

    def block(self, section: str, conditions: tuple[str, ...]) -> None:
        while self.peek() != "}":
            if self.peek() == "if":
                self.conditional(section, conditions)
            else:
                self.plugin(section, conditions)
        self.take("}")

    def conditional(self, section: str, conditions: tuple[str, ...]) -> None:
        self.take("if")
        condition = self.condition()
        self.block(section, (*conditions, condition))
        negated = [f"not ({condition})"]
        while self.peek() == "else":
            self.take("else")
            if self.peek() == "if":
                self.take("if")
                condition = self.condition()
                self.block(section, (*conditions, *negated, condition))
                negated.append(f"not ({condition})")
            else:
                self.take("{")
                self.block(section, (*conditions, *negated))

    def condition(self) -> str:
        words = []
        while self.peek() != "{":
            words.append(self.take())
        self.take("{")
        return " ".join(words)

    def plugin(self, section: str, conditions: tuple[str, ...]) -> None:
        name = self.take()
        self.take("{")
        settings: dict[str, Any] = {}
        while self.peek() != "}":
            key = self.take()
            self.take("=>")
            settings[key] = self.value()
        self.take("}")
        self.plugins.append(Plugin(section, name, settings, conditions))

    def value(self) -> Any:
        token = self.take()
        if token == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return items
        if token == "{":
            mapping = {}
            while self.peek() != "}":
                key = self.take()
                self.take("=>")
                mapping[key] = self.value()
            self.take("}")
            return mapping
        return token


# --- emulating what Logstash does with the values ---------------------------------------------

def substitute_env(text: str, env: dict[str, str]) -> str:
    """Logstash's `${NAME}` / `${NAME:default}` substitution (a missing variable is an error)."""
    def replace(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":")
        if name in env:
            return env[name]
        if match.group(1).count(":") or default:
            return default
        raise KeyError(f"${{{name}}} is not set")
    return re.sub(r"\$\{([^}]+)\}", replace, text)


def sprintf(template: str, event: dict[str, Any]) -> str:
    """Logstash's `%{[field]}`: a bracketed name without inner brackets is ONE top-level field,
    dots included (`[vt.batch]` is the key "vt.batch", not vt -> batch)."""
    def replace(match: re.Match[str]) -> str:
        return str(event[match.group(1)])
    return re.sub(r"%\{\[([^\[\]]+)\]\}", replace, template)


def field_name(reference: str) -> str:
    """`[name]` or `name` -> the top-level field name."""
    return reference[1:-1] if reference.startswith("[") and reference.count("[") == 1 else reference


@pytest.fixture(scope="module")
def plugins() -> list[Plugin]:
    return ConfigParser(CONFIG.read_text(encoding="utf-8")).parse()


def only(plugins: list[Plugin], section: str, name: str) -> Plugin:
    found = [plugin for plugin in plugins if (plugin.section, plugin.name) == (section, name)]
    assert len(found) == 1, f"expected one {section} {name}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def summaries() -> list[dict[str, Any]]:
    """Real summaries of every feed, as the summaries asset writes them."""
    whitelist = UrlWhitelist.default()
    return [summarize_object(obj, feed=feed, batch=BATCH, whitelist=whitelist)[0]
            for feed in FEEDS for obj in generate_objects(feed, BATCH, 7, 2)]


# --- the checks -------------------------------------------------------------------------------

def test_the_parser_reads_the_whole_config(plugins: list[Plugin]) -> None:
    assert {(p.section, p.name) for p in plugins} == {
        ("input", "file"), ("filter", "date"), ("filter", "mutate"), ("filter", "fingerprint"),
        ("output", "file"), ("output", "elasticsearch"),
    }


def test_input_reads_finished_summary_files_once_and_deletes_them(plugins: list[Plugin]) -> None:
    source = only(plugins, "input", "file").settings
    assert source["mode"] == "read" and source["file_completed_action"] == "delete"
    assert source["codec"] == "json"
    pattern = substitute_env(source["path"], {"VT_DATA_DIR": DATA_DIR})
    for feed in FEEDS:
        written = summary_path(Path(DATA_DIR), feed, BATCH)
        assert PurePosixPath(written).match(pattern), (written, pattern)
        in_progress = written.parent / f".{written.name}.k2j4h1{PART_SUFFIX}"
        assert not PurePosixPath(in_progress).match(pattern)
    assert not PurePosixPath(f"{DATA_DIR}/raw/files/2024-01-15/{BATCH}.bz2").match(pattern)


def test_document_id_is_summary_doc_id(plugins: list[Plugin], summaries: list[dict[str, Any]]) -> None:
    fingerprint = only(plugins, "filter", "fingerprint").settings
    assert fingerprint["method"] == "SHA256"
    assert "key" not in fingerprint, "with a key the fingerprint is an HMAC, not sha256"
    assert fingerprint.get("base64encode", "false") == "false", "the id is hex"
    assert "concatenate_sources" not in fingerprint, "it would hash '|name|value|' pairs"
    [source] = fingerprint["source"] if isinstance(fingerprint["source"], list) else [fingerprint["source"]]
    id_source = next(
        template for plugin in plugins if plugin.name == "mutate"
        for name, template in plugin.settings.get("add_field", {}).items() if name == source
    )
    output = only(plugins, "output", "elasticsearch").settings
    assert output["document_id"] == f"%{{{fingerprint['target']}}}"
    for summary in summaries:
        digest = hashlib.sha256(sprintf(id_source, summary).encode("utf-8")).hexdigest()
        assert digest == summary_doc_id(summary["vt.batch"], summary["vt.id"])


def test_output_writes_each_feed_into_its_summary_alias(
    plugins: list[Plugin], summaries: list[dict[str, Any]]
) -> None:
    output = only(plugins, "output", "elasticsearch")
    settings = output.settings
    assert settings["action"] == "index"
    assert settings["hosts"] == ["${ES_URL}"]
    assert settings["manage_template"] == "false" and settings["ilm_enabled"] == "false"
    for env, prefix in (({}, "vt"), ({"ES_INDEX_PREFIX": "vtprod"}, "vtprod")):
        for summary in summaries:
            index = sprintf(substitute_env(settings["index"], env), summary)
            assert index == summary_alias(prefix, summary["vt.feed"])
    assert len(output.conditions) == 1 and output.conditions[0].startswith("not (")


def test_referenced_fields_are_summary_fields(plugins: list[Plugin], summaries: list[dict[str, Any]]) -> None:
    text = CONFIG.read_text(encoding="utf-8")
    referenced = set(re.findall(r"\[(vt\.[a-z_.]+)\]", text))
    assert referenced == {"vt.batch", "vt.id", "vt.feed"}
    assert all(name in summary for summary in summaries for name in referenced)


def test_fields_logstash_adds_are_removed_and_none_belongs_to_the_schema(
    plugins: list[Plugin], summaries: list[dict[str, Any]]
) -> None:
    removed = {field_name(name) for plugin in plugins if plugin.name == "mutate"
               for name in plugin.settings.get("remove_field", [])}
    # @version always; host/path (ECS off) or host/log/event (ECS on) from the file input.
    assert {"@version", "host", "path", "log", "event"} <= removed
    template = json.loads((TEMPLATES_DIR / "vt_summaries.template.json").read_text())
    top_level = set(template["template"]["mappings"]["properties"])
    summary_roots = {key.split(".")[0] for summary in summaries for key in summary}
    assert not removed & (top_level | summary_roots)


def test_timestamp_comes_from_the_summary(plugins: list[Plugin], summaries: list[dict[str, Any]]) -> None:
    date = only(plugins, "filter", "date").settings
    assert field_name(date["match"][0]) == "_@timestamp" and "ISO8601" in date["match"][1:]
    assert date.get("target", "@timestamp") == "@timestamp"
    for summary in summaries:
        parsed = dt.datetime.fromisoformat(summary["@timestamp"].replace("Z", "+00:00"))
        assert parsed.tzinfo is not None


def test_rejected_lines_are_kept_outside_the_watched_tree(plugins: list[Plugin]) -> None:
    rejected = only(plugins, "output", "file")
    assert rejected.conditions and "[ tags ]" in rejected.conditions[0]
    for needed in ("vt.feed", "vt.batch", "vt.id"):
        assert f"! [ {needed} ]" in rejected.conditions[0]
    source = only(plugins, "input", "file").settings["path"]
    path = substitute_env(rejected.settings["path"], {"VT_DATA_DIR": DATA_DIR})
    assert path.startswith(DATA_DIR + "/")
    assert not PurePosixPath(path).match(substitute_env(source, {"VT_DATA_DIR": DATA_DIR}))


def test_environment_variables_are_the_documented_ones() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", CONFIG.read_text(encoding="utf-8")))
    assert used == {"VT_DATA_DIR", "ES_URL", "ES_API_KEY", "ES_INDEX_PREFIX"}
    readme = (LOGSTASH_DIR / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in used) and "pipelines.yml" in readme
