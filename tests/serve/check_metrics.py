#!/usr/bin/env python3
"""Parses a /metrics answer of mindrec-serve with an independent reader (prometheus_client's
parser, PyPI) and checks what the serve test put behind it (tests/serve/test_rec_service.cpp,
"GET /metrics ..."): 5 recalls answered 200 and 1 answered 400, one reload ok and one failed,
299 vectors, histograms whose +Inf bucket equals their count.

    MINDREC_METRICS_SAMPLE=m.txt build/tests/mindrec_serve_tests -tc='*metrics*'
    python3 tests/serve/check_metrics.py m.txt
"""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main(path):
    text = open(path, encoding="utf-8").read()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # prometheus_client names counters without their _total suffix.
    need = {"mindrec_requests": "counter", "mindrec_request_errors": "counter",
            "mindrec_request_duration_seconds": "histogram", "mindrec_store_vectors": "gauge",
            "mindrec_model_info": "gauge", "mindrec_model_load_seconds": "gauge",
            "mindrec_model_loaded_timestamp_seconds": "gauge", "mindrec_snapshot_generation": "gauge",
            "mindrec_reloads": "counter", "mindrec_recall_users": "counter", "mindrec_refused_ids": "counter",
            "mindrec_recall_batch_users": "histogram", "mindrec_model_evaluation": "gauge",
            "mindrec_build_info": "gauge", "process_open_fds": "gauge",
            "mindrec_recall_unknown_raw_ids": "counter"}
    for name, kind in need.items():
        assert name in families, f"missing family {name}"
        assert families[name].type == kind, f"{name} is {families[name].type}, expected {kind}"

    def value(family, sample, **labels):
        for s in families[family].samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"no sample {sample} {labels}")

    # the test's requests: 6 answered recalls (one with a user without clicks), 3 refused
    assert value("mindrec_requests", "mindrec_requests_total", endpoint="/rec/recall", status="200") == 6
    assert value("mindrec_requests", "mindrec_requests_total", endpoint="/rec/recall", status="400") == 3
    assert value("mindrec_request_errors", "mindrec_request_errors_total", endpoint="/rec/recall", status="400") == 3
    assert value("mindrec_recall_users", "mindrec_recall_users_total", result="fallback") == 1
    assert value("mindrec_refused_ids", "mindrec_refused_ids_total", reason="padding") == 1
    assert value("mindrec_recall_batch_users", "mindrec_recall_batch_users_count") == 6
    assert value("mindrec_model_recall50_vs_popularity", "mindrec_model_recall50_vs_popularity") == 4.0
    assert value("process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
    assert value("mindrec_reloads", "mindrec_reloads_total", result="ok") == 1
    assert value("mindrec_reloads", "mindrec_reloads_total", result="error") == 1
    assert value("mindrec_store_vectors", "mindrec_store_vectors") == 299
    info = [s for s in families["mindrec_model_info"].samples][0]
    assert len(info.labels["fingerprint"]) == 16 and info.labels["backend"] == "flat", info.labels
    hist = families["mindrec_request_duration_seconds"]
    for endpoint in {s.labels["endpoint"] for s in hist.samples}:
        buckets = sorted(((float(s.labels["le"]), s.value) for s in hist.samples
                          if s.name.endswith("_bucket") and s.labels["endpoint"] == endpoint))
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{endpoint}: buckets not cumulative {counts}"
        assert buckets[-1][0] == float("inf")
        assert buckets[-1][1] == value("mindrec_request_duration_seconds", "mindrec_request_duration_seconds_count",
                                       endpoint=endpoint)
    print(f"{path}: {len(families)} metric families parsed by prometheus_client, values as expected")


if __name__ == "__main__":
    main(sys.argv[1])
