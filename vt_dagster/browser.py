"""Debian's Chromium for the UI tests: found, or installed with apt when we are root.

Playwright's own browser download cannot work on machines that reach only package
registries, so the tests drive the distribution's Chromium instead.
"""

from __future__ import annotations

import os
import shutil

CHROMIUM_PACKAGE = "chromium"
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
    from vt_dagster.system_packages import SystemPackagesUnavailable, apt_install

    found = find_chromium()
    if found:
        return found
    try:
        apt_install([CHROMIUM_PACKAGE])
    except SystemPackagesUnavailable as exc:
        raise BrowserUnavailable(str(exc)) from None
    found = find_chromium()
    if not found:
        raise BrowserUnavailable("apt installed chromium but no chromium binary was found")
    return found
