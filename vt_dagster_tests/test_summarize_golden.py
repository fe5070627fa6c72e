"""Golden summaries: every shipped VT sample, bare or wrapped in `data`, summarizes to its golden file.

Golden files (`golden/<sample>.summary.json`) were generated once and then checked value by
value against the samples. After a deliberate change, regenerate them with
`VT_DAGSTER_WRITE_GOLDEN=1 python -m pytest vt_dagster_tests/test_summarize_golden.py` and review
the diff: a golden file is a claim about the sample, not a snapshot to wave through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vt_dagster_tests.summary_checks import (
    FEED_OF_TYPE,
    GOLDEN_DIR,
    SAMPLES_DIR,
    _bare,
    _golden_names,
    _load_sample,
    _summarize,
    assert_valid_summary,
)


def _samples() -> list[Path]:
    assert SAMPLES_DIR.is_dir(), (
        f"VT samples folder missing from the repository: {SAMPLES_DIR}"
    )
    return sorted(SAMPLES_DIR.glob("*.json"))


def test_every_sample_has_a_golden_summary() -> None:
    samples = _samples()
    assert samples, f"no *.json in {SAMPLES_DIR}"
    goldens = sorted(
        path.name.removesuffix(".summary.json") for path in GOLDEN_DIR.glob("*.summary.json")
    )
    assert [path.stem for path in samples] == goldens


@pytest.mark.parametrize("stem", _golden_names())
@pytest.mark.parametrize("shape", ["bare", "data"])
def test_golden_summary(stem: str, shape: str) -> None:
    sample = _bare(_load_sample(stem))
    obj = sample if shape == "bare" else {"data": sample}
    summary, dropped = _summarize(obj)
    golden_path = GOLDEN_DIR / f"{stem}.summary.json"
    if os.environ.get("VT_DAGSTER_WRITE_GOLDEN") == "1" and shape == "bare":
        golden_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    assert golden_path.is_file(), f"no golden summary {golden_path}: see this module's docstring"
    assert summary == json.loads(golden_path.read_text(encoding="utf-8"))
    assert dropped == 0
    assert_valid_summary(summary, FEED_OF_TYPE[sample["type"]])
