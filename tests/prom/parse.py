#!/usr/bin/env python3
"""Parses Prometheus text exposition (stdin) with prometheus_client's parser and prints the
samples as JSON: [{"name", "type", "help", "labels", "value"}]. A text the parser rejects
exits non-zero with its error. Used by tests/tests/mover_metrics.rs."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "family": family.name, "type": family.type,
                    "help": family.documentation, "labels": s.labels, "value": s.value})
json.dump(out, sys.stdout)
