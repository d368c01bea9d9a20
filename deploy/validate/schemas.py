"""Schema validation of rendered manifests, offline.

Built-in kinds: the strict JSON schemas that the kubernetes-validate package ships
(unknown fields are errors), loaded once per Kubernetes version. Custom resources
(KEDA, Prometheus Operator, Strimzi): the reduced schemas in crds.py, which reuse the
Kubernetes definitions where a CRD embeds a Kubernetes type.
"""

import json
import re

import importlib_resources
import jsonschema
from referencing import Registry, Resource

import crds

DEFINITIONS = "https://kubernetes.io/api/_definitions.json"


class Schemas:
    def __init__(self, version):
        self.version = version
        root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
        self.dir = root.joinpath(f"v{version}-local-strict")
        if not self.dir.is_dir():
            raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {version}")
        definitions = json.loads(self.dir.joinpath("_definitions.json").read_text())
        self.registry = Resource.from_contents(definitions) @ Registry()
        self.validators = {}

    def validator(self, api_version, kind):
        key = (api_version, kind)
        if key not in self.validators:
            self.validators[key] = self._load(api_version, kind)
        return self.validators[key]

    def _load(self, api_version, kind):
        schema = crds.SCHEMAS.get((api_version, kind))
        if schema is None:
            # The package's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1.
            group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            path = self.dir.joinpath(f"{kind.lower()}-{group_version}.json")
            if not path.is_file():
                return None
            schema = json.loads(path.read_text())
        return jsonschema.Draft202012Validator(schema, registry=self.registry)

    def errors(self, doc):
        """Messages for one resource; empty when it is valid."""
        validator = self.validator(doc.get("apiVersion", ""), doc.get("kind", ""))
        if validator is None:
            return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')} "
                    f"(Kubernetes {self.version}, nor a known custom resource)"]
        return [
            f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
        ]
