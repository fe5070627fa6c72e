"""One range run of `<feed>/raw_batch` in a process of its own, as a run worker is: the tests
start several at once against one instance (DAGSTER_HOME) to see its pools at work.

    python -m vt_dagster_tests.stage_run FEED FIRST LAST API_URL DATA_DIR

prints the run's id; VT_API_KEY and DAGSTER_HOME (and DAGSTER_PG_URL) come from the environment.
"""

from __future__ import annotations

import sys

import dagster as dg

from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.feeds import get_feed
from vt_dagster.resources import VTFeedsResource, VTStorageResource


def main(argv: list[str]) -> int:
    feed, first, last, api_url, data_dir = argv
    resources = {"vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=api_url),
                 "vt_storage": VTStorageResource(root=data_dir)}
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([build_raw_batch_asset(get_feed(feed))], resources=resources, instance=instance,
                                tags={"dagster/asset_partition_range_start": first,
                                      "dagster/asset_partition_range_end": last})
    print(result.run_id)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
