"""A rendered set of manifests, with the look-ups the checks share."""

import yaml

POD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}


def load(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def ident(doc):
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')}"


def pod_template(doc):
    """The pod template of a workload (CronJobs nest it one level deeper), or None."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    elif doc.get("kind") not in POD_KINDS:
        return None
    return spec.get("template") or {}


def containers(pod_spec):
    return (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or [])


def selects(selector, labels):
    """Kubernetes LabelSelector semantics; an empty selector selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class Render:
    def __init__(self, name, docs):
        self.name = name
        self.docs = docs

    def of_kind(self, *kinds):
        return [d for d in self.docs if d.get("kind") in kinds]

    def find(self, kind, name):
        for doc in self.of_kind(kind):
            if doc["metadata"].get("name") == name:
                return doc
        return None

    def pods(self):
        """(workload, pod template) for every workload."""
        return [(d, pod_template(d)) for d in self.docs if pod_template(d) is not None]

    def gavel_config(self):
        """The data of the gavel-config ConfigMap (its name may carry a hash suffix)."""
        for doc in self.of_kind("ConfigMap"):
            if doc["metadata"]["name"].startswith("gavel-config"):
                return doc.get("data") or {}
        return {}

    def secret_keys(self, name):
        doc = self.find("Secret", name)
        if doc is None:
            return None
        return set(doc.get("data") or {}) | set(doc.get("stringData") or {})


def role_of(container):
    """The gavel role a container runs: its args up to the first flag."""
    args = [str(a) for a in container.get("args") or []]
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
    return " ".join(words)


def is_gavel(template):
    return ((template.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/part-of") == "gavel"
