"""Deterministic, realistic VirusTotal feed objects and minute batches, free of HTTP: the public API.

The emulator is the project's offline default, so the objects have to look like what the real
feeds deliver (same shapes as `GET /files/{id}` and friends, see `vt_dagster_tests/data/vt_samples`),
with the untidiness of real data: fields come and go, lists are empty, URLs carry IDN hosts, ports,
userinfo, upper-case hosts and certificate-authority noise that the URL whitelist must drop.
One module per object type makes them (`files`, `urls`, `hosts`, `behaviours`, drawing on
`values` and `verdicts`); this one picks the maker per feed, sizes the batch and serialises it.

Everything is drawn from one `random.Random` seeded by a string (string seeds are hashed with
SHA-512, unlike `hash()`, which is salted per process), so a batch is byte-identical on every run.
"""

from __future__ import annotations

import bz2
import datetime as dt
import json
import random
from typing import Callable

from vt_dagster.emulator.behaviours import behaviour_object, behaviour_objects
from vt_dagster.emulator.files import file_object
from vt_dagster.emulator.hosts import domain_object, ip_object
from vt_dagster.emulator.urls import url_object
from vt_dagster.emulator.values import Obj, random_hex
from vt_dagster.feeds import get_feed, parse_minute_key

BATCH_COMPRESSLEVEL = 9
SIZE_VARIATION = 0.2

ObjectMaker = Callable[[random.Random, dt.datetime], Obj]
OBJECT_MAKERS: dict[str, ObjectMaker] = {
    "files": file_object,
    "urls": url_object,
    "domains": domain_object,
    "ip_addresses": ip_object,
    "file_behaviours": lambda rng, batch_time: behaviour_object(rng, batch_time, random_hex(rng, 64)),
}


def generate_object(feed_name: str, rng: random.Random, batch_time: dt.datetime) -> Obj:
    """One bare VT object as it appears on a line of `feed_name`'s batch for `batch_time`."""
    return OBJECT_MAKERS[get_feed(feed_name).name](rng, batch_time.astimezone(dt.timezone.utc))


def batch_size(objects: int, rng: random.Random) -> int:
    """A minute's object count: `objects` ±20 %, never 0 unless `objects` is 0."""
    if objects <= 0:
        return 0
    return max(1, round(objects * (1 + SIZE_VARIATION * (2 * rng.random() - 1))))


def batch_seed(feed_name: str, minute_key: str, seed: int) -> str:
    """The RNG seed of one batch: a string, because `random` hashes strings with SHA-512."""
    return f"vt-emulator/{seed}/{get_feed(feed_name).name}/{minute_key}"


def generate_objects(feed_name: str, minute_key: str, seed: int, objects: int) -> list[Obj]:
    """The objects of one minute batch, in order (what `generate_batch` serialises)."""
    feed = get_feed(feed_name)
    batch_time = parse_minute_key(minute_key)
    rng = random.Random(batch_seed(feed.name, minute_key, seed))
    count = batch_size(objects, rng)
    if feed.name == "file_behaviours":
        return behaviour_objects(rng, batch_time, count)
    make = OBJECT_MAKERS[feed.name]
    return [make(rng, batch_time) for _ in range(count)]


def serialize_lines(objects: list[Obj]) -> bytes:
    """UTF-8 JSON lines, compact like VT's, one object per line."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return "".join(dumps(obj) + "\n" for obj in objects).encode("utf-8")


def generate_batch(feed_name: str, minute_key: str, seed: int, objects: int) -> bytes:
    """The bz2 (level 9) JSON-lines batch of `feed_name` for `minute_key`; same args, same bytes."""
    lines = serialize_lines(generate_objects(feed_name, minute_key, seed, objects))
    return bz2.compress(lines, BATCH_COMPRESSLEVEL)
