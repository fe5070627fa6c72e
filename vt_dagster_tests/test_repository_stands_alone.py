"""The repository stands alone: a user clones it into an empty folder and nothing else.

Nothing in it (package, tests, benches, scripts) may read a path outside the repository,
such as a `shared/` folder a development machine happens to have beside the checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "vt_dagster_tests" / "data" / "vt_samples"
# Folders that hold project files (what a clone gets), not build or run output.
CHECKED = ("vt_dagster", "vt_dagster_tests", "bench", "logstash", "index_templates", "docs", ".ci", "deploy")
CHECKED_FILES = ("pyproject.toml", "workspace.yaml", "README.md")
TEXT_SUFFIXES = {"", ".py", ".md", ".toml", ".yaml", ".yml", ".json", ".conf", ".txt", ".sh", ".cfg",
                 ".service", ".example", ".dockerignore"}
# A way out of the repository: the sibling `shared` folder, a `..` joined onto a path, or a
# `parents[N]` deep enough to leave the repository from a file one folder down. (Strings
# such as "../../etc/pwd" that tests feed in as bad input are not reads and stay allowed.)
ESCAPES = (
    re.compile(r"""/\s*["']\.\.["'/]"""),
    re.compile(r"""Path\(\s*["']\.\."""),
    re.compile(r"""\bos\.pardir\b"""),
    re.compile(r"""open\(\s*f?["']\.\./"""),
    re.compile(r"""/\s*["']shared["']"""),
    re.compile(r"""\bshared/vt_samples\b"""),
    re.compile(r"""\.parents\[(?:[2-9]|\d{2,})\]"""),
)


def _project_files() -> list[Path]:
    files = [REPO / name for name in CHECKED_FILES]
    for folder in CHECKED:
        for path in (REPO / folder).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file() or path.suffix not in TEXT_SUFFIXES:
                continue
            files.append(path)
    return files


def test_no_project_file_reaches_outside_the_repository() -> None:
    this_file = Path(__file__).resolve()
    offenders = []
    for path in _project_files():
        if path == this_file:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if any(pattern.search(line) for pattern in ESCAPES):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)


def test_the_guard_catches_the_ways_out() -> None:
    caught = [
        'SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "vt_samples"',
        'open("../shared/vt_samples/x.json")',
        'root = Path(__file__).parent / ".."',
    ]
    allowed = ['REPO = Path(__file__).resolve().parents[1]', 'bad = ["../../etc/pwd"]  # rejected input',
               'cd "$(dirname "$0")/.."']
    assert all(any(p.search(line) for p in ESCAPES) for line in caught)
    assert not any(p.search(line) for p in ESCAPES for line in allowed)


def test_every_shipped_sample_has_its_provenance() -> None:
    sources = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8")
    samples = sorted(path.name for path in SAMPLES.glob("*.json"))
    assert samples, f"no VT samples in {SAMPLES}"
    for name in samples:
        row = next((line for line in sources.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, f"{name} has no row in SOURCES.md"
        assert re.search(r"\b(MIT|Apache-2\.0|BSD-\d-Clause)\b", row), f"{name}: no licence in {row}"


@pytest.mark.timeout(600)
def test_sample_loading_tests_pass_from_a_copy_in_an_empty_folder(tmp_path: Path) -> None:
    """Copy what `git ls-files` would give a clone into an empty folder and run, there, every
    test that loads the shipped samples: with nothing beside the copy they must still pass."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=False)
    if listed.returncode != 0:
        pytest.fail(f"git ls-files failed in {REPO}: {listed.stderr.strip()}")
    clone = tmp_path / "empty" / "vt_dagster"
    for name in listed.stdout.splitlines():
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (clone.parent / "shared").exists()
    summarize = sorted(f"vt_dagster_tests/{path.name}"
                       for path in (REPO / "vt_dagster_tests").glob("test_summarize_*.py"))
    assert summarize, "no vt_dagster_tests/test_summarize_*.py: which tests load the samples?"
    tests = [*summarize, "vt_dagster_tests/test_summaries.py",
             "vt_dagster_tests/test_repository_stands_alone.py::test_every_shipped_sample_has_its_provenance"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "unit", *tests],
        cwd=clone, capture_output=True, text=True, check=False,
    )
    tail = "\n".join(run.stdout.splitlines()[-25:])
    assert run.returncode == 0, f"sample-loading tests failed in a lone copy:\n{tail}\n{run.stderr[-2000:]}"
    assert re.search(r"\b\d+ passed\b", tail) and " failed" not in tail, tail
