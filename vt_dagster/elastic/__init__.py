"""Elasticsearch for vt_dagster: settings, names, setup, bulk indexing, counts, look-ups, search.

Free of Dagster so the assets, the sensor, the CLI and the tests share one implementation.
Every function that talks to Elasticsearch turns transport failures into one-line errors:
`ElasticsearchUnavailable` (nothing answers at the URL) and `ElasticsearchRequestError`
(the cluster refused a request). Per-document bulk failures are counted, never raised: the
caller decides what a failed document means.

Two index families, each with one write alias per feed:

- summaries (`<prefix>-summaries-<feed>`): one flat summary per VT object and batch, `_id` =
  `summary_doc_id(batch, vt_id)`, so re-indexing a batch overwrites instead of duplicating.
- reports (`<prefix>-reports-<feed>`, or `ES_REPORT_ALIAS_<FEED>`): the full VT object, `_id` =
  `report_doc_id(vt_id)` (Assemblyline's convention), written with external versioning
  (version = the batch minute) so an older batch never overwrites a newer report.

`_id` is unique inside one index only, and ILM rolls each alias over to a new write index
every day. So the indexer looks each bulk request's ids up across the whole alias first and,
once the documents are written, deletes their copies from the other indices (`copies`): a
batch indexed again before or after any number of rollovers leaves one summary per (batch,
object), and an object analysed again one report, the newest, in the whole alias; a report
older than a copy anywhere in the alias is not written. Counts and checks count each
document once. Look-ups still collapse on the VT id and keep the highest `vt.batch_time`,
for copies written by anything else sharing an alias.

One module per concern; this package re-exports what callers use.
"""

from vt_dagster.batch_lines import BatchReadError as BatchReadError
from vt_dagster.elastic.bulk import (
    DEFAULT_CHUNK_SIZE, DEFAULT_INITIAL_BACKOFF_S, DEFAULT_MAX_CHUNK_BYTES, DEFAULT_MAX_RETRIES,
    IndexResult, index_reports, index_summary_file, run_concurrently,
)
from vt_dagster.elastic.client import (
    CONNECT_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_URL, TRANSPORT_RETRIES, EsSettings,
    QuickConnectNode, make_client, settings_from_env,
)
from vt_dagster.elastic.counts import MAX_BATCHES_PER_REQUEST, alias_exists, batch_counts, refresh_alias
from vt_dagster.elastic.errors import (
    ElasticsearchError, ElasticsearchRequestError, ElasticsearchUnavailable, InvalidQueryError,
    cluster_url, describe_api_error,
)
from vt_dagster.elastic.lookup import LookupKey, lookup, lookup_keys
from vt_dagster.elastic.names import (
    DEFAULT_PREFIX, batch_time, batch_version, bootstrap_index, check_name, family_name, report_alias,
    report_doc_id, summary_alias, summary_doc_id, url_id,
)
from vt_dagster.elastic.search import query_syntax_problem, search_summaries
from vt_dagster.elastic.setup import (
    FAMILIES, HASH_KEY, REPORTS, SUMMARIES, TEMPLATES_DIR, IndexFamily, ReplicaPlan, SetupAction, TemplateFileError,
    alias_template, family_template, ilm_availability, ilm_policy_body, load_json_file, setup_elasticsearch,
)
# Re-exported for the callers that print search hits as they always did (the demo).
from vt_dagster.search_output import summaries_table as summaries_table

__all__ = [
    "BatchReadError", "CONNECT_TIMEOUT_S", "DEFAULT_CHUNK_SIZE", "DEFAULT_INITIAL_BACKOFF_S",
    "DEFAULT_MAX_CHUNK_BYTES", "DEFAULT_MAX_RETRIES", "DEFAULT_PREFIX", "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_URL", "FAMILIES", "HASH_KEY", "MAX_BATCHES_PER_REQUEST", "REPORTS", "SUMMARIES",
    "TEMPLATES_DIR", "TRANSPORT_RETRIES", "ElasticsearchError", "ElasticsearchRequestError",
    "ElasticsearchUnavailable", "EsSettings", "IndexFamily", "IndexResult", "InvalidQueryError",
    "LookupKey", "QuickConnectNode", "ReplicaPlan", "SetupAction", "TemplateFileError", "alias_exists",
    "alias_template", "batch_counts", "batch_time", "batch_version", "bootstrap_index",
    "check_name", "cluster_url", "describe_api_error", "family_name", "family_template",
    "ilm_availability", "ilm_policy_body", "index_reports", "index_summary_file",
    "load_json_file", "lookup", "lookup_keys", "make_client", "query_syntax_problem",
    "refresh_alias", "report_alias", "report_doc_id", "run_concurrently", "search_summaries",
    "settings_from_env", "setup_elasticsearch", "summaries_table", "summary_alias",
    "summary_doc_id", "url_id",
]
