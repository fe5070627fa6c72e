"""The VirusTotal feeds emulator: realistic generated batches behind a VT-like HTTP API.

It is the offline default of the project (demo and tests): point `VT_API_URL` at
`FeedsEmulator.base_url` and use its API key.
"""

from __future__ import annotations

from vt_dagster.emulator.generator import (
    batch_size,
    generate_batch,
    generate_object,
    generate_objects,
    serialize_lines,
)
from vt_dagster.emulator.server import (
    DEFAULT_API_KEY,
    DEFAULT_OBJECTS_PER_MINUTE,
    DEFAULT_PORT,
    FAULT_KINDS,
    REAL_SCALE,
    EmulatorConfig,
    FeedsEmulator,
    RequestRecord,
    add_arguments,
    build_hourly_package,
    index_batch_dir,
    run_from_args,
)

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
