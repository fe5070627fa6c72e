"""vt_dagster: a Dagster pipeline that keeps a searchable Elasticsearch copy of the VirusTotal feeds."""

__version__ = "0.1.0"
