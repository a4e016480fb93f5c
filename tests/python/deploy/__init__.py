"""Tests of what deploys system_monitor: the Helm chart, the kustomize manifests, the Prometheus
rules and Grafana dashboard, the Dockerfile and the systemd units (scripts/test.sh runs them as a
stage of their own). A package, so that its modules never shadow tests/python's `conftest`."""
