"""Readers for the files under deploy/ (Helm values, Dockerfile, systemd units, env files), as
the tools that use them read them, for the tests that check those files against the package."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
VALUES = DEPLOY / "kubernetes" / "values.yaml"
PVC = DEPLOY / "kubernetes" / "pvc.yaml"
SECRETS_ENV = DEPLOY / "kubernetes" / "secrets.env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
SYSTEMD = DEPLOY / "systemd"
PIPELINE_UNIT = SYSTEMD / "vt-dagster.service"
WEBSERVER_UNIT = SYSTEMD / "vt-dagster-webserver.service"
PIPELINE_ENV = SYSTEMD / "vt-dagster.env.example"
DAGSTER_ENV = SYSTEMD / "dagster.env.example"
POSTGRES_INSTANCE = DEPLOY / "dagster.yaml"

# The keys the pipeline reads from its environment: in deploy/ only ever as names.
SECRET_VARIABLES = ("VT_API_KEY", "ES_API_KEY", "ELASTIC_APM_SECRET_TOKEN")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def user_deployment(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """The one code location of the chart's values."""
    [deployment] = values["dagster-user-deployments"]["deployments"]
    return deployment


def run_launcher(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return values["runLauncher"]["config"]["k8sRunLauncher"]


def env_value(env: list[Mapping[str, Any]], name: str) -> str:
    [entry] = [item for item in env if item["name"] == name]
    return entry["value"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every mapping entry and list item, depth first."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, value
            yield from walk(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            where = f"{path}[{index}]"
            yield where, value
            yield from walk(value, where)


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines as systemd's EnvironmentFile= and `kubectl --from-env-file` read them."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


@dataclass(frozen=True)
class Instruction:
    name: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of ENTRYPOINT/CMD, as Docker runs it without a shell."""
        form = json.loads(self.arguments)
        assert isinstance(form, list) and all(isinstance(part, str) for part in form), self
        return form


def read_dockerfile(path: Path) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments and parser directives dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        name, _, arguments = whole.partition(" ")
        instructions.append(Instruction(name.upper(), " ".join(arguments.split())))
    return instructions


def only(instructions: list[Instruction], name: str) -> Instruction:
    [found] = [item for item in instructions if item.name == name]
    return found


def dockerfile_env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV NAME=value pairs (the key=value form, several per instruction)."""
    found = {}
    for item in instructions:
        if item.name == "ENV":
            for pair in shlex.split(item.arguments):
                name, _, value = pair.partition("=")
                found[name] = value
    return found


def unit_sections(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit: section -> (key, value) in order; keys may repeat (EnvironmentFile=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{path.name}: not a unit line: {line}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(sections: Mapping[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for name, value in sections.get(section, []) if name == key]


def unit_value(sections: Mapping[str, list[tuple[str, str]]], section: str, key: str) -> str:
    [value] = unit_values(sections, section, key)
    return value


def unit_environment(sections: Mapping[str, list[tuple[str, str]]]) -> dict[str, str]:
    found = {}
    for assignment in unit_values(sections, "Service", "Environment"):
        for pair in shlex.split(assignment):
            name, _, value = pair.partition("=")
            found[name] = value
    return found


def unit_command(line: str, environment: Mapping[str, str]) -> list[str]:
    """An Exec*= line as systemd runs it: `${NAME}` from the unit's environment, `$$` a dollar,
    then split into words with quotes."""
    dollar = "\0"
    expanded = line.replace("$$", dollar)
    expanded = re.sub(r"\$\{(\w+)\}", lambda match: environment.get(match.group(1), ""), expanded)
    assert "$" not in expanded, f"a $NAME systemd would substitute differently: {line}"
    return [word.replace(dollar, "$") for word in shlex.split(expanded)]


_HEX = re.compile(r"[0-9a-fA-F]{32,}")


def looks_like_a_key(token: str) -> bool:
    """32+ characters of hex (VT keys), or of mixed-case letters with digits (base64 API keys,
    tokens): what a literal secret looks like, and paths, names and URLs do not."""
    if len(token) < 32:
        return False
    if _HEX.fullmatch(token):
        return True
    return any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token)


def key_like_tokens(text: str) -> list[str]:
    return [token for token in re.findall(r"[A-Za-z0-9+/_-]{32,}={0,2}", text) if looks_like_a_key(token)]
