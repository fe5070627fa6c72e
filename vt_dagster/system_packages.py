"""Debian packages the project runs but pip cannot bring: Chromium (the UI tests) and
PostgreSQL (`vt-dagster local-postgres`), installed with apt when we are root.

`vt-dagster install-system-packages` is the set-up step of the README's test command: one
`apt-get update`, one install of whatever is missing, nothing when everything is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


class SystemPackagesUnavailable(RuntimeError):
    """A Debian package is missing and cannot be installed here; the message says which."""


def apt_install(packages: Sequence[str]) -> None:
    """`apt-get update` then `apt-get install -y` of `packages`, as root, without questions."""
    if not packages:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemPackagesUnavailable(
            f"{', '.join(packages)} not installed: run `apt-get install {' '.join(packages)}` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise SystemPackagesUnavailable(f"`{' '.join(command)}` failed: {' '.join(tail)}")


def install_system_packages() -> dict[str, str]:
    """Chromium and PostgreSQL, each found or installed (one apt run for both): name -> where."""
    from vt_dagster.browser import CHROMIUM_PACKAGE, find_chromium
    from vt_dagster.local_postgres import POSTGRES_PACKAGE, find_postgres_bin

    missing = [package for package, found in ((CHROMIUM_PACKAGE, find_chromium()),
                                              (POSTGRES_PACKAGE, find_postgres_bin())) if found is None]
    apt_install(missing)
    found = {CHROMIUM_PACKAGE: find_chromium(), POSTGRES_PACKAGE: find_postgres_bin()}
    absent = [package for package, where in found.items() if where is None]
    if absent:
        raise SystemPackagesUnavailable(f"apt installed {', '.join(absent)} but its programs were not found")
    return {package: str(where) for package, where in found.items()}
