"""The one error type for configuration the user must fix: an environment variable or a flag.

Its message is one line that starts with the setting's name, e.g.
`VT_FEEDS: unknown feed 'nonsense' (known: files, urls, ...)`, and every entry point shows
that same line: the CLIs print it and exit with code 2, the code location fails to load
with it, the summaries asset fails its run with it.
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """`setting` (a variable such as `VT_FEEDS`, or a flag such as `--feeds`) is wrong: `problem` says how."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigurationError], tuple[str, str]]:
        return type(self), (self.setting, self.problem)
