"""The Helm chart (helm/system-monitor), linted and rendered by Helm's own Go code (helm-python-sdk;
no helm binary), every rendered object validated against Kubernetes' schemas
(kubernetes-validate --strict, oldest supported and newest Kubernetes), and what the issue asks of
each object checked on the rendered YAML, for every value set in kit.VALUE_SETS."""

from __future__ import annotations

import json
import re

import helm_python
import kubernetes_validate
import pytest
import yaml

from .kit import (CHART, DASHBOARD, NAMESPACE, RELEASE, RULES, VALUE_SETS, find, generate,
                   kinds, render)

# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.29.0", "1.37.0"]
# Kinds that come from CRDs (no schema in kubernetes-validate): checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "Certificate"}
CLUSTER_SCOPED = {"PriorityClass"}


def agent(objects):
    return find(objects, "DaemonSet", "-agent")


def coordinator(objects):
    return find(objects, "Deployment", "-coordinator")


def container(workload):
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def args(workload):
    return container(workload)["args"]


def flag(workload, name):
    """The value of --name=VALUE in the container's args (None when absent)."""
    values = [a.split("=", 1)[1] if "=" in a else True for a in args(workload)
              if a == name or a.startswith(name + "=")]
    assert len(values) <= 1, f"{name} given twice: {args(workload)}"
    return values[0] if values else None


# ---------------------------------------------------------------------------------------------
# Helm's lint and render, Kubernetes' schemas.


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes_strictly(name):
    report = helm_python.lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE,
                              kube_version="v1.29.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_helm_lint_can_fail():
    report = helm_python.lint(CHART, {"agnet": {}}, strict=True, namespace=NAMESPACE)
    assert any("agnet" in e for e in report["errors"]), report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_passes_the_kubernetes_schema(name, version):
    objects = render(VALUE_SETS[name])
    assert objects
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} ({name}) against {version}: "
                        f"{'.'.join(map(str, e.path))}: {e.message}")
    unknown = {o["kind"] for o in objects} - CRD_KINDS
    for kind in unknown:
        # Raises SchemaNotFoundError for a kind the validator does not know (a typo, a CRD).
        kubernetes_validate.validate(next(o for o in objects if o["kind"] == kind), version, True)


def test_the_schema_check_can_fail():
    daemonset = agent(render({}))
    container(daemonset)["securityContext"]["readOnlyRootFilesystm"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBE_VERSIONS[0], strict=True)


def test_values_the_schema_does_not_know_are_refused():
    with pytest.raises(helm_python.HelmError, match="agnet"):
        generate.render({"agnet": {"port": 1}})
    with pytest.raises(helm_python.HelmError, match="port"):
        generate.render({"agent": {"port": "http"}})


@pytest.mark.parametrize("values, message", [
    ({"agent": {"register": True}, "coordinator": {"replicas": 2}}, "replicas 1"),
    ({"agent": {"register": True}, "tokens": {"cluster": False}}, "tokens.cluster"),
    ({"tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}},
     "agentIPAddresses"),
    ({"tls": {"certManager": {"enabled": True}}}, "needs tls.enabled"),
])
def test_contradictory_values_fail_with_what_to_change(values, message):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        generate.render(values)


# ---------------------------------------------------------------------------------------------
# Namespaced by the release; nothing cluster-specific written in.


@pytest.mark.parametrize("name", VALUE_SETS)
def test_everything_is_in_the_release_namespace_and_names_no_cluster_domain(name):
    objects = render(VALUE_SETS[name])
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
            assert NAMESPACE in meta["name"], "a cluster-scoped name must differ per namespace"
        else:
            assert meta.get("namespace") == NAMESPACE, f"{obj['kind']}/{meta['name']}"
        assert meta["name"].startswith(RELEASE) or NAMESPACE in meta["name"]
    text = json.dumps(objects)
    assert "cluster.local" not in text
    assert '"monitoring"' not in text and ".monitoring" not in text


# ---------------------------------------------------------------------------------------------
# The agent DaemonSet.


@pytest.mark.parametrize("name", VALUE_SETS)
def test_agent_daemonset_is_hardened(name):
    values = VALUE_SETS[name]
    ds = agent(render(values))
    pod = ds["spec"]["template"]["spec"]
    c = container(ds)
    assert pod["hostPID"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"]["kubernetes.io/os"] == "linux"
    tolerations = values.get("agent", {}).get("tolerations", [{"operator": "Exists"}])
    assert pod["tolerations"] == tolerations
    assert pod["priorityClassName"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("privileged") is False
    seccomp = sc.get("seccompProfile") or pod["securityContext"]["seccompProfile"]
    assert seccomp == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path, host in (("/host/proc", "/proc"), ("/host/sys", "/sys"), ("/host/root", "/")):
        assert mounts[path]["readOnly"] is True
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == host
    assert mounts["/host/root"]["mountPropagation"] == "HostToContainer"
    assert all(m.get("readOnly") for m in c["volumeMounts"]), "every mount read-only"
    assert flag(ds, "--path.procfs") == "/host/proc"
    assert flag(ds, "--path.sysfs") == "/host/sys"
    assert flag(ds, "--path.rootfs") == "/host/root"
    assert flag(ds, "--node-id") == "$(NODE_NAME)"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_probes_ask_health_in_the_scheme_served(name):
    values = VALUE_SETS[name]
    scheme = "HTTPS" if values.get("tls", {}).get("enabled") else "HTTP"
    objects = render(values)
    workloads = [agent(objects)] + ([coordinator(objects)] if "Deployment" in kinds(objects) else [])
    for w in workloads:
        c = container(w)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert int(flag(w, "--rest-api-port")) == ports["http"]
        for probe in ("readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            assert (get["path"], get["port"], get["scheme"]) == ("/api/health", "http", scheme)
        assert c["livenessProbe"]["failureThreshold"] * c["livenessProbe"]["periodSeconds"] >= 60


def test_the_agents_priority_class_is_the_charts_own_by_default():
    objects = render({})
    pc = find(objects, "PriorityClass")
    assert agent(objects)["spec"]["template"]["spec"]["priorityClassName"] == pc["metadata"]["name"]
    assert 0 < pc["value"] <= 1_000_000_000 and pc["globalDefault"] is False
    named = render(VALUE_SETS["locked-down"])
    assert "PriorityClass" not in kinds(named)
    assert agent(named)["spec"]["template"]["spec"]["priorityClassName"] == "system-node-critical"


def test_host_network_is_the_default_and_can_be_left():
    pod = agent(render({}))["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    pod = agent(render(VALUE_SETS["locked-down"]))["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is False and "dnsPolicy" not in pod


def test_headless_service_is_what_the_coordinator_discovers():
    objects = render({})
    svc = find(objects, "Service", "-agents")
    ds, deploy = agent(objects), coordinator(objects)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()
    name, port = flag(deploy, "--discover-dns").rsplit(":", 1)
    assert name == svc["metadata"]["name"]
    http = next(p for p in svc["spec"]["ports"] if p["name"] == "http")
    assert int(port) == http["port"]


# ---------------------------------------------------------------------------------------------
# The coordinator.


def restricted_violations(pod: dict) -> list[str]:
    """What Pod Security's "restricted" level (which includes "baseline") refuses in a pod spec:
    https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.29+)."""
    out = []
    psc = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{key}")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}
    for v in pod.get("volumes", []):
        kind = next(k for k in v if k != "name")
        if kind not in allowed_volumes:
            out.append(f"volume {v['name']} is {kind}")
    if psc.get("sysctls"):
        out.append("sysctls")
    for level in (psc, *(c.get("securityContext", {}) for c in pod["containers"])):
        if level.get("seLinuxOptions", {}).get("type") not in (None, "container_t", "container_init_t", "container_kvm_t"):
            out.append("seLinuxOptions.type")
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("privileged"):
            out.append(f"{where} privileged")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"{where} hostPort")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{where} procMount")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where} allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"{where} must drop ALL capabilities")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{where} adds capabilities")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{where} runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{where} runs as user 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where} seccompProfile must be RuntimeDefault or Localhost")
    return out


@pytest.mark.parametrize("name", [n for n in VALUE_SETS if n != "no-coordinator"])
def test_coordinator_meets_pod_security_restricted(name):
    pod = coordinator(render(VALUE_SETS[name]))["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert container(coordinator(render(VALUE_SETS[name])))["securityContext"]["readOnlyRootFilesystem"]


def test_the_restricted_check_can_fail():
    """The agent needs the host: the same check lists what it breaks."""
    violations = restricted_violations(agent(render({}))["spec"]["template"]["spec"])
    for expected in ("hostPID", "hostNetwork", "volume proc is hostPath",
                     "container agent runAsNonRoot must be true"):
        assert expected in violations


def test_coordinator_has_a_disruption_budget_over_its_pods():
    objects = render({})
    pdb = find(objects, "PodDisruptionBudget")
    labels = coordinator(objects)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_network_policy_admits_agents_and_the_named_clients_only():
    values = VALUE_SETS["locked-down"]
    objects = render(values)
    assert "NetworkPolicy" not in kinds(render({}))
    policy = find(objects, "NetworkPolicy")
    spec = policy["spec"]
    labels = coordinator(objects)["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    assert spec["policyTypes"] == ["Ingress"]
    agents_rule, clients_rule = spec["ingress"]
    agent_labels = agent(objects)["spec"]["template"]["metadata"]["labels"]
    assert agents_rule["from"][0]["podSelector"]["matchLabels"].items() <= agent_labels.items()
    assert agents_rule["from"][1] == {"ipBlock": {"cidr": "10.0.0.0/16"}}
    assert [p["port"] for p in agents_rule["ports"]] == ["http"]
    assert clients_rule["from"] == values["coordinator"]["networkPolicy"]["clients"]
    assert [p["port"] for p in clients_rule["ports"]] == ["http", "grpc"]


def test_coordinator_can_be_left_out():
    objects = render(VALUE_SETS["no-coordinator"])
    assert kinds(objects) == ["DaemonSet", "PriorityClass", "Secret", "Service", "ServiceAccount"]
    monitored = render({**VALUE_SETS["no-coordinator"], **VALUE_SETS["monitoring"]})
    assert [o["metadata"]["name"] for o in monitored if o["kind"] == "ServiceMonitor"] == [f"{RELEASE}-system-monitor-agent"]


# ---------------------------------------------------------------------------------------------
# Tokens and TLS.


def mounted_files(workload) -> dict[str, tuple[str, str]]:
    """Path inside the container -> (Secret name, key) for every secret-backed file."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for m in container(workload).get("volumeMounts", []):
        secret = volumes[m["name"]].get("secret")
        if secret:
            for item in secret["items"]:
                files[f"{m['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


@pytest.mark.parametrize("name", VALUE_SETS)
def test_token_and_tls_flags_read_files_mounted_from_secrets(name):
    values = VALUE_SETS[name]
    objects = render(values)
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    workloads = [o for o in objects if o["kind"] in ("DaemonSet", "Deployment")]
    for w in workloads:
        files = mounted_files(w)
        for a in args(w):
            if a.startswith(("--auth-token-file=", "--cluster-token-file=", "--tls-")):
                path = a.split("=", 1)[1]
                assert path in files, f"{a}: nothing mounted there"
        token_secret = values.get("tokens", {}).get("existingSecret") or f"{RELEASE}-system-monitor-tokens"
        assert files[flag(w, "--auth-token-file")] == (token_secret, "auth-token")
        for path, (secret, key) in files.items():
            if secret in secrets:
                assert key in secrets[secret]["data"]
        mode = w["spec"]["template"]["spec"]["volumes"]
        assert all(v["secret"]["defaultMode"] & 0o077 in (0, 0o040) for v in mode if "secret" in v), \
            "secret files readable by the owner (and the pod's group) only"
    deploy = [w for w in workloads if w["kind"] == "Deployment"]
    for d in deploy:
        assert flag(d, "--cluster-token-file"), "the coordinator accepts registrations with the cluster token"


def test_the_charts_own_tokens_are_random_and_separate():
    secret = find(render({}), "Secret")
    assert set(secret["data"]) == {"auth-token", "cluster-token"}
    import base64
    auth, cluster = (base64.b64decode(secret["data"][k]).decode() for k in ("auth-token", "cluster-token"))
    assert len(auth) == len(cluster) == 48 and auth != cluster
    assert "Secret" not in kinds(render(VALUE_SETS["locked-down"]))


def test_agents_send_the_cluster_token_only_when_they_register():
    assert flag(agent(render({})), "--cluster-token-file") is None
    assert flag(agent(render({})), "--coordinator") is None
    objects = render(VALUE_SETS["registration"])
    ds, deploy = agent(objects), coordinator(objects)
    assert flag(ds, "--cluster-token-file") == flag(deploy, "--cluster-token-file")
    svc = find(objects, "Service", "system-monitor")
    assert flag(ds, "--coordinator") == f"https://{svc['metadata']['name']}.{NAMESPACE}.svc:8080"
    assert flag(deploy, "--discover-dns") is None, "registered agents are not also found by DNS"


@pytest.mark.parametrize("name", ["tls-secret", "cert-manager", "registration"])
def test_tls_serves_with_the_certificate_and_verifies_peers_with_its_ca(name):
    values = VALUE_SETS[name]
    objects = render(values)
    for w, default in ((agent(objects), "agent"), (coordinator(objects), "coordinator")):
        files = mounted_files(w)
        secret = values["tls"].get(f"{default}SecretName") or f"{RELEASE}-system-monitor-{default}-tls"
        assert files[flag(w, "--tls-cert")] == (secret, "tls.crt")
        assert files[flag(w, "--tls-key")] == (secret, "tls.key")
        assert files[flag(w, "--tls-ca")] == (secret, "ca.crt")


def test_cert_manager_certificates_name_what_peers_check():
    values = VALUE_SETS["cert-manager"]
    objects = render(values)
    certs = {c["metadata"]["name"]: c["spec"] for c in objects if c["kind"] == "Certificate"}
    agent_cert = certs[f"{RELEASE}-system-monitor-agent"]
    coord_cert = certs[f"{RELEASE}-system-monitor-coordinator"]
    assert agent_cert["ipAddresses"] == values["tls"]["certManager"]["agentIPAddresses"]
    assert mounted_files(agent(objects))[flag(agent(objects), "--tls-cert")][0] == agent_cert["secretName"]
    assert mounted_files(coordinator(objects))[flag(coordinator(objects), "--tls-cert")][0] == coord_cert["secretName"]
    assert f"{RELEASE}-system-monitor.{NAMESPACE}.svc" in coord_cert["dnsNames"]
    for spec in certs.values():
        assert spec["issuerRef"] == values["tls"]["certManager"]["issuerRef"]
        assert "server auth" in spec["usages"]
        assert re.fullmatch(r"\d+h", spec["duration"]) and re.fullmatch(r"\d+h", spec["renewBefore"])


# ---------------------------------------------------------------------------------------------
# GPUs and pod attribution.


def test_gpu_values_reach_the_agent():
    ds = agent(render(VALUE_SETS["gpu"]))
    pod = ds["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert flag(ds, "--enable-dcgm-profiling") is True
    assert flag(ds, "--dcgm-address") == "localhost:5555"
    assert flag(ds, "--kubelet-pod-resources-socket") == "/var/lib/kubelet/pod-resources/kubelet.sock"
    mounts = {m["mountPath"]: m for m in container(ds)["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts["/var/lib/kubelet/pod-resources"]["name"])
    assert volume["hostPath"] == {"path": "/var/lib/kubelet/pod-resources", "type": "Directory"}
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e.get("value") for e in container(ds)["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    plain = agent(render({}))
    assert "runtimeClassName" not in plain["spec"]["template"]["spec"]
    for f in ("--enable-dcgm-profiling", "--dcgm-address", "--kubelet-pod-resources-socket"):
        assert flag(plain, f) is None


def test_overrides_reach_the_pods():
    values = VALUE_SETS["locked-down"]
    objects = render(values)
    ds, deploy = agent(objects), coordinator(objects)
    assert args(ds)[-1] == "--collector.tcp.scan-interval=60s"
    assert args(deploy)[-1] == "--poll-timeout=3s"
    assert container(ds)["resources"] == values["agent"]["resources"]
    assert container(ds)["image"] == f"ghcr.io/tracklab/system-monitor@{values['image']['digest']}"
    assert deploy["spec"]["replicas"] == 2
    default = agent(render({}))
    assert container(default)["image"].endswith(":" + helm_python.Chart.load(CHART).metadata["appVersion"])


# ---------------------------------------------------------------------------------------------
# Prometheus Operator objects and the dashboard.


def test_service_monitors_scrape_agents_and_coordinator_with_the_token():
    objects = render(VALUE_SETS["monitoring"])
    services = [o for o in objects if o["kind"] == "Service"]
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    jobs = set()
    for sm in monitors:
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [s for s in services
                    if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(selected) == 1, sm["metadata"]["name"]
        (endpoint,) = sm["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
        assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
        assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
            "name": f"{RELEASE}-system-monitor-tokens", "key": "auth-token"}}
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        # The GPUs' pod/namespace/container labels (dcgm-exporter's) are kept as they are, not
        # renamed exported_* under the target's own.
        assert endpoint["honorLabels"] is True
        (relabel,) = endpoint["relabelings"]
        jobs.add(relabel["replacement"])
    # The alerts' selectors.
    rules = RULES.read_text()
    for job in jobs:
        assert f'job="{job}"' in rules
    plain = render({**VALUE_SETS["monitoring"], "serviceMonitor": {
        **VALUE_SETS["monitoring"]["serviceMonitor"], "honorLabels": False}})
    for sm in (o for o in plain if o["kind"] == "ServiceMonitor"):
        assert sm["spec"]["endpoints"][0]["honorLabels"] is False
    tls = render({**VALUE_SETS["monitoring"], **VALUE_SETS["tls-secret"]})
    for sm in (o for o in tls if o["kind"] == "ServiceMonitor"):
        (endpoint,) = sm["spec"]["endpoints"]
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"


def test_prometheus_rule_is_the_rules_file():
    rule = find(render(VALUE_SETS["monitoring"]), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_dashboard_configmap_is_the_dashboard_file():
    cm = find(render(VALUE_SETS["monitoring"]), "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["system-monitor-cluster.json"]) == json.loads(DASHBOARD.read_text())


def test_crd_objects_have_the_fields_their_operators_need():
    """No schemas for CRDs here: the fields each kind requires, by hand."""
    objects = render({**VALUE_SETS["monitoring"], **VALUE_SETS["cert-manager"]})
    seen = set()
    for obj in objects:
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind == "ServiceMonitor":
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            assert spec["selector"]["matchLabels"] and spec["endpoints"]
            for e in spec["endpoints"]:
                assert re.fullmatch(r"\d+[smh]", e["interval"]) and re.fullmatch(r"\d+[smh]", e["scrapeTimeout"])
        elif kind == "PrometheusRule":
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            assert all(g["name"] and g["rules"] for g in spec["groups"])
        elif kind == "Certificate":
            assert obj["apiVersion"] == "cert-manager.io/v1"
            assert spec["secretName"] and spec["issuerRef"]["name"]
            assert spec.get("dnsNames") or spec.get("ipAddresses")
        else:
            continue
        seen.add(kind)
    assert seen == CRD_KINDS
