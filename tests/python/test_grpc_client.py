"""The gRPC services through grpcio, as the TrackLab SDK calls them: the legacy
``tracklab_internal.SystemMonitorService`` and the typed ``tracklab.monitor.v1.MonitorService``."""

import json
import math
import os
import platform
import socket
import time

import grpc
import pytest

TIMEOUT = 10


def legacy_stub(stubs, monitor):
    channel = grpc.insecure_channel(monitor.grpc_target)
    return channel, stubs.legacy_grpc.SystemMonitorServiceStub(channel)


def v1_stub(stubs, monitor):
    channel = grpc.insecure_channel(monitor.grpc_target)
    return channel, stubs.v1_grpc.MonitorServiceStub(channel)


def stats_values(response):
    """GetStats items as {key: number}; every value must be the JSON text of a finite number."""
    record = response.record
    assert record.WhichOneof("record_type") == "stats"
    values = {}
    for item in record.stats.item:
        value = json.loads(item.value_json)
        assert isinstance(value, (int, float)) and math.isfinite(value), (item.key, item.value_json)
        values[item.key] = value
    return values


def test_get_stats_for_our_pid(stubs, monitor):
    channel, stub = legacy_stub(stubs, monitor)
    with channel:
        response = stub.GetStats(stubs.legacy.GetStatsRequest(pid=os.getpid()), timeout=TIMEOUT)
    stats = response.record.stats
    assert stats.stats_type == stubs.legacy.StatsRecord.SYSTEM
    assert abs(stats.timestamp.ToSeconds() - time.time()) < 30
    values = stats_values(response)
    for key in ["cpu", "memory_percent", "proc.memory.percent"]:
        assert 0 <= values[key] <= 100, (key, values[key])
    cores = [k for k in values if k.startswith("cpu.") and k.endswith(".cpu_percent")]
    assert sorted(cores) == sorted(f"cpu.{i}.cpu_percent" for i in range(os.cpu_count()))
    # Our process tree includes the monitor we started.
    assert values["proc.cpu.threads"] >= 2
    assert values["proc.memory.rssMB"] > 1
    assert values["proc.memory.availableMB"] > 0
    for key in ["network.sent", "network.recv", "disk.in", "disk.out"]:
        assert values[key] >= 0, key


def test_get_stats_errors(stubs, monitor):
    channel, stub = legacy_stub(stubs, monitor)
    with channel:
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetStats(stubs.legacy.GetStatsRequest(pid=2**31 - 1), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as negative:
            stub.GetStats(stubs.legacy.GetStatsRequest(pid=-1), timeout=TIMEOUT)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert str(2**31 - 1) in missing.value.details()
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_metadata(stubs, monitor):
    channel, stub = legacy_stub(stubs, monitor)
    with channel:
        response = stub.GetMetadata(stubs.legacy.GetMetadataRequest(), timeout=TIMEOUT)
    assert response.record.WhichOneof("record_type") == "environment"
    env = response.record.environment
    # Python spells it e.g. Linux-6.1.0-18-amd64-x86_64-with-glibc2.36; ours is its prefix.
    assert platform.platform().startswith(env.os), (env.os, platform.platform())
    assert env.host == socket.gethostname()
    assert env.cpu_count_logical == os.cpu_count()
    assert 1 <= env.cpu_count <= env.cpu_count_logical
    assert env.gpu_count == len(env.gpu_nvidia) + len(env.gpu_amd)


def test_v1_get_metrics_and_info(stubs, monitor):
    channel, stub = v1_stub(stubs, monitor)
    with channel:
        info = stub.GetInfo(stubs.v1.GetInfoRequest(), timeout=TIMEOUT)
        metrics = stub.GetMetrics(stubs.v1.GetMetricsRequest(), timeout=TIMEOUT)
        # Started without --node-id (as TrackLab's launcher does): any id names this monitor.
        named = stub.GetMetrics(stubs.v1.GetMetricsRequest(node_id="test-node"), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as malformed:
            stub.GetMetrics(stubs.v1.GetMetricsRequest(node_id="no such node"), timeout=TIMEOUT)
    assert info.hostname == socket.gethostname()
    assert info.cpu_threads == os.cpu_count()
    assert len(metrics.nodes) == 1
    node = metrics.nodes[0]
    assert node.node_id == info.node_id
    assert 0 <= node.cpu.overall_percent <= 100
    assert len(node.cpu.cores) == info.cpu_threads
    assert 0 < node.memory.used_bytes <= node.memory.total_bytes == info.memory_total_bytes
    assert [n.node_id for n in named.nodes] == ["test-node"]
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_v1_watch_metrics(stubs, monitor):
    channel, stub = v1_stub(stubs, monitor)
    with channel:
        stream = stub.WatchMetrics(stubs.v1.WatchMetricsRequest(), timeout=TIMEOUT)
        taken = []
        for node in stream:
            taken.append(node)
            if len(taken) == 2:
                break
        stream.cancel()
    assert len(taken) == 2
    assert taken[0].timestamp_unix_ms < taken[1].timestamp_unix_ms


def test_teardown_stops_a_child_monitor(stubs, child_monitor, tmp_path):
    channel, stub = legacy_stub(stubs, child_monitor)
    with channel:
        stub.TearDown(stubs.legacy.TearDownRequest(), timeout=TIMEOUT)
    assert child_monitor.process.wait(TIMEOUT) == 0
    assert not (tmp_path / "ports").exists(), "the portfile is removed at a clean exit"
