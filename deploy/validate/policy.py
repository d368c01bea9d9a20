"""Rules the schemas cannot express: the restricted Pod Security Standard, resources,
pinned images, and what every gavel worker needs (probes, metrics port, graceful
termination, replicas within the partition count, stable names for exactly-once roles).
"""

import re

from model import containers, is_gavel, role_of, selects

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
# Roles that write under Kafka transactions: their transactional id derives from the
# pod name, which only a StatefulSet keeps stable across restarts.
EXACTLY_ONCE = {"aggregate", "project", "saga"}
METRICS_PORT = 9464
SHUTDOWN_SECONDS = 30


def check_names(render, err):
    seen = set()
    for doc in render.docs:
        meta = doc.get("metadata") or {}
        name = meta.get("name") or ""
        key = (doc.get("kind"), meta.get("namespace"), name)
        if key in seen:
            err(doc, "defined twice")
        seen.add(key)
        label_like = doc.get("kind") in ("Service", "Namespace")
        if not (DNS_LABEL if label_like else DNS_SUBDOMAIN).match(name) or len(name) > (63 if label_like else 253):
            err(doc, f"name {name!r} is not a valid DNS {'label' if label_like else 'subdomain'}")
        for labels in (meta.get("labels") or {}, ((doc.get("spec") or {}).get("template") or {})
                       .get("metadata", {}).get("labels") or {}):
            for key_, value in labels.items():
                prefix, _, label = key_.rpartition("/")
                if (prefix and not DNS_SUBDOMAIN.match(prefix)) or not LABEL_NAME.match(label) or len(label) > 63:
                    err(doc, f"label key {key_!r} is invalid")
                if not isinstance(value, str) or not LABEL_VALUE.match(value) or len(value) > 63:
                    err(doc, f"label {key_}={value!r}: not a valid label value")


def check_pods(render, err, image_uid):
    for doc, template in render.pods():
        spec = template.get("spec") or {}
        check_restricted(doc, spec, err)
        for c in containers(spec):
            check_container(doc, c, err)
        if is_gavel(template):
            check_gavel_pod(doc, spec, err, image_uid)


def check_restricted(doc, spec, err):
    """The restricted Pod Security Standard (what `enforce: restricted` admits)."""
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            err(doc, f"{field} is not allowed")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            err(doc, f"volume {volume.get('name')}: type {sorted(kinds)} not allowed")
    pod_sc = spec.get("securityContext") or {}
    for c in containers(spec):
        sc = c.get("securityContext") or {}
        where = f"container {c.get('name')}"
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            err(doc, f"{where}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            err(doc, f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            err(doc, f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if sc.get("allowPrivilegeEscalation") is not False:
            err(doc, f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            err(doc, f"{where}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            err(doc, f"{where}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            err(doc, f"{where}: may add no capability but NET_BIND_SERVICE")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            err(doc, f"{where}: hostPort is not allowed")


def check_container(doc, c, err):
    where = f"container {c.get('name')}"
    image = c.get("image") or ""
    if not image:
        err(doc, f"{where}: no image")
    elif "@sha256:" not in image:
        tag = image.rpartition("/")[2].partition(":")[2]
        if tag in ("", "latest"):
            err(doc, f"{where}: image {image!r} must be pinned to a tag other than latest, or a digest")
    resources = c.get("resources") or {}
    for section, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
        if key not in (resources.get(section) or {}):
            err(doc, f"{where}: resources.{section}.{key} missing")


def check_gavel_pod(doc, spec, err, image_uid):
    if (spec.get("securityContext") or {}).get("runAsUser") != image_uid:
        err(doc, f"runAsUser must be the image's user {image_uid} (Dockerfile USER)")
    for c in containers(spec):
        where = f"container {c.get('name')}"
        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            err(doc, f"{where}: readOnlyRootFilesystem must be true (gavel writes no files)")
        instance = [e for e in c.get("env") or [] if e.get("name") == "GAVEL_INSTANCE_ID"]
        source = instance and (((instance[0].get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"))
        if source != "metadata.name":
            err(doc, f"{where}: GAVEL_INSTANCE_ID must come from metadata.name (the pod name)")
        refs = [(e.get("configMapRef") or {}).get("name", "") for e in c.get("envFrom") or []]
        if not any(r.startswith("gavel-config") for r in refs):
            err(doc, f"{where}: envFrom must include the gavel-config ConfigMap")


def check_workers(render, err):
    partitions = int(render.gavel_config().get("GAVEL_PARTITIONS", "0") or 0)
    if not partitions:
        err(None, "the gavel-config ConfigMap sets no GAVEL_PARTITIONS")
    pdbs = render.of_kind("PodDisruptionBudget")
    for doc in render.of_kind("Deployment", "StatefulSet"):
        template = doc["spec"].get("template") or {}
        if not is_gavel(template):
            continue
        spec = template.get("spec") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        replicas = doc["spec"].get("replicas")
        if isinstance(replicas, int) and partitions and replicas > partitions:
            err(doc, f"replicas {replicas} > GAVEL_PARTITIONS {partitions}: the extra ones would idle")
        if (spec.get("terminationGracePeriodSeconds") or 30) < SHUTDOWN_SECONDS:
            err(doc, f"terminationGracePeriodSeconds below the worker's {SHUTDOWN_SECONDS}s shutdown")
        if not any(selects(p["spec"].get("selector"), labels) for p in pdbs):
            err(doc, "no PodDisruptionBudget covers its pods")
        for c in spec.get("containers") or []:
            check_worker_container(doc, c, err)


def check_worker_container(doc, c, err):
    where = f"container {c.get('name')}"
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if ports.get("metrics") != METRICS_PORT:
        err(doc, f"{where}: needs port 'metrics' {METRICS_PORT} (GAVEL_METRICS_ADDR)")
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") not in ("metrics", METRICS_PORT):
            err(doc, f"{where}: {probe} must GET {path} on the metrics port")
    role = role_of(c)
    if role.split(" ")[0] in EXACTLY_ONCE and doc["kind"] != "StatefulSet":
        err(doc, f"role {role!r} writes in Kafka transactions: it must be a StatefulSet (stable pod names)")
