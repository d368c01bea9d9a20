"""Reduced JSON schemas of the custom resources Gavel ships.

The clusters' CRDs are not available offline, so these follow the upstream CRDs for
the fields Gavel uses (KEDA 2.x, Prometheus Operator v1, Strimzi v1beta2): required
fields, types, enums, and no unknown keys where the upstream schema has none either.
Embedded Kubernetes types point at the Kubernetes definitions.
"""

K8S = "https://kubernetes.io/api/_definitions.json#/$defs/"
NAME = {"type": "string", "minLength": 1}
STRINGS = {"type": "array", "items": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}


def closed(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def resource(api_version, kind, spec):
    return closed({
        "apiVersion": {"const": api_version},
        "kind": {"const": kind},
        "metadata": {"$ref": K8S + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": spec,
    }, required=("apiVersion", "kind", "metadata", "spec"))


SCALED_OBJECT = closed({
    "scaleTargetRef": closed({"name": NAME, "kind": NAME, "apiVersion": NAME,
                              "envSourceContainerName": NAME}, required=("name",)),
    "pollingInterval": {"type": "integer", "minimum": 1},
    "cooldownPeriod": {"type": "integer", "minimum": 0},
    "initialCooldownPeriod": {"type": "integer", "minimum": 0},
    "idleReplicaCount": {"type": "integer", "minimum": 0},
    "minReplicaCount": {"type": "integer", "minimum": 0},
    "maxReplicaCount": {"type": "integer", "minimum": 1},
    "fallback": closed({"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"},
                        "behavior": {"type": "string"}}, required=("failureThreshold", "replicas")),
    "advanced": closed({
        "restoreToOriginalReplicaCount": {"type": "boolean"},
        "horizontalPodAutoscalerConfig": closed({
            "name": NAME,
            "behavior": {"$ref": K8S + "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior"},
        }),
        "scalingModifiers": {"type": "object"},
    }),
    "triggers": {"type": "array", "minItems": 1, "items": closed({
        "type": NAME,
        "name": NAME,
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "authenticationRef": closed({
            "name": NAME, "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
        }, required=("name",)),
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
    }, required=("type", "metadata"))},
}, required=("scaleTargetRef", "triggers"))

TRIGGER_AUTHENTICATION = closed({
    "secretTargetRef": {"type": "array", "items": closed(
        {"parameter": NAME, "name": NAME, "key": NAME}, required=("parameter", "name", "key"))},
    "configMapTargetRef": {"type": "array", "items": closed(
        {"parameter": NAME, "name": NAME, "key": NAME}, required=("parameter", "name", "key"))},
    "env": {"type": "array", "items": closed(
        {"parameter": NAME, "name": NAME, "containerName": NAME}, required=("parameter", "name"))},
    "podIdentity": {"type": "object"},
})

SERVICE_MONITOR = closed({
    "jobLabel": {"type": "string"},
    "targetLabels": STRINGS,
    "podTargetLabels": STRINGS,
    "selector": {"$ref": K8S + "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"},
    "namespaceSelector": closed({"any": {"type": "boolean"}, "matchNames": STRINGS}),
    "sampleLimit": {"type": "integer", "minimum": 0},
    "endpoints": {"type": "array", "items": closed({
        "port": NAME,
        "targetPort": {"type": ["integer", "string"]},
        "path": {"type": "string", "pattern": "^/"},
        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
        "interval": DURATION,
        "scrapeTimeout": DURATION,
        "honorLabels": {"type": "boolean"},
        "relabelings": {"type": "array"},
        "metricRelabelings": {"type": "array"},
        "tlsConfig": {"type": "object"},
    })},
}, required=("selector",))

KAFKA_TOPIC = closed({
    "topicName": NAME,
    "partitions": {"type": "integer", "minimum": 1},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
    "config": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
})

ACL_OPERATIONS = ["Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
                  "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"]
KAFKA_USER = closed({
    "authentication": closed({"type": {"enum": ["tls", "tls-external", "scram-sha-512"]},
                              "password": {"type": "object"}}, required=("type",)),
    "authorization": closed({
        "type": {"enum": ["simple"]},
        "acls": {"type": "array", "items": closed({
            "type": {"enum": ["allow", "deny"]},
            "resource": closed({
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": NAME,
                "patternType": {"enum": ["literal", "prefix"]},
            }, required=("type",)),
            "operations": {"type": "array", "minItems": 1, "items": {"enum": ACL_OPERATIONS}},
            "host": {"type": "string"},
        }, required=("resource", "operations"))},
    }, required=("type",)),
    "quotas": {"type": "object"},
    "template": {"type": "object"},
})

SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): resource("keda.sh/v1alpha1", "ScaledObject", SCALED_OBJECT),
    ("keda.sh/v1alpha1", "TriggerAuthentication"):
        resource("keda.sh/v1alpha1", "TriggerAuthentication", TRIGGER_AUTHENTICATION),
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        resource("monitoring.coreos.com/v1", "ServiceMonitor", SERVICE_MONITOR),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): resource("kafka.strimzi.io/v1beta2", "KafkaTopic", KAFKA_TOPIC),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): resource("kafka.strimzi.io/v1beta2", "KafkaUser", KAFKA_USER),
}
