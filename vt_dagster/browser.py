"""Debian's Chromium for the UI tests: found, or installed with apt when we are root.

Playwright's own browser download cannot work on machines that reach only package
registries, so the tests drive the distribution's Chromium instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Without these, Chromium keeps trying hosts this closed network refuses.
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)


class BrowserUnavailable(RuntimeError):
    """No Chromium, and no way to install it here."""


def find_chromium() -> str | None:
    for candidate in (os.environ.get("VT_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_chromium() -> str:
    """The Chromium binary, installing Debian's `chromium` package first if it is missing."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable("Chromium is not installed: run `apt-get install chromium` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise BrowserUnavailable(f"`{' '.join(command)}` failed: {' '.join(tail)}")
    found = find_chromium()
    if not found:
        raise BrowserUnavailable("apt installed chromium but no chromium binary was found")
    return found
