"""``medledger bench api`` on a tiny load: real server, real peer, JSON that adds up."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medledger.benchmarks.http_load import percentiles
from medledger.cli.main import app


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    """p50/p95/p99/max of 1..100 ms are 50, 95, 99 and 100 ms."""
    values = [i / 1000 for i in range(1, 101)]
    assert percentiles(values) == {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert percentiles([])["p99_ms"] == 0.0


def test_bench_api_small_run_reports_and_anchors_every_write() -> None:
    """A short run over 20 connections: no errors, every acknowledged write on the ledger."""
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "api",
            "--connections",
            "20",
            "--rate",
            "60",
            "--seconds",
            "2",
            "--bundles",
            "3",
            "--bundle-concurrency",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    ingest = report["bundle_ingest"]
    assert ingest["resources"] == 3 * ingest["resources_per_bundle"] > 0
    for phase in ("mixed_open_loop", "mixed_closed_loop"):
        load = report[phase]
        assert load["errors"] == 0, load
        assert load["requests"] > 0
        assert set(load["by_kind"]) == {"read", "search", "create", "update"}
        assert load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"] <= load["max_ms"]
    anchoring = report["anchoring"]
    assert anchoring["every_write_anchored"] is True
    # The ledger also holds the audit batches (about one per second of the run).
    assert 0 < anchoring["acknowledged_writes"] <= anchoring["ledger_growth"]
    assert report["peer"]["mixed_closed_loop"]["errors"] == 0
    assert report["ratio_saturation_vs_peer"] > 0
