"""Validates rendered Kubernetes manifests and the normalized compose project.

  check.py --root REPO --render local=local.yaml --render production=prod.yaml \
           --examples strimzi=strimzi.yaml --example-secrets secrets.example.yaml \
           --compose project.json

Prints one line per problem (stderr) and exits 1 if there was any; otherwise
prints the counts deploy/validate.sh puts in its summary. Called by deploy/validate.sh, which
renders the inputs; run that rather than this.
"""

import argparse
import json
import os
import sys

import access
import compose_rules
import links
import policy
import roles
from model import Render, ident, load
from schemas import Schemas

# The oldest and the newest Kubernetes the manifests must be valid for.
K8S_VERSIONS = ("1.30.0", "1.37.0")
IMAGE = "gavel:local"  # the compose file's image name for the gavel services


def main():
    args = parse_args()
    problems = []

    def err_for(where):
        def err(doc, message):
            problems.append(f"{where}: {ident(doc) + ': ' if doc else ''}{message}")
        return err

    def run(check, *check_args):
        # The rules assume schema-valid input; on input that is not, a rule may trip
        # over a wrong type. That is reported, not raised: the schema error says why.
        try:
            check(*check_args)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            problems.append(f"{check.__module__}.{check.__name__} could not run ({type(e).__name__}: {e})")

    root = args.root
    uid, healthcheck = compose_rules.dockerfile_facts(os.path.join(root, "Dockerfile"), err_for("Dockerfile"))
    role_list = roles.read_roles(os.path.join(root, "deploy/roles.txt"))
    roles.check_subcommands(role_list, os.path.join(root, "src/main.rs"), err_for("roles"))
    external = external_secrets(args.example_secrets, err_for("secrets example"))
    table = access.read_table(os.path.join(root, "deploy/access.txt"))
    # The per-role Secrets: secrets.example.yaml shows two, the table says the rest.
    external = {**access.role_secrets(table), **external}

    schemas = [Schemas(v) for v in K8S_VERSIONS]
    overlays = [Render(n, load(p)) for n, p in map(split, args.render)]
    examples = [Render(n, load(p)) for n, p in map(split, args.examples)]
    count = 0
    for render in overlays + examples:
        err = err_for(render.name)
        for doc in render.docs:
            report_schema_errors(doc, schemas, err)
        count += len(render.docs)
        run(policy.check_names, render, err)
    base_config = {}
    for render in overlays:
        err = err_for(render.name)
        run(policy.check_pods, render, err, uid)
        run(policy.check_workers, render, err)
        run(links.check_selectors, render, err)
        run(links.check_references, render, err, external)
        run(links.check_scaled_objects, render, err)
        run(access.check_k8s, render, table, err)
        run(lambda: roles.check_deployed(f"overlay {render.name}", roles.k8s_deployed(render), role_list, err))
        base_config = base_config or render.gavel_config()
    for render in examples:
        if render.of_kind("KafkaTopic"):
            run(links.check_strimzi, render, err_for(render.name), base_config)
        if render.of_kind("KafkaTopic", "KafkaUser"):
            run(access.check_strimzi_users, render, table, err_for(render.name))

    services = 0
    if args.compose:
        project = json.load(open(args.compose))
        err = err_for("compose")
        run(compose_rules.check_compose, project, IMAGE, healthcheck, err)
        run(access.check_compose, project, IMAGE, table, root, err)
        run(compose_rules.check_scrape_targets,
            project, IMAGE, os.path.join(root, "deploy/observability/prometheus/prometheus.yml"), err)
        run(lambda: roles.check_deployed("docker-compose.yml", roles.compose_deployed(project, IMAGE), role_list, err))
        services = len(project["services"])

    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in the deployment files", file=sys.stderr)
        return 1
    workers = len(roles.of_kind(role_list, "worker"))
    print(f"resources={count} overlays={len(overlays)} examples={sum(len(r.docs) for r in examples)} "
          f"compose_services={services} worker_roles={workers} "
          f"k8s_versions={'+'.join(v.rsplit('.', 1)[0] for v in K8S_VERSIONS)}")
    return 0


def report_schema_errors(doc, schemas, err):
    """An error every Kubernetes version reports is said once, the others per version."""
    found = {s.version: s.errors(doc) for s in schemas}
    everywhere = set.intersection(*(set(m) for m in found.values()))
    for message in sorted(everywhere):
        err(doc, f"schema: {message}")
    for version, messages in found.items():
        for message in messages:
            if message not in everywhere:
                err(doc, f"schema (Kubernetes {version}): {message}")


def external_secrets(paths, err):
    """Secrets created out of band, as documented by the example files: name -> keys."""
    secrets = {}
    for path in paths:
        for doc in load(path):
            if doc.get("kind") != "Secret":
                err(doc, f"{path} should hold Secrets only")
                continue
            secrets[doc["metadata"]["name"]] = set(doc.get("stringData") or {}) | set(doc.get("data") or {})
    return secrets


def split(pair):
    name, _, path = pair.partition("=")
    return name, path


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--render", action="append", default=[], help="NAME=FILE, a rendered overlay")
    parser.add_argument("--examples", action="append", default=[], help="NAME=FILE, rendered examples")
    parser.add_argument("--example-secrets", action="append", default=[], help="documented out-of-band Secrets")
    parser.add_argument("--compose", help="compose-check's JSON output")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
