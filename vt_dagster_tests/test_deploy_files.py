"""deploy/ checked against the package, as far as a machine without Kubernetes, Docker or
systemd can: every YAML file parses; the Helm values launch runs as Kubernetes jobs on
Postgres, take every key from a Kubernetes Secret and mount the data volume where VT_DATA_DIR
points, in the code server and in run pods alike; the image runs what the chart runs, and a
wheel of what it copies sets up Elasticsearch; the systemd units run the package's commands.
The commands the image and the units give are also run, as plain processes on loopback.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
import zipfile
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
import yaml
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import (
    dagster_instance_config,
    get_default_tick_retention_settings,
    get_tick_retention_settings,
)

from vt_dagster.cli import build_parser
from vt_dagster.local_es import free_port
from vt_dagster.service import DEFINITIONS_MODULE, STOP_TIMEOUT_S, code_server_socket, service_workspace
from vt_dagster_tests.deploy_files import (
    DAGSTER_ENV,
    DEPLOY,
    DOCKERFILE,
    DOCKERIGNORE,
    PIPELINE_ENV,
    PIPELINE_UNIT,
    POSTGRES_INSTANCE,
    PVC,
    REPO,
    SECRET_VARIABLES,
    SECRETS_ENV,
    VALUES,
    WEBSERVER_UNIT,
    dockerfile_env,
    env_value,
    key_like_tokens,
    load_yaml,
    looks_like_a_key,
    only,
    read_dockerfile,
    read_env_file,
    run_launcher,
    unit_command,
    unit_environment,
    unit_sections,
    unit_value,
    unit_values,
    user_deployment,
    walk,
)
from vt_dagster_tests.processes import processes_with_env

README = (REPO / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SINGLE_MACHINE_INSTANCE = yaml.safe_load((REPO / "vt_dagster" / "data" / "dagster.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_yaml(VALUES)


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert {VALUES, PVC} <= set(files)
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert documents and all(isinstance(doc, dict) and doc for doc in documents), path


def test_the_chart_runs_each_run_as_a_kubernetes_job_of_the_code_servers_image(values: dict[str, Any]) -> None:
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # Without a launcher image the job takes the image the code server reports
    # (DAGSTER_CURRENT_IMAGE, set by the chart): code and runs never differ.
    assert "image" not in run_launcher(values)
    assert values["dagster-user-deployments"]["enabled"] and values["dagster-user-deployments"]["enableSubchart"]
    assert user_deployment(values)["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_dagster_storage_is_an_external_postgres_whose_password_comes_from_a_secret(values: dict[str, Any]) -> None:
    postgres = values["postgresql"]
    assert postgres["enabled"] is False and postgres["postgresqlHost"] and postgres["postgresqlDatabase"]
    assert postgres["postgresqlPassword"] == "" and values["generatePostgresqlPasswordSecret"] is False
    secret = values["global"]["postgresqlSecretName"]
    # The chart reads key `postgresql-password` of that Secret into DAGSTER_PG_PASSWORD.
    assert re.search(rf"create secret generic {re.escape(secret)} .*postgresql-password", README), \
        f"README does not say how to create the Secret {secret} with its key postgresql-password"


def test_the_keys_reach_the_code_server_and_run_pods_from_a_kubernetes_secret_only(values: dict[str, Any]) -> None:
    deployment, launcher = user_deployment(values), run_launcher(values)
    names = [item["name"] for item in deployment["envSecrets"]]
    assert names and names == [item["name"] for item in launcher["envSecrets"]]
    [secret] = names
    assert re.search(rf"create secret generic {re.escape(secret)} --from-env-file=\S+", README)
    keys = read_env_file(SECRETS_ENV)
    assert tuple(keys) == SECRET_VARIABLES and set(keys.values()) == {""}
    for where, node in walk(values):
        if isinstance(node, dict) and node.get("name") in SECRET_VARIABLES:
            assert "value" not in node and "secretKeyRef" in node.get("valueFrom", {}), where
        assert not (isinstance(node, str) and re.match(rf"({'|'.join(SECRET_VARIABLES)})=", node)), where
        assert where.rsplit(".", 1)[-1] not in SECRET_VARIABLES, where
    for name in ("env", "envConfigMaps", "envVars"):
        assert not launcher.get(name), f"run pods get their settings from the code location, not {name}"


def test_no_deploy_file_holds_anything_that_looks_like_a_key() -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        found = key_like_tokens(text)
        assert not found, f"{path.relative_to(REPO)}: {[token[:6] + '...' for token in found]}"
        for line in text.splitlines():
            name, equals, value = line.strip().removeprefix("Environment=").partition("=")
            secret_name = name in SECRET_VARIABLES or re.search(r"PASSWORD|TOKEN|SECRET|_KEY$|PG_URL", name)
            assert not (equals and secret_name and value.strip()), f"{path.relative_to(REPO)}: {name} has a value"
    for where, node in walk(load_yaml(VALUES)):
        last = where.rsplit(".", 1)[-1]
        if isinstance(node, str) and re.search(r"password|secret|token|apikey|api_key", last, re.I):
            assert node == "" or last.endswith("SecretName"), f"{where} holds a value"


_RANDOM = random.Random(13)


@pytest.mark.parametrize("key", [
    _RANDOM.randbytes(32).hex(),  # a VT API key
    base64.b64encode(_RANDOM.randbytes(48)).decode(),  # an Elasticsearch API key, encoded
    base64.urlsafe_b64encode(_RANDOM.randbytes(24)).decode().rstrip("=") + "aA1",  # a token
], ids=["hex", "base64", "urlsafe"])
def test_the_key_detector_flags_keys(key: str) -> None:
    assert looks_like_a_key(key) and key_like_tokens(f"VALUE={key}\n") == [key]


@pytest.mark.parametrize("text", [
    "/opt/vt-dagster/venv/bin/dagster-webserver", "registry.example.internal/vt-dagster:0.1.0",
    "files,urls,domains,ip_addresses,file_behaviours", "DAGSTER_HOME=/var/lib/vt-dagster/dagster_home",
    "$${DAGSTER_HOME}/.vt_dagster/code-server.sock",
])
def test_the_key_detector_passes_paths_and_names(text: str) -> None:
    assert key_like_tokens(text) == []


def _volume_for_claim(pod: dict[str, Any], claim: str) -> tuple[str, str]:
    """(volume name, mount path) of the PersistentVolumeClaim `claim` in a pod's settings."""
    [volume] = [v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
    [mount] = [m["mountPath"] for m in pod["volumeMounts"] if m["name"] == volume]
    return volume, mount


def test_the_data_volume_is_mounted_where_vt_data_dir_points_in_the_code_server_and_run_pods(
    values: dict[str, Any],
) -> None:
    pvc = load_yaml(PVC)
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    claim = pvc["metadata"]["name"]
    deployment, launcher = user_deployment(values), run_launcher(values)
    code_server = _volume_for_claim(deployment, claim)
    assert code_server == _volume_for_claim(launcher, claim)
    # Identical entries, so that Dagster merges the two sources into one volume per run pod.
    assert (deployment["volumes"], deployment["volumeMounts"]) == (launcher["volumes"], launcher["volumeMounts"])
    data_dir = code_server[1]
    assert env_value(deployment["env"], "VT_DATA_DIR") == data_dir
    assert dockerfile_env(read_dockerfile(DOCKERFILE))["VT_DATA_DIR"] == data_dir


def test_the_image_runs_the_code_server_the_chart_runs_as_a_non_root_user(values: dict[str, Any]) -> None:
    instructions = read_dockerfile(DOCKERFILE)
    deployment = user_deployment(values)
    port = deployment["port"]
    assert only(instructions, "FROM").arguments == "python:3.11-slim"
    # The chart and the K8sRunLauncher give their commands as `args`: the entry point must run
    # them as they are, which tini does.
    assert only(instructions, "ENTRYPOINT").exec_form() == ["tini", "--"]
    assert any(i.name == "RUN" and re.search(r"apt-get install .*\btini\b", i.arguments) for i in instructions)
    command = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(port), *deployment["codeServerArgs"]]
    assert only(instructions, "CMD").exec_form() == command
    assert only(instructions, "EXPOSE").arguments == str(port)
    module = deployment["codeServerArgs"][deployment["codeServerArgs"].index("-m") + 1]
    assert module == DEFINITIONS_MODULE
    assert isinstance(importlib.import_module(module).defs, dg.Definitions)
    uid = only(instructions, "USER").arguments.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root user, which runAsNonRoot can verify"
    pod_security = run_launcher(values)["runK8sConfig"]["podSpecConfig"]["securityContext"]
    for context in (deployment["podSecurityContext"], pod_security):
        assert context["runAsNonRoot"] is True and context["runAsUser"] == int(uid)
    for item in instructions:
        assert not any(name in item.arguments for name in SECRET_VARIABLES), f"{item.name} names a key"


def test_the_image_installs_the_kubernetes_extra_at_dagsters_version() -> None:
    [pin] = [d for d in PROJECT["project"]["dependencies"] if d.startswith("dagster==")]
    minor = int(re.fullmatch(r"dagster==1\.(\d+)\.\*", pin).group(1))
    libraries = f"0.{minor + 16}.*"  # dagster 1.13 <-> dagster-k8s 0.29
    extra = PROJECT["project"]["optional-dependencies"]["kubernetes"]
    assert f"dagster-k8s=={libraries}" in extra
    assert f"dagster-postgres=={libraries}" in extra + PROJECT["project"]["dependencies"]
    runs = [i.arguments for i in read_dockerfile(DOCKERFILE) if i.name == "RUN" and "pip install" in i.arguments]
    assert len(runs) == 1 and '".[kubernetes]"' in runs[0]


def test_a_wheel_of_what_the_image_copies_sets_up_elasticsearch_and_loads_the_definitions(tmp_path: Path) -> None:
    """The image installs the package with `pip install .`, not as the editable checkout the
    other tests use: a wheel built from exactly what the Dockerfile copies has to carry the
    index templates and data files, and load the code location from its own files."""
    sources = []
    for item in read_dockerfile(DOCKERFILE):
        if item.name == "COPY":
            *copied, _destination = item.arguments.split()
            sources += copied
    allowed = [line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")]
    assert sorted(sources) == sorted(allowed), "the build context holds what the Dockerfile copies, nothing else"
    context = tmp_path / "context"
    for source in sources:
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(origin, context / source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"),
                            str(context)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("vt_dagster-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        scripts = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "vt-dagster = vt_dagster.cli:main" in archive.read(scripts).decode()
    check = (
        "import json, importlib.resources, vt_dagster, vt_dagster.elastic.setup as setup\n"
        "from vt_dagster.definitions import defs\n"
        "print(json.dumps({'package': vt_dagster.__file__,"
        " 'templates': sorted(p.name for p in setup.TEMPLATES_DIR.glob('*.json')),"
        " 'instance': (importlib.resources.files('vt_dagster') / 'data' / 'dagster.yaml').is_file(),"
        " 'jobs': sorted(job.name for job in defs.jobs)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "VT_API_KEY": "unused"}
    answer = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=180)
    assert answer.returncode == 0, answer.stderr
    found = json.loads(answer.stdout.splitlines()[-1])
    assert found["package"].startswith(str(site))
    assert found["templates"] == sorted(p.name for p in (REPO / "index_templates").glob("*.json"))
    assert found["instance"] and "setup_elasticsearch" in found["jobs"]


def _instance_settings_from_values(values: dict[str, Any]) -> dict[str, Any]:
    """The daemon's part of the dagster.yaml the chart renders from these values (templates
    configmap-instance.yaml and helpers/instance/_run-coordinator.tpl of dagster/dagster)."""
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    queued = {name: value for name, value in coordinator["config"]["queuedRunCoordinator"].items() if value}
    run_coordinator: dict[str, Any] = {"module": "dagster.core.run_coordinator", "class": coordinator["type"]}
    if queued:  # any setting left there renders them all, max_concurrent_runs -1 when unset
        run_coordinator["config"] = {"max_concurrent_runs": queued.get("maxConcurrentRuns", -1),
                                     "tag_concurrency_limits": queued.get("tagConcurrencyLimits")}
    retention = values["retention"]
    return {
        "run_coordinator": run_coordinator,
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "retention": {kind: {"purge_after_days": retention[kind]["purgeAfterDays"]} for kind in ("schedule", "sensor")},
        **values["additionalInstanceConfig"],
    }


def _tick_retention(instance: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        kind.value: {status.value: days for status, days in get_tick_retention_settings(
            instance.get("retention", {}).get(kind.value.lower()), get_default_tick_retention_settings(kind)).items()}
        for kind in (InstigatorType.SCHEDULE, InstigatorType.SENSOR)
    }


def test_the_daemon_queues_runs_and_keeps_ticks_as_the_single_machine_instance(
    values: dict[str, Any], tmp_path: Path,
) -> None:
    assert values["dagsterDaemon"]["runCoordinator"]["enabled"]
    rendered = _instance_settings_from_values(values)
    assert rendered["run_coordinator"] == {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered), encoding="utf-8")
    dagster_instance_config(str(tmp_path))  # raises on anything Dagster refuses, limits in two places too
    # Every `<feed>/<stage>` asset is a pool: one slot each, claimed by each step.
    assert rendered["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert {"key": "vt/live", "limit": 1} in rendered["concurrency"]["runs"]["tag_concurrency_limits"]
    assert _tick_retention(rendered) == _tick_retention(SINGLE_MACHINE_INSTANCE)
    for setting in ("telemetry", "auto_materialize"):
        assert rendered[setting] == SINGLE_MACHINE_INSTANCE[setting], setting


def test_the_chart_limits_runs_as_the_postgres_instance_does(values: dict[str, Any]) -> None:
    if not POSTGRES_INSTANCE.exists():
        pytest.skip("deploy/dagster.yaml (the Postgres instance) is not in this checkout")
    postgres = load_yaml(POSTGRES_INSTANCE)
    assert postgres.get("concurrency"), "deploy/dagster.yaml sets no concurrency limits"
    assert _instance_settings_from_values(values)["concurrency"] == postgres["concurrency"], \
        "additionalInstanceConfig.concurrency in values.yaml differs from concurrency in deploy/dagster.yaml"
    assert _tick_retention(_instance_settings_from_values(values)) == _tick_retention(postgres)


def _units() -> tuple[dict, dict]:
    return unit_sections(PIPELINE_UNIT), unit_sections(WEBSERVER_UNIT)


def _console_script(name: str) -> bool:
    return name in PROJECT["project"]["scripts"] or any(
        e.name == name for e in entry_points(group="console_scripts"))


def test_the_systemd_units_run_the_packages_commands_as_a_non_root_user() -> None:
    pipeline, webserver = _units()
    for unit in (pipeline, webserver):
        assert unit_value(unit, "Service", "User") == unit_value(unit, "Service", "Group") == "vt-dagster"
        assert unit_value(unit, "Service", "Type") == "exec"
        assert unit_value(unit, "Service", "Restart") == "on-failure"
        assert unit_value(unit, "Install", "WantedBy") == "multi-user.target"
        for path in unit_values(unit, "Service", "EnvironmentFile"):
            assert path.lstrip("-").startswith("/etc/vt-dagster/"), path
    home = unit_environment(pipeline)["DAGSTER_HOME"]
    assert home.startswith("/") and unit_environment(webserver) == {"DAGSTER_HOME": home}
    assert "/etc/vt-dagster/vt-dagster.env" in unit_values(pipeline, "Service", "EnvironmentFile")
    assert not any("vt-dagster.env" in p for p in unit_values(webserver, "Service", "EnvironmentFile")), \
        "the UI runs no pipeline code and gets no key"

    serve = unit_command(unit_value(pipeline, "Service", "ExecStart"), {"DAGSTER_HOME": home})
    assert Path(serve[0]).name == "vt-dagster" and _console_script("vt-dagster")
    try:
        arguments = build_parser().parse_args(serve[1:])
    except SystemExit:
        pytest.fail(f"vt-dagster refuses the unit's arguments {serve[1:]}")
    assert arguments.command == "serve" and arguments.no_ui
    # SIGTERM to `serve` alone, which stops the daemon and then the code server, each within
    # STOP_TIMEOUT_S; systemd's own deadline comes after both.
    assert unit_value(pipeline, "Service", "KillMode") == "mixed"
    assert int(unit_value(pipeline, "Service", "TimeoutStopSec")) > 2 * STOP_TIMEOUT_S

    ui = unit_command(unit_value(webserver, "Service", "ExecStart"), {"DAGSTER_HOME": home})
    assert Path(ui[0]).name == "dagster-webserver" and _console_script("dagster-webserver")
    assert Path(ui[0]).parent == Path(serve[0]).parent, "both from the same environment"
    assert ui[ui.index("-w") + 1] == str(service_workspace(Path(home)))
    assert ui[ui.index("-h") + 1] == "127.0.0.1"
    wait = unit_command(unit_value(webserver, "Service", "ExecStartPre"), {"DAGSTER_HOME": home})
    assert wait[:2] == ["/bin/sh", "-c"] and "${DAGSTER_HOME}/.vt_dagster/code-server.sock" in wait[2]
    assert unit_value(webserver, "Unit", "PartOf") == unit_value(webserver, "Unit", "After") == PIPELINE_UNIT.name


def test_the_systemd_environment_files_name_documented_settings_and_hold_no_key() -> None:
    settings = read_env_file(PIPELINE_ENV)
    assert set(SECRET_VARIABLES) <= set(settings) and all(settings[name] == "" for name in SECRET_VARIABLES)
    for name in settings:
        assert f"| `{name}`" in README or name in SECRET_VARIABLES, f"{name} is not in the README's tables"
    assert read_env_file(DAGSTER_ENV) == {"DAGSTER_PG_URL": ""}
    for example, installed in ((PIPELINE_ENV, "vt-dagster.env"), (DAGSTER_ENV, "dagster.env")):
        assert f"install -o root -g root -m 0600 deploy/systemd/{example.name} /etc/vt-dagster/{installed}" in README


def _stop(process: subprocess.Popen, timeout: float) -> int | str:
    """SIGTERM, as systemd and Kubernetes stop them; the exit code, or why there was none."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return f"still running {timeout} s after SIGTERM"


def _here(command: list[str]) -> list[str]:
    """A unit's /opt/vt-dagster/venv/bin/<script> as the same script of this environment."""
    beside = Path(sys.executable).with_name(Path(command[0]).name)
    found = str(beside) if beside.exists() else shutil.which(Path(command[0]).name)
    assert found, command[0]
    return [found, *command[1:]]


def _location(url: str) -> tuple[str | None, float]:
    """(how the UI sees the vt_dagster location, when it last loaded it); None while it cannot say."""
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name updatedTimestamp "
             "locationOrLoadError { __typename } } } } }")
    try:
        answer = requests.post(f"{url}/graphql", json={"query": query}, timeout=5).json()
    except (requests.RequestException, ValueError):
        return None, 0.0
    for entry in answer["data"]["workspaceOrError"]["locationEntries"]:
        if entry["name"] == "vt_dagster":
            return (entry["locationOrLoadError"] or {}).get("__typename"), entry["updatedTimestamp"]
    return None, 0.0


@pytest.mark.service
@pytest.mark.timeout(420)
def test_the_units_commands_serve_the_code_location_to_the_separate_webserver(tmp_path: Path) -> None:
    """The pipeline unit's `serve --no-ui`, then the UI unit's wait and webserver: the UI loads
    the code location from serve's socket, and loads it again when serve alone restarts."""
    pipeline, webserver = _units()
    home = tmp_path / "dagster_home"
    marker = uuid.uuid4().hex
    env = {**os.environ, "DAGSTER_HOME": str(home), "VT_API_KEY": "unused", "VT_DEPLOY_TEST": marker}
    log = tmp_path / "serve.log"

    def start_serve() -> subprocess.Popen:
        with open(log, "ab") as output:
            return subprocess.Popen(_here(unit_command(unit_value(pipeline, "Service", "ExecStart"), env)),
                                    cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def wait_for_location(after: float) -> float:
        deadline = time.monotonic() + 180
        while True:
            status, loaded = _location(url)
            if status == "RepositoryLocation" and loaded > after:
                return loaded
            assert ui.poll() is None and serve.poll() is None, "a unit's command exited"
            assert time.monotonic() < deadline, f"the webserver did not load the code location (it says {status})"
            time.sleep(1)

    serve, ui, codes = start_serve(), None, []
    try:
        waited = subprocess.run(unit_command(unit_value(webserver, "Service", "ExecStartPre"), env), env=env,
                                timeout=180)
        assert waited.returncode == 0 and code_server_socket(home).is_socket()
        command = _here(unit_command(unit_value(webserver, "Service", "ExecStart"), env))
        port = free_port()
        command[command.index("-p") + 1] = str(port)  # the unit's 3000 may be taken here
        url = f"http://127.0.0.1:{port}"
        ui = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        first = wait_for_location(0.0)
        codes.append(_stop(serve, 90))
        serve = start_serve()
        wait_for_location(first)
    finally:
        codes += [_stop(ui, 30)] if ui else []
        codes.append(_stop(serve, 90))
    assert codes == [0] * len(codes), log.read_text(errors="replace")[-2000:]
    time.sleep(1)
    assert processes_with_env("VT_DEPLOY_TEST", marker) == {}, "every process of both units stopped"


@pytest.mark.service
@pytest.mark.timeout(240)
def test_the_images_command_answers_the_charts_readiness_probe(tmp_path: Path, values: dict[str, Any]) -> None:
    command = only(read_dockerfile(DOCKERFILE), "CMD").exec_form()
    port = free_port()
    command[command.index("-h") + 1] = "127.0.0.1"  # loopback here, 0.0.0.0 in the pod
    command[command.index("-p") + 1] = str(port)
    dagster = [sys.executable, "-m", "dagster"]
    marker = uuid.uuid4().hex
    env = {**os.environ, "VT_API_KEY": "unused", "DAGSTER_HOME": str(tmp_path), "VT_DEPLOY_TEST": marker}
    log = tmp_path / "code-server.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([*dagster, *command[1:]], cwd=tmp_path, env=env, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    # The chart's readinessProbe for a user deployment: `dagster api grpc-health-check -p <port>`.
    probe = [*dagster, "api", "grpc-health-check", "-p", str(port)]
    assert user_deployment(values)["port"] == int(only(read_dockerfile(DOCKERFILE), "EXPOSE").arguments)
    try:
        deadline = time.monotonic() + 180
        while subprocess.run(probe, env=env, capture_output=True, timeout=60).returncode != 0:
            assert server.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the code server never answered the readiness probe"
            time.sleep(2)
    finally:
        code = _stop(server, 60)
    assert code == 0, log.read_text(errors="replace")[-2000:]
    time.sleep(1)
    assert processes_with_env("VT_DEPLOY_TEST", marker) == {}
