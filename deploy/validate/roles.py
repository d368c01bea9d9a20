"""Every role the binary has is deployed: the subcommands of src/main.rs against
deploy/roles.txt, and roles.txt against each Kubernetes overlay and the compose file.
"""

import re

from model import is_gavel, pod_template, role_of

KINDS = {"worker", "init", "ops", "tool"}


def read_roles(path):
    roles = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            *words, kind = line.split()
            if kind not in KINDS or not words:
                raise SystemExit(f"{path}:{number}: expected '<role words> <{'|'.join(sorted(KINDS))}>'")
            roles[" ".join(words)] = kind
    return roles


def subcommands(main_rs):
    """The subcommand names of `enum Command`: clap's kebab-case default, or the
    name a `#[command(name = ...)]` attribute gives."""
    text = open(main_rs).read()
    block = re.search(r"enum Command \{(.*?)\n\}", text, re.S)
    if not block:
        raise SystemExit(f"{main_rs}: no `enum Command {{ ... }}` found")
    names, renamed = [], None
    for line in block.group(1).splitlines():
        # `#[command(name = "...")]` above a variant overrides clap's default name.
        override = re.match(r'^    #\[command\(name = "([a-z0-9-]+)"\)\]', line)
        if override:
            renamed = override.group(1)
            continue
        variant = re.match(r"^    ([A-Z][A-Za-z0-9]*)\b", line)
        if variant:
            default = re.sub(r"(?<!^)([A-Z])", r"-\1", variant.group(1)).lower()
            names.append(renamed or default)
            renamed = None
    return names


def check_subcommands(roles, main_rs, err):
    known = {role.split()[0] for role in roles}
    for name in subcommands(main_rs):
        if name not in known:
            err(None, f"`gavel {name}` (src/main.rs) is not in deploy/roles.txt: "
                      "say whether it is a worker, init, ops or tool role")


def of_kind(roles, kind):
    return {r for r, k in roles.items() if k == kind}


def check_deployed(where, deployed, roles, err):
    """deployed: (kind, role, count) found in one target (an overlay or compose)."""
    for kind in ("worker", "ops"):
        found = {}
        for k, role in deployed:
            if k == kind:
                found[role] = found.get(role, 0) + 1
        for role in sorted(of_kind(roles, kind)):
            if role not in found:
                err(None, f"{where}: {kind} role `gavel {role}` is not deployed")
            elif found[role] > 1:
                err(None, f"{where}: `gavel {role}` is deployed {found[role]} times")
        for role in sorted(set(found) - of_kind(roles, kind)):
            err(None, f"{where}: deploys `gavel {role}`, which deploy/roles.txt does not list as {kind}")
    init_text = " ".join(text for k, text in deployed if k == "init")
    for role in sorted(of_kind(roles, "init")):
        if f"gavel {role}" not in init_text:
            err(None, f"{where}: the init step does not run `gavel {role}`")


def k8s_deployed(render):
    deployed = []
    for doc in render.docs:
        template = pod_template(doc)
        if template is None or not is_gavel(template):
            continue
        for c in (template.get("spec") or {}).get("containers") or []:
            kind = {"Deployment": "worker", "StatefulSet": "worker", "CronJob": "ops", "Job": "init"}[doc["kind"]]
            text = " ".join(map(str, (c.get("command") or []) + (c.get("args") or [])))
            deployed.append((kind, text if kind == "init" else role_of(c)))
    return deployed


def compose_deployed(project, image):
    deployed = []
    for name, service in project["services"].items():
        if service.get("image") != image:
            continue
        command = [str(c) for c in service.get("command") or []]
        if service.get("entrypoint"):
            deployed.append(("init", " ".join(map(str, service["entrypoint"] + command))))
            continue
        kind = "ops" if "ops" in (service.get("profiles") or []) else "worker"
        deployed.append((kind, role_of({"args": command})))
    return deployed
