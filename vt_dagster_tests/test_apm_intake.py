"""The test APM intake receives what the real elastic-apm agent sends."""

from __future__ import annotations

import elasticapm
import pytest

from vt_dagster_tests.apm_intake import ApmIntake


@pytest.mark.service
def test_real_agent_delivers_transaction_span_and_error_to_intake() -> None:
    with ApmIntake() as intake:
        client = elasticapm.Client(
            service_name="vt-dagster-test", server_url=intake.url, central_config=False,
            metrics_interval="0ms", cloud_provider="none", api_request_time="50ms",
        )
        try:
            client.begin_transaction("download")
            with elasticapm.capture_span("GET /feeds/files", span_type="external", span_subtype="http"):
                pass
            try:
                raise ValueError("bad batch")
            except ValueError:
                client.capture_exception()
            client.end_transaction("files/raw_batch", "failure")
        finally:
            client.close()

        assert intake.wait_for(lambda i: i.of_type("transaction") and i.of_type("error"))
        transaction = intake.of_type("transaction")[0]
        assert transaction["name"] == "files/raw_batch"
        assert transaction["result"] == "failure"
        assert [span["name"] for span in intake.of_type("span")] == ["GET /feeds/files"]
        assert intake.of_type("error")[0]["exception"]["type"] == "ValueError"
        assert "bad batch" in intake.of_type("error")[0]["exception"]["message"]
        assert intake.of_type("metadata")[0]["service"]["name"] == "vt-dagster-test"
