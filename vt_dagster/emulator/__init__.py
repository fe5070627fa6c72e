"""The VirusTotal feeds emulator: realistic generated batches behind a VT-like HTTP API.

It is the offline default of the project (demo and tests): point `VT_API_URL` at
`FeedsEmulator.base_url` and use its API key.

One module per concern. Generating: `generator` (the public API) over `values`, `verdicts`,
`file_types`, `files`, `urls`, `hosts` and `behaviours`. Serving: `server` (`FeedsEmulator`
and its HTTP handler) over `config`, `routes`, `replies`, `faults` and `batches`; `cli` is
`vt-dagster emulator`. This package re-exports what callers use.
"""

from __future__ import annotations

from vt_dagster.emulator.batches import build_hourly_package, index_batch_dir
from vt_dagster.emulator.cli import add_arguments, run_from_args
from vt_dagster.emulator.config import (
    DEFAULT_API_KEY,
    DEFAULT_OBJECTS_PER_MINUTE,
    DEFAULT_PORT,
    REAL_SCALE,
    EmulatorConfig,
)
from vt_dagster.emulator.faults import FAULT_KINDS
from vt_dagster.emulator.generator import (
    batch_size,
    generate_batch,
    generate_object,
    generate_objects,
    serialize_lines,
)
from vt_dagster.emulator.server import FeedsEmulator, RequestRecord

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_OBJECTS_PER_MINUTE",
    "DEFAULT_PORT",
    "FAULT_KINDS",
    "REAL_SCALE",
    "EmulatorConfig",
    "FeedsEmulator",
    "RequestRecord",
    "add_arguments",
    "batch_size",
    "build_hourly_package",
    "generate_batch",
    "generate_object",
    "generate_objects",
    "index_batch_dir",
    "run_from_args",
    "serialize_lines",
]
