"""Least privilege in the deployment files, checked against deploy/access.txt: every
gavel workload reads its own role's Secret (gavel-role-<role>) and no other role's; every
compose service its own credentials file, naming its own Kafka user and Postgres role;
the Strimzi example has one KafkaUser per role with Kafka rights (their ACLs are checked
against the table by a unit test of the binary, which generates them).
"""

import os

from model import is_gavel, role_of

# `gavel` subcommands (deploy/roles.txt) whose access-table role has another name.
ROLE_OF_COMMAND = {
    "saga run payment": "saga-payment",
    "saga run order": "saga-order",
    "participant all": "participants",
    "audit verify": "audit",
    "rebuild all": "rebuild",
}


def read_table(path):
    """role -> {"kafka": bool, "postgres": "owner" | "role" | None, "registry": right}."""
    table = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 4:
                raise SystemExit(f"{path}:{number}: expected ROLE SYSTEM RESOURCE RIGHTS")
            role, system, _, rights = words
            entry = table.setdefault(role, {"kafka": False, "postgres": None, "registry": None})
            if system == "kafka":
                entry["kafka"] = True
            elif system == "postgres":
                entry["postgres"] = "owner" if rights == "owner" else entry["postgres"] or "role"
            elif system == "registry":
                entry["registry"] = rights
    return table


def secret_name(role):
    return f"gavel-role-{role}"


def role_secrets(table):
    """The per-role Secrets created out of band in production: name -> keys."""
    secrets = {}
    for role, rights in table.items():
        keys = set()
        if rights["kafka"]:
            keys |= {"GAVEL_KAFKA_SASL_USERNAME", "GAVEL_KAFKA_SASL_PASSWORD"}
        if rights["postgres"]:
            keys.add("GAVEL_POSTGRES_URL")
        if rights["registry"]:
            keys |= {"GAVEL_REGISTRY_USERNAME", "GAVEL_REGISTRY_PASSWORD"}
        secrets[secret_name(role)] = keys
    return secrets


def check_k8s(render, table, err):
    for doc, template in render.pods():
        if not is_gavel(template):
            continue
        for c in (template.get("spec") or {}).get("containers") or []:
            role = "init" if doc["kind"] == "Job" else ROLE_OF_COMMAND.get(role_of(c), role_of(c))
            if role not in table:
                err(doc, f"role {role!r} has no rights in deploy/access.txt")
                continue
            refs = [s["secretRef"]["name"] for s in c.get("envFrom") or [] if "secretRef" in s]
            own = [r for r in refs if names_secret(r, secret_name(role))]
            if not own:
                err(doc, f"does not read its own credentials, Secret {secret_name(role)}")
            foreign = [r for r in refs if r.startswith("gavel-role-") and r not in own]
            if foreign:
                err(doc, f"reads other roles' credentials: {', '.join(foreign)}")
    for doc in render.of_kind("TriggerAuthentication"):
        for ref in doc["spec"].get("secretTargetRef") or []:
            if not names_secret(ref["name"], secret_name("autoscaler")):
                err(doc, f"KEDA reads Secret {ref['name']}, not the autoscaler's {secret_name('autoscaler')}")


def names_secret(ref, name):
    """`ref` is Secret `name`, or the generated one (kustomize appends -<10 char hash>)."""
    return ref == name or (ref.startswith(name + "-") and len(ref) == len(name) + 11)


def read_env_file(path):
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value
    return values


def check_compose(project, image, table, root, err):
    for name, service in project["services"].items():
        if service.get("image") != image:
            continue
        command = [str(c) for c in service.get("command") or []]
        role = "init" if service.get("entrypoint") else ROLE_OF_COMMAND.get(
            role_of({"args": command}), role_of({"args": command}))
        def say(message, service=name):
            err(None, f"service {service}: {message}")
        if role not in table:
            say(f"role {role!r} has no rights in deploy/access.txt")
            continue
        env = service.get("environment") or {}
        if env.get("GAVEL_CONFIG") != f"/credentials/{role}.env":
            say(f"GAVEL_CONFIG must be /credentials/{role}.env (its role's credentials)")
            continue
        path = os.path.join(root, "deploy/compose/credentials", f"{role}.env")
        if not os.path.exists(path):
            say(f"{path} is missing")
            continue
        check_credentials(role, table[role], read_env_file(path), env, say)


def check_credentials(role, rights, values, env, say):
    """The credentials file names the role's own user and login, the environment none."""
    for key in ("GAVEL_KAFKA_SASL_USERNAME", "GAVEL_KAFKA_SASL_PASSWORD"):
        if key in env:
            say(f"{key} belongs in the role's credentials file, not the environment")
    user = values.get("GAVEL_KAFKA_SASL_USERNAME")
    if user is not None and (not rights["kafka"] or user != f"gavel-{role}"):
        say(f"Kafka user {user!r}: role {role} connects as gavel-{role}, if at all")
    url = values.get("GAVEL_POSTGRES_URL") or env.get("GAVEL_POSTGRES_URL")
    login = url.split("://", 1)[-1].split(":", 1)[0] if url else None
    if rights["postgres"] is None and "GAVEL_POSTGRES_URL" in values:
        say(f"role {role} has no Postgres rights but a Postgres login")
    if rights["postgres"] == "role" and login != f"gavel_{role.replace('-', '_')}":
        say(f"Postgres login {login!r}: role {role} logs in as gavel_{role.replace('-', '_')}")
    if rights["postgres"] == "role" and "GAVEL_POSTGRES_URL" in env:
        say("GAVEL_POSTGRES_URL in the environment overrides the role's own login")


def check_strimzi_users(render, table, err):
    users = {doc["metadata"]["name"] for doc in render.of_kind("KafkaUser")}
    expected = {f"gavel-{role}" for role, rights in table.items() if rights["kafka"]}
    for user in sorted(expected - users):
        err(None, f"no KafkaUser {user} (deploy/access.txt gives it Kafka rights)")
    for user in sorted(users - expected):
        err(None, f"KafkaUser {user} is not a role of deploy/access.txt")
