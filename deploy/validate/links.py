"""Cross-references inside a render: every selector selects something, every named
ConfigMap, Secret, key, port and scale target exists, and the KEDA triggers read the
same Kafka settings and consumer groups as the workers they scale.
"""

from model import containers, ident, selects

KAFKA_TRIGGER_KEYS = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
    "limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions", "version", "partitionLimitation",
    "sasl", "saslTokenProvider", "tls", "unsafeSsl", "awsRegion",
}
KAFKA_FROM_ENV = {"bootstrapServers", "consumerGroup", "topic"}
SASL_MODES = {"none", "plaintext", "scram_sha256", "scram_sha512", "gssapi", "oauthbearer"}


def pod_labels(render):
    return [((t.get("metadata") or {}).get("labels") or {}, t, d) for d, t in render.pods()]


def check_selectors(render, err):
    pods = pod_labels(render)
    for doc in render.of_kind("Service", "PodDisruptionBudget", "NetworkPolicy"):
        spec = doc.get("spec") or {}
        if doc["kind"] == "Service":
            selector = {"matchLabels": spec.get("selector")} if spec.get("selector") else None
        else:
            selector = spec.get("podSelector" if doc["kind"] == "NetworkPolicy" else "selector")
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            continue  # selects everything (or, for a Service, is managed by hand)
        matched = [(labels, t) for labels, t, _ in pods if selects(selector, labels)]
        if not matched:
            err(doc, "its selector matches no pod template")
        if doc["kind"] == "Service":
            names = {p.get("name") for _, t in matched for c in containers(t.get("spec") or {})
                     for p in c.get("ports") or []}
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str) and target not in names:
                    err(doc, f"targetPort {target!r} is no named port of the pods it selects")
    for doc in render.of_kind("ServiceMonitor"):
        services = [s for s in render.of_kind("Service")
                    if selects(doc["spec"].get("selector"), s["metadata"].get("labels") or {})]
        if not services:
            err(doc, "its selector matches no Service")
        ports = {p.get("name") for s in services for p in s["spec"].get("ports") or []}
        for endpoint in doc["spec"].get("endpoints") or []:
            if endpoint.get("port") and endpoint["port"] not in ports:
                err(doc, f"endpoint port {endpoint['port']!r} is no port of the selected Services")


def check_references(render, err, external_secrets):
    """ConfigMaps must be in the render; Secrets in the render or in the documented
    out-of-band set (name -> keys), with the key that is asked for."""

    def secret_keys(name):
        keys = render.secret_keys(name)
        return keys if keys is not None else external_secrets.get(name)

    def need(doc, kind, name, key=None, optional=False):
        if optional:
            return
        keys = secret_keys(name) if kind == "Secret" else (
            set((render.find("ConfigMap", name) or {}).get("data") or {})
            if render.find("ConfigMap", name) else None)
        if keys is None:
            err(doc, f"{kind} {name!r} is neither in the render nor a documented external Secret")
        elif key is not None and key not in keys:
            err(doc, f"{kind} {name!r} has no key {key!r}")

    for doc, template in render.pods():
        spec = template.get("spec") or {}
        for c in containers(spec):
            for source in c.get("envFrom") or []:
                for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if field in source:
                        need(doc, kind, source[field]["name"], optional=source[field].get("optional"))
            for env in c.get("env") or []:
                value_from = env.get("valueFrom") or {}
                for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if field in value_from:
                        ref = value_from[field]
                        need(doc, kind, ref["name"], ref["key"], ref.get("optional"))
        for volume in spec.get("volumes") or []:
            if "secret" in volume:
                need(doc, "Secret", volume["secret"]["secretName"], optional=volume["secret"].get("optional"))
            if "configMap" in volume:
                need(doc, "ConfigMap", volume["configMap"]["name"], optional=volume["configMap"].get("optional"))
    for doc in render.of_kind("TriggerAuthentication"):
        for ref in doc["spec"].get("secretTargetRef") or []:
            need(doc, "Secret", ref["name"], ref["key"])


def container_env(render, workload):
    """Names a KEDA *FromEnv may resolve: env entries and envFrom ConfigMap keys."""
    names = set()
    spec = (workload["spec"].get("template") or {}).get("spec") or {}
    for c in spec.get("containers") or []:
        names |= {e["name"] for e in c.get("env") or []}
        for source in c.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref and render.find("ConfigMap", ref["name"]):
                names |= set(render.find("ConfigMap", ref["name"]).get("data") or {})
    return names


def check_scaled_objects(render, err):
    config = render.gavel_config()
    partitions = int(config.get("GAVEL_PARTITIONS", "0") or 0)
    # Every consumer group a gavel worker uses; the event store's derives from the sink's.
    groups = {v for k, v in config.items() if k.endswith("_GROUP")}
    if "GAVEL_SINK_GROUP" in config:
        groups.add(config["GAVEL_SINK_GROUP"] + "-event-store")
    for doc in render.of_kind("ScaledObject"):
        spec = doc["spec"]
        target_ref = spec["scaleTargetRef"]
        target = render.find(target_ref.get("kind", "Deployment"), target_ref["name"])
        if target is None:
            err(doc, f"scaleTargetRef {target_ref.get('kind', 'Deployment')}/{target_ref['name']} is not in the render")
            continue
        if "replicas" in target["spec"]:
            err(doc, f"{ident(target)} sets replicas, which KEDA owns: every apply would reset the scale")
        high, low = spec.get("maxReplicaCount", 100), spec.get("minReplicaCount", 0)
        if partitions and high > partitions:
            err(doc, f"maxReplicaCount {high} > GAVEL_PARTITIONS {partitions}")
        if low > high:
            err(doc, f"minReplicaCount {low} > maxReplicaCount {high}")
        env = container_env(render, target)
        for trigger in spec["triggers"]:
            if trigger["type"] == "kafka":
                check_kafka_trigger(doc, trigger, env, groups, config, err)
            ref = trigger.get("authenticationRef")
            if ref and ref.get("kind", "TriggerAuthentication") == "TriggerAuthentication" \
                    and not render.find("TriggerAuthentication", ref["name"]):
                err(doc, f"authenticationRef {ref['name']!r} is not in the render")


def check_kafka_trigger(doc, trigger, env, groups, config, err):
    meta = trigger["metadata"]
    for key in meta:
        base = key[:-len("FromEnv")] if key.endswith("FromEnv") else key
        if base not in KAFKA_TRIGGER_KEYS or (key != base and base not in KAFKA_FROM_ENV):
            err(doc, f"kafka trigger: unknown metadata key {key!r}")
        elif key != base and meta[key] not in env:
            err(doc, f"kafka trigger: {key} names {meta[key]!r}, which the target container does not have")
    for required in ("bootstrapServers", "consumerGroup"):
        if required not in meta and required + "FromEnv" not in meta:
            err(doc, f"kafka trigger: {required} (or {required}FromEnv) is required")
    group = meta.get("consumerGroup") or config.get(meta.get("consumerGroupFromEnv", ""), "")
    if group and group not in groups:
        err(doc, f"kafka trigger: consumer group {group!r} is none of the workers' groups {sorted(groups)}")
    if meta.get("sasl", "none") not in SASL_MODES:
        err(doc, f"kafka trigger: sasl {meta['sasl']!r} is not one of {sorted(SASL_MODES)}")
    if meta.get("tls", "disable") not in ("enable", "disable"):
        err(doc, "kafka trigger: tls must be enable or disable")
    if not str(meta.get("lagThreshold", "1")).isdigit():
        err(doc, "kafka trigger: lagThreshold must be a whole number")


def check_strimzi(render, err, config):
    """KafkaTopics cover every GAVEL_TOPIC_* with GAVEL_PARTITIONS partitions."""
    topics = {}
    for doc in render.of_kind("KafkaTopic", "KafkaUser"):
        if "strimzi.io/cluster" not in (doc["metadata"].get("labels") or {}):
            err(doc, "needs the strimzi.io/cluster label (which Kafka cluster it belongs to)")
    for doc in render.of_kind("KafkaTopic"):
        topics[doc["spec"].get("topicName", doc["metadata"]["name"])] = doc
    partitions = int(config.get("GAVEL_PARTITIONS", "0") or 0)
    for key, topic in sorted(config.items()):
        # A prefix names a family of topics (saga.*), declared one by one.
        if not key.startswith("GAVEL_TOPIC_") or key.endswith("_PREFIX"):
            continue
        if topic not in topics:
            err(None, f"no KafkaTopic for {key}={topic}")
        elif topics[topic]["spec"].get("partitions") != partitions:
            err(topics[topic], f"partitions must be GAVEL_PARTITIONS ({partitions})")
