#!/usr/bin/env python3
"""Writes gavel.json, the provisioned Grafana dashboard. Edit here, then run
`python3 gen_dashboard.py`: panels are generated so every component is shown
the same way and the JSON stays consistent."""
import json
import os

COMPONENTS = ["aggregate", "project", "sink", "event_store", "saga"]
PCT = {"0.5": "p50", "0.95": "p95", "0.99": "p99"}
DS = {"type": "prometheus", "uid": "${datasource}"}


def target(expr, legend, ref="A"):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def per_component(template, legend="{{component}}"):
    """One target per component; `template` has {c} for the component name."""
    return [
        target(f'label_replace({template.format(c=c)}, "component", "{c}", "", "")',
               legend, chr(ord("A") + i))
        for i, c in enumerate(COMPONENTS)
    ]


def panel(title, targets, unit, x, y, w=12, h=8, description=""):
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": DS, "targets": targets,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right",
                               "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi"}},
    }


def row(title, y):
    return {"type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


G = 'group=~"$group"'
panels = [
    row("Consumer lag", 0),
    panel("Lag in records per group / partition",
          [target(f"max by (group, topic, partition) (gavel_consumer_lag_records{{{G}}})",
                  "{{group}} {{topic}}/{{partition}}")], "short", 0, 1,
          description="High watermark minus the group's committed offset (counts transaction markers too)."),
    panel("Lag in seconds per group / partition",
          [target(f"max by (group, topic, partition) (gavel_consumer_lag_seconds{{{G}}})",
                  "{{group}} {{topic}}/{{partition}}")], "s", 12, 1,
          description="Age of the oldest record the group has not processed; 0 when caught up."),
    row("Throughput", 9),
    panel("Records consumed / s", per_component("sum(rate(gavel_{c}_consumed_records_total[1m]))"),
          "ops", 0, 10),
    panel("Records produced or rows written / s",
          per_component("sum(rate(gavel_{c}_produced_records_total[1m]))"), "ops", 12, 10),
    row("Errors and dead letters", 18),
    panel("Dead-letter rate (share of consumed records; alert above 0.1 %)",
          [target("component:gavel_dead_letters:rate5m / on (component) component:gavel_consumed_records:rate5m",
                  "{{component}}")], "percentunit", 0, 19),
    panel("Errors / s by kind",
          per_component("sum by (kind) (rate(gavel_{c}_errors_total[5m]))", "{{component}} {{kind}}"),
          "ops", 12, 19),
    panel("Dead letters / s by class",
          per_component("sum by (class) (rate(gavel_{c}_dead_letters_total[5m]))", "{{component}} {{class}}"),
          "ops", 0, 27),
    panel("Transient retries / s by kind",
          per_component("sum by (kind) (rate(gavel_{c}_retries_total[5m]))", "{{component}} {{kind}}"),
          "ops", 12, 27),
    row("Latency", 35),
    panel("Batch duration p50 / p95 / p99",
          [t for q in ("0.5", "0.95", "0.99") for t in per_component(
              f"histogram_quantile({q}, sum by (le) (rate(gavel_{{c}}_batch_duration_seconds_bucket[5m])))",
              f"{{{{component}}}} {PCT[q]}")], "s", 0, 36),
    panel("HTTP request duration p95",
          [target(f"histogram_quantile(0.95, sum by (le, route) (rate(gavel_{api}_request_duration_seconds_bucket[5m])))",
                  f"{api} {{{{route}}}}", chr(ord("A") + i)) for i, api in enumerate(["command_api", "query_api"])],
          "s", 12, 36),
    panel("Records per batch p50 / p95",
          [t for q in ("0.5", "0.95") for t in per_component(
              f"histogram_quantile({q}, sum by (le) (rate(gavel_{{c}}_batch_size_records_bucket[5m])))",
              f"{{{{component}}}} {PCT[q]}")], "short", 0, 44),
    panel("Transactions / s (commit, abort)",
          per_component("sum by (result) (rate(gavel_{c}_transactions_total[5m]))", "{{component}} {{result}}"),
          "ops", 12, 44),
    row("Sagas", 52),
    panel("Saga outcomes / s", [target("sum by (outcome) (rate(gavel_saga_outcomes_total[5m]))", "{{outcome}}")],
          "ops", 0, 53),
    panel("Open sagas by state", [target("sum by (state) (gavel_saga_instances_count)", "{{state}}")],
          "short", 12, 53),
    panel("Age of the oldest open saga",
          [target("max(time() - gavel_saga_oldest_open_timestamp_seconds and gavel_saga_oldest_open_timestamp_seconds > 0)",
                  "oldest")], "s", 0, 61),
    panel("Saga duration p95", [target("histogram_quantile(0.95, sum by (le) (rate(gavel_saga_duration_seconds_bucket[5m])))",
                                       "p95")], "s", 12, 61),
    row("Workers", 69),
    panel("Ready (1) / not ready (0)", [target("gavel_worker_ready_bool", "{{worker}} {{instance}}")],
          "short", 0, 70),
    panel("Partitions restoring and state records restored / s",
          per_component("sum(gavel_{c}_restoring_partitions_count)", "{{component}} restoring")
          + [dict(t, refId="R" + t["refId"]) for t in per_component(
              "sum(rate(gavel_{c}_restored_records_total[1m]))", "{{component}} restored/s")],
          "short", 12, 70),
    # Every relay replica samples the same outbox table: max() shows it once per deployment.
    row("Outbox relay", 78),
    panel("Outbox rows not sent yet",
          [target("max by (component) (gavel_outbox_relay_backlog_rows)", "unsent")], "short", 0, 79,
          description="Rows upstream services committed that the relay has not published (sampled every 5 s)."),
    panel("Age of the oldest unsent outbox row (alert above 2 min)",
          [target("max by (component) (gavel_outbox_relay_oldest_unsent_age_seconds)", "oldest")], "s", 12, 79,
          description="0 when the outbox is drained; keeps growing while the relay, Postgres or Kafka is stuck."),
    panel("Outbox rows / s: claimed, published, dead-lettered",
          [target("sum(rate(gavel_outbox_relay_claimed_rows_total[1m]))", "claimed", "A"),
           target("sum(rate(gavel_outbox_relay_published_records_total[1m]))", "published", "B"),
           target("sum by (reason) (rate(gavel_outbox_relay_dead_letters_total[5m]))",
                  "dead-lettered {{reason}}", "C")], "ops", 0, 87,
          description="Claimed above published: batches rolled back and retried (their rows are claimed again)."),
    panel("Outbox relay failed batches / s by kind",
          [target("sum by (kind) (rate(gavel_outbox_relay_errors_total[5m]))", "{{kind}}")], "ops", 12, 87,
          description="postgres-unavailable: reconnecting; kafka: the producer is renewed. Either way the batch goes again."),
    panel("Outbox relay: wait for Kafka's acknowledgements (alert above 1 min)",
          [target("max by (instance) (gavel_outbox_relay_ack_wait_seconds)", "{{instance}}")], "s", 0, 95,
          description="Deliveries never time out: a broker refusing writes shows here as a growing wait."),
    panel("Outbox batch duration p50 / p95",
          [target(f"histogram_quantile({q}, sum by (le) (rate(gavel_outbox_relay_batch_duration_seconds_bucket[5m])))",
                  PCT[q], chr(ord("A") + i)) for i, q in enumerate(("0.5", "0.95"))], "s", 12, 95,
          description="Claim, publish, wait for every acknowledgement and mark sent: one Postgres transaction."),
]

dashboard = {
    "uid": "gavel-pipeline", "title": "Gavel pipeline", "tags": ["gavel"],
    "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "group", "type": "query", "datasource": DS, "label": "Consumer group",
         "query": {"query": "label_values(gavel_consumer_lag_records, group)", "refId": "groups"},
         "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"},
         "refresh": 2},
    ]},
    "panels": panels,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gavel.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
print(f"wrote {out}: {len(panels)} panels")
