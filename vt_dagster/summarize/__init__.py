"""Summaries of VT objects: the notable values of one object as one small flat document.

Pure functions, no Dagster and no services, so the assets, the CLI and the tests share them.
The schema (every field, its type and meaning) is documented in `docs/summary-schema.md` and
mapped by `index_templates/vt_summaries.template.json`; tests keep the three in step.

Conventions: flat dotted keys (`hash.md5`), ECS names where ECS has the field, `vt.*` for the
rest; no key without a value (no nulls, no empty lists); `*_date` fields are epoch seconds;
lists are deduplicated in order and capped; related-URL lists go through the URL whitelist.
A summarizer never raises on a valid JSON object: whatever it cannot read, it drops.

The package, split by concern (this module re-exports its public names):
  values.py      readers: JSON value -> summary value or None, and the caps
  fields.py      the summary under construction and the table-driven field copy
  common.py      field rows and extractors several object types share
  files.py       file objects
  urls.py        URL objects
  network.py     domain and IP address objects
  behaviours.py  file behaviour (sandbox report) objects
  objects.py     one spec per type, the entry points, what the summarizers read
"""

from vt_dagster.summarize.behaviours import MAX_BEHAVIOUR_PATHS
from vt_dagster.summarize.objects import (
    ATTRIBUTES_READ, NESTED_KEYS_READ, TOP_LEVEL_KEYS_READ, NotAVTObjectError, summarize_domain_object,
    summarize_file_behaviour_object, summarize_file_object, summarize_ip_address_object, summarize_object,
    summarize_url_object,
)
from vt_dagster.summarize.values import MAX_LIST_ITEMS, MAX_STRING_CHARS

__all__ = [
    "ATTRIBUTES_READ", "MAX_BEHAVIOUR_PATHS", "MAX_LIST_ITEMS", "MAX_STRING_CHARS", "NESTED_KEYS_READ",
    "TOP_LEVEL_KEYS_READ", "NotAVTObjectError", "summarize_domain_object", "summarize_file_behaviour_object",
    "summarize_file_object", "summarize_ip_address_object", "summarize_object", "summarize_url_object",
]
