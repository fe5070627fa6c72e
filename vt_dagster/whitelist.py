"""The URL whitelist: hosts whose URLs are noise in VT URL lists (CRL/OCSP, XML schemas...).

The list is data, not code: `vt_dagster/data/url_whitelist.txt` ships with the package and
users can point at their own file. A URL is whitelisted when its host equals an entry or is a
subdomain of one (label boundary, case-insensitive, IDNA-normalised). Anything that cannot be
parsed is *kept*: a garbage URL must never disappear by accident.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from vt_dagster.config_errors import ConfigurationError

DEFAULT_RESOURCE = ("vt_dagster", "data/url_whitelist.txt")
# Decisions are cached per authority ("user@host:port"); the same hosts repeat all the time.
_DECISION_CACHE_LIMIT = 200_000
# The authority part of a URL: after an RFC 3986 scheme and "://" (or a bare "//"), up to
# the path, query or fragment (backslash too: browsers treat it as "/"). A "://" after
# anything but a scheme ("a.com/x?u=http://...") is part of the path.
_AUTHORITY = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*://|//)?([^/?#\\]*)")
_NOT_IN_HOSTS = frozenset(" \t\r\n@[]<>\"'`{}|^")


URL_WHITELIST_VARIABLE = "VT_URL_WHITELIST"


class WhitelistError(ValueError):
    """A whitelist file that cannot be read or holds a line that is not a host.

    Its message names the file, not the setting that chose it: `load_url_whitelist` adds that.
    """


def _authority(url: str) -> str:
    """The authority part of `url` ("user@host:port"), tolerating scheme-less URLs.

    `urlsplit("crl.microsoft.com:80/x")` would take the host for a scheme, so the
    authority is cut out by hand and only it goes to urllib.
    """
    return _AUTHORITY.match(url.strip())[1]  # type: ignore[index] # the pattern matches any text


@lru_cache(maxsize=65_536)
def normalise_host(authority: str) -> str | None:
    """The comparable form of the host in `authority`, or None when it is not a host.

    Lower case, no userinfo, port or trailing dot, IPv6 compressed, IDN in punycode
    (so `bücher.example` and `xn--bcher-kva.example` compare equal).
    """
    return _normalise_host(authority)


def _normalise_host(authority: str) -> str | None:
    """`normalise_host` uncached (the whitelist caches its decisions per authority)."""
    if authority.isascii() and "@" not in authority and "[" not in authority:
        host: str | None = authority.partition(":")[0].lower()  # what urlsplit would do
    else:
        try:
            host = urlsplit("//" + authority).hostname
        except ValueError:
            return None
    if not host:
        return None
    host = host.rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0]).compressed
        except ValueError:
            return None
    if not host or not _NOT_IN_HOSTS.isdisjoint(host):
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host


def host_of(url: str) -> str | None:
    """The normalised host of `url` (scheme optional), or None if it has none."""
    if not isinstance(url, str):
        return None
    return normalise_host(_authority(url))


def _is_ip_literal(host: str) -> bool:
    """IP hosts match entries exactly: "label boundaries" mean nothing in an address."""
    return ":" in host or host.replace(".", "").isdigit()


class UrlWhitelist:
    """A set of hosts; URLs on those hosts (or their subdomains) are dropped as noise."""

    def __init__(self, hosts: Iterable[str] = (), *, source: str = "<memory>") -> None:
        self.source = source
        normalised: set[str] = set()
        for entry in hosts:
            host = self._entry_host(entry)
            if host is None:
                raise WhitelistError(f"URL whitelist {source}: {entry!r} is not a host name")
            normalised.add(host)
        self._hosts = frozenset(normalised)
        self._decisions: dict[str, bool] = {}

    @staticmethod
    def _entry_host(entry: str) -> str | None:
        """Entries may be written as hosts, `*.host`, `.host` or whole URLs."""
        text = entry.strip()
        try:
            return ipaddress.ip_address(text.strip("[]")).compressed
        except ValueError:
            pass
        if text.startswith("*."):
            text = text[2:]
        return host_of(text.lstrip("."))

    @classmethod
    def default(cls) -> UrlWhitelist:
        """The whitelist shipped with the package (loaded once per process)."""
        return _default_whitelist()

    @classmethod
    def from_file(cls, path: str | Path) -> UrlWhitelist:
        """Load a user's whitelist: one host per line, `#` starts a comment."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise WhitelistError(f"no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise WhitelistError(f"cannot read {path}: {reason}") from None
        return cls.from_text(text, source=str(path))

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>") -> UrlWhitelist:
        """Parse whitelist text; a bad line names its file and line number."""
        hosts: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if cls._entry_host(entry) is None:
                raise WhitelistError(f"{source}, line {number}: {entry!r} is not a host name")
            hosts.append(entry)
        return cls(hosts, source=source)

    @property
    def hosts(self) -> frozenset[str]:
        """The normalised entries."""
        return self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    def __repr__(self) -> str:
        return f"UrlWhitelist({len(self._hosts)} hosts from {self.source})"

    def is_whitelisted(self, url: str) -> bool:
        """True when `url`'s host is an entry or a subdomain of one; False for garbage."""
        if not isinstance(url, str):
            return False
        authority = _authority(url)
        decision = self._decisions.get(authority)
        if decision is None:
            decision = self._decide(_normalise_host(authority))
            if len(self._decisions) >= _DECISION_CACHE_LIMIT:
                self._decisions.clear()
            self._decisions[authority] = decision
        return decision

    def _decide(self, host: str | None) -> bool:
        if not host:
            return False
        hosts = self._hosts
        if host in hosts:
            return True
        suffix = host
        dot = suffix.find(".")
        while dot >= 0:
            suffix = suffix[dot + 1 :]
            if suffix in hosts:  # an address only matches whole (checked on a hit: most miss)
                return not _is_ip_literal(host)
            dot = suffix.find(".")
        return False

    def filter(self, urls: Iterable[str]) -> tuple[list[str], int]:
        """(URLs kept in their order, number dropped as whitelisted)."""
        kept: list[str] = []
        dropped = 0
        for url in urls:
            if self.is_whitelisted(url):
                dropped += 1
            else:
                kept.append(url)
        return kept, dropped


@cache
def _default_whitelist() -> UrlWhitelist:
    package, name = DEFAULT_RESOURCE
    resource = resources.files(package).joinpath(name)
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WhitelistError(f"cannot read the packaged URL whitelist {resource}: {exc}") from None
    return UrlWhitelist.from_text(text, source=f"{package}/{name}")


def url_whitelist_path_from_env() -> Path | None:
    """The file `VT_URL_WHITELIST` names; None (unset or empty) means the shipped list."""
    value = os.environ.get(URL_WHITELIST_VARIABLE, "").strip()
    return Path(value).expanduser() if value else None


def load_url_whitelist(path: Path | None, setting: str = URL_WHITELIST_VARIABLE) -> UrlWhitelist:
    """The whitelist in `path` (None: the shipped list), read now so that a missing, unreadable
    or malformed file is refused before any work, as a `ConfigurationError` naming `setting`
    (`VT_URL_WHITELIST`, or the `--url-whitelist` flag that replaces it)."""
    if path is None:
        return UrlWhitelist.default()
    try:
        return UrlWhitelist.from_file(path)
    except WhitelistError as exc:
        raise ConfigurationError(setting, str(exc)) from None
