"""docker-compose.yml beyond what compose-go checks: the gavel services run hardened
like the Kubernetes pods, shut down gracefully, are scraped by Prometheus, and every
`service_healthy` dependency has a health check to wait for.
"""

import re

import yaml

GRACE_SECONDS = 30


def seconds(duration):
    """compose-go normalizes durations to nanoseconds (int) or Go strings like 30s."""
    if isinstance(duration, (int, float)):
        return duration / 1e9
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(duration or ""))
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0) if match else 0


def check_compose(project, image, image_has_healthcheck, err):
    services = project["services"]
    for name, service in sorted(services.items()):
        where = f"compose service {name}"
        for dependency, condition in (service.get("depends_on") or {}).items():
            target = services.get(dependency, {})
            healthy = target.get("healthcheck") and not target["healthcheck"].get("disable")
            if condition.get("condition") == "service_healthy" and not (
                    healthy or (target.get("image") == image and image_has_healthcheck)):
                err(None, f"{where}: waits for {dependency} to be healthy, which has no health check")
        if service.get("image") != image:
            continue
        if not service.get("read_only"):
            err(None, f"{where}: read_only must be true (gavel writes no files)")
        if "ALL" not in (service.get("cap_drop") or []):
            err(None, f"{where}: cap_drop must include ALL")
        if "no-new-privileges:true" not in (service.get("security_opt") or []):
            err(None, f"{where}: security_opt must include no-new-privileges:true")
        if service.get("entrypoint") or "ops" in (service.get("profiles") or []):
            continue
        if seconds(service.get("stop_grace_period")) < GRACE_SECONDS:
            err(None, f"{where}: stop_grace_period below the worker's {GRACE_SECONDS}s shutdown")
        if not (service.get("environment") or {}).get("GAVEL_INSTANCE_ID"):
            err(None, f"{where}: needs its own GAVEL_INSTANCE_ID")
    ids = [s.get("environment", {}).get("GAVEL_INSTANCE_ID") for s in services.values() if s.get("image") == image]
    for duplicate in {i for i in ids if i and ids.count(i) > 1}:
        err(None, f"compose: GAVEL_INSTANCE_ID {duplicate!r} is used twice (transactional ids would fence each other)")


def check_scrape_targets(project, image, prometheus_yml, err):
    """The compose Prometheus scrapes exactly the long-running gavel services."""
    workers = {f"{name}:9464" for name, s in project["services"].items()
               if s.get("image") == image and not s.get("entrypoint")
               and "ops" not in (s.get("profiles") or [])}
    config = yaml.safe_load(open(prometheus_yml))
    targets = {t for job in config.get("scrape_configs") or []
               for static in job.get("static_configs") or [] for t in static.get("targets") or []
               if t.endswith(":9464")}
    for missing in sorted(workers - targets):
        err(None, f"prometheus.yml does not scrape {missing}")
    for extra in sorted(targets - workers):
        err(None, f"prometheus.yml scrapes {extra}, which is no gavel worker in docker-compose.yml")


def dockerfile_facts(path, err):
    """(numeric USER uid, has HEALTHCHECK) of the final stage; errors for the rest."""
    lines = re.sub(r"\\\n", " ", open(path).read()).splitlines()
    # A stage built FROM an earlier stage inherits its USER, HEALTHCHECK, ENTRYPOINT.
    stages, final = {}, []
    for line in lines:
        start = re.match(r"^\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if start:
            final = list(stages.get(start.group(1).lower(), []))
            if start.group(2):
                stages[start.group(2).lower()] = final
        final.append(line.strip())
    instructions = [line for line in final if line and not line.startswith("#")]
    user = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    uid = user[-1].split(":")[0] if user else ""
    if not uid.isdigit() or uid == "0":
        err(None, f"the runtime stage needs a numeric non-root USER (got {uid or 'none'})")
    if not any(line.upper().startswith("ENTRYPOINT") and '["gavel"]' in line for line in instructions):
        err(None, 'the runtime stage needs ENTRYPOINT ["gavel"]')
    healthcheck = any(line.upper().startswith("HEALTHCHECK") and "NONE" not in line.upper()
                      for line in instructions)
    if not healthcheck:
        err(None, "the runtime stage has no HEALTHCHECK")
    return (int(uid) if uid.isdigit() else None), healthcheck

