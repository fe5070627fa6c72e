"""Which processes are still running with a given environment: proof that a command stopped
everything it started, whatever session or process group those ended up in."""

from __future__ import annotations

from pathlib import Path


def processes_with_env(name: str, value: str) -> dict[int, str]:
    """Pid and command line of the live processes whose environment has `name=value`."""
    wanted = f"{name}={value}".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = next((line for line in (proc / "status").read_text().splitlines() if line.startswith("State:")), "")
            if "zombie" in state:
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            found[int(proc.name)] = command.decode(errors="replace").strip()
        except OSError:
            continue
    return found
