"""The VT API's endpoints as the emulator answers them: key, licence, lag, window, gaps, downloads.

`api_reply` serves `/api/v3/feeds/...` (a `302` to a signed download URL, or VT's errors),
`download_reply` the signed URL, `admin_reply` the `/_emulator/...` calls that drive and observe
a server from another process. They are the emulator's own request path, split from
`FeedsEmulator` for size, so they use its private state as its methods did.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
from typing import TYPE_CHECKING, Any

from vt_dagster.emulator.config import EmulatorConfig, floor_minute
from vt_dagster.emulator.replies import EmulatorError, Reply, error_reply, json_reply
from vt_dagster.feeds import (
    HOURLY_LAG,
    MINUTE_FORMAT,
    MINUTE_LAG,
    RETENTION,
    Feed,
    UnknownFeedError,
    get_feed,
    parse_hour_key,
    parse_minute_key,
)

if TYPE_CHECKING:
    from vt_dagster.emulator.server import FeedsEmulator

API_PREFIX = "/api/v3"
DOWNLOAD_PREFIX = "/_download/"
ADMIN_PREFIX = "/_emulator/"
HOUR = dt.timedelta(hours=1)


_MINUTE_ROUTE = re.compile(rf"{API_PREFIX}/feeds/([^/]+)/([^/]+)/?")
_HOURLY_ROUTE = re.compile(rf"{API_PREFIX}/feeds/([^/]+)/hourly/([^/]+)/?")


def api_reply(emulator: FeedsEmulator, method: str, path: str, api_key: str | None, origin: str) -> Reply:
    """Everything under /api/v3: key, quota, then the feed endpoints."""
    _authenticate(emulator.config, api_key)
    if emulator._roll(emulator.config.fail_rate):
        raise EmulatorError(503, "TransientError", "the service is temporarily unavailable, retry later")
    if not emulator._rate.allow():
        raise EmulatorError(429, "QuotaExceededError",
                            f"quota of {emulator.config.rate_limit_per_minute} requests per minute exceeded")
    hourly = _HOURLY_ROUTE.fullmatch(path)
    minute = None if hourly else _MINUTE_ROUTE.fullmatch(path)
    if method != "GET" or (hourly is None and minute is None):
        raise EmulatorError(404, "NotFoundError", f"{method} {path} is not an endpoint")
    if hourly is not None:
        feed = _licensed_feed(emulator.config, hourly.group(1))
        return _redirect(origin, emulator.download_token("h", feed, _check_hour(emulator, feed, hourly.group(2))))
    assert minute is not None
    feed = _licensed_feed(emulator.config, minute.group(1))
    return _redirect(origin, emulator.download_token("m", feed, _check_minute(emulator, feed, minute.group(2))))


def _authenticate(config: EmulatorConfig, api_key: str | None) -> None:
    if not api_key:
        raise EmulatorError(401, "AuthenticationRequiredError",
                            "an API key is required: send it in the x-apikey header")
    if not hmac.compare_digest(api_key.encode(), config.api_key.encode()):
        raise EmulatorError(401, "WrongCredentialsError", "wrong API key")


def _licensed_feed(config: EmulatorConfig, name: str) -> Feed:
    try:
        feed = get_feed(name)
    except UnknownFeedError:
        raise EmulatorError(404, "NotFoundError", f"feed {name!r} not found") from None
    if feed.name not in config.licensed_feeds and feed.api_path not in config.licensed_feeds:
        raise EmulatorError(403, "ForbiddenError", f"no licence for the {feed.api_path} feed: "
                            "you are not allowed to perform the requested operation")
    return feed


def _check_minute(emulator: FeedsEmulator, feed: Feed, key: str) -> str:
    try:
        minute = parse_minute_key(key)
    except ValueError as error:
        raise EmulatorError(400, "BadRequestError", str(error)) from None
    now = floor_minute(emulator.config.current_time())
    if minute > now - MINUTE_LAG:
        newest = (now - MINUTE_LAG).strftime(MINUTE_FORMAT)
        raise EmulatorError(400, "NotAvailableYet", f"batch {key} is not available yet: the newest is {newest}")
    if minute < now - RETENTION:
        raise EmulatorError(404, "NotFoundError", f"batch {key} is older than 7 days")
    if not emulator.minute_exists(feed, key):
        raise EmulatorError(404, "NotFoundError", f"no {feed.api_path} batch for {key}")
    return key


def _check_hour(emulator: FeedsEmulator, feed: Feed, key: str) -> str:
    try:
        hour = parse_hour_key(key)
    except ValueError as error:
        raise EmulatorError(400, "BadRequestError", str(error)) from None
    now = floor_minute(emulator.config.current_time())
    if hour > now - HOURLY_LAG:
        raise EmulatorError(400, "NotAvailableYet", f"hourly package {key} is not available yet (2 hours lag)")
    if hour + HOUR <= now - RETENTION:
        raise EmulatorError(404, "NotFoundError", f"hourly package {key} is older than 7 days")
    if not emulator.hour_minutes(feed, hour):
        raise EmulatorError(404, "NotFoundError", f"no {feed.api_path} batches in hour {key}")
    return key


def _redirect(origin: str, token: str) -> Reply:
    return Reply(302, headers={"Location": f"{origin}{DOWNLOAD_PREFIX}{token}"})


def download_reply(emulator: FeedsEmulator, method: str, token: str) -> Reply:
    """The signed download URL: no API key needed, like VT's storage links."""
    if method != "GET":
        raise EmulatorError(404, "NotFoundError", "downloads are GET only")
    kind, feed, key = emulator.read_token(token)
    try:
        if kind == "h":
            body, filename = emulator.hourly_package(feed, key), f"{key}.tar.bz2"
        else:
            body, filename = emulator.minute_batch(feed, key), f"{key}.bz2"
    except OSError as error:  # a batch file removed from batch_dir since the index was built
        raise EmulatorError(404, "NotFoundError", f"batch {key} is gone: {error.strerror}") from None
    return Reply(200, body, {"Content-Disposition": f'attachment; filename="{filename}"'},
                 content_type="application/octet-stream", is_download=True)


def admin_reply(emulator: FeedsEmulator, method: str, path: str, body: bytes) -> Reply:
    """/_emulator/{faults,requests,status}: drive and observe the emulator from another process."""
    route = (method, path.rstrip("/"))
    try:
        if route == ("POST", "/_emulator/faults"):
            return _add_fault(emulator, body)
        if route == ("GET", "/_emulator/faults"):
            return json_reply({"faults": emulator._faults.pending()})
        if route == ("DELETE", "/_emulator/faults"):
            emulator.clear_faults()
            return json_reply({"faults": []})
        if route == ("GET", "/_emulator/requests"):
            return json_reply({"requests": [record.as_dict() for record in emulator.requests]})
        if route == ("DELETE", "/_emulator/requests"):
            emulator.clear_requests()
            return json_reply({"requests": []})
        if route == ("GET", "/_emulator/status"):
            return json_reply(_status(emulator))
        raise EmulatorError(404, "NotFoundError", f"{method} {path} is not an emulator endpoint")
    except EmulatorError as error:
        return error_reply(error)


def _add_fault(emulator: FeedsEmulator, body: bytes) -> Reply:
    try:
        request = json.loads(body or b"{}")
        emulator.inject_fault(request["kind"], int(request.get("count", 1)),
                              request.get("path_contains"), request.get("seconds"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise EmulatorError(400, "BadRequestError", f"bad fault {body[:200]!r}: {error}") from None
    return json_reply({"faults": emulator._faults.pending()}, status=201)


def _status(emulator: FeedsEmulator) -> dict[str, Any]:
    config = emulator.config
    return {"base_url": emulator.base_url, "now": config.current_time().isoformat(),
            "seed": config.seed, "licensed_feeds": sorted(config.licensed_feeds),
            "objects_per_minute": config.objects_per_minute,
            "batch_dir": str(config.batch_dir) if config.batch_dir else None,
            "batch_files": len(emulator._batch_files)}
