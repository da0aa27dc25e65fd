"""Unit tests of the cluster of a multi-worker run and of each worker's rows of the data.

No TensorFlow server starts here: TF_CONFIG and Slurm's variables are read,
the rendezvous runs between threads on localhost ports, and the rows are
computed for made-up strategies.
"""
import json
import socket
import threading

import pytest

from training import cluster as cluster_module
from training.cluster import ClusterError, parse_tf_config


def config(cluster, task_type="worker", index=0):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_tf_config_with_a_chief():
    cluster = parse_tf_config(config({"worker": ["b:2", "c:3"], "chief": ["a:1"]}, "worker", 1))
    assert cluster.tasks() == [("chief", 0, "a:1"), ("worker", 0, "b:2"), ("worker", 1, "c:3")]
    assert cluster.address == "c:3" and not cluster.is_chief and cluster.worker_rank == 2
    assert parse_tf_config(config({"worker": ["b:2"], "chief": ["a:1"]}, "chief")).is_chief
    plain = parse_tf_config(config({"worker": ["b:2", "c:3"]}))
    assert plain.is_chief and plain.num_workers == 2
    assert [task[:2] for task in plain.peers()] == [("worker", 1)]
    assert json.loads(plain.tf_config())["task"] == {"type": "worker", "index": 0}


@pytest.mark.parametrize("value, expected", [
    ("[]", 'needs a "cluster" object'),
    (config({"ps": ["a:1"], "worker": ["b:2"]}), "job 'ps' is not used"),
    (config({"worker": []}), "must be a non-empty list"),
    (config({"worker": ["a:1", "a:1"]}), "address a:1 is given to two tasks"),
    (config({"worker": ["a:99999"]}), "is not a \"host:port\" address"),
    (config({"worker": ["a:1"], "chief": ["b:1", "c:1"]}), "more than one address"),
    (config({"worker": ["a:1"]}, "chief"), "task.type must be one of"),
    (config({"worker": ["a:1"]}, "worker", -1), "task.index -1"),
    (config({"worker": ["a:1"]}, "worker", True), "task.index True"),
])
def test_malformed_tf_config(value, expected):
    with pytest.raises(ClusterError) as error:
        parse_tf_config(value)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_slurm_job_step():
    environ = {"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4",
               "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)"}
    cluster = cluster_module.from_environment(environ)
    assert cluster.jobs == {"worker": ["node07:8888", "node07:8889", "node08:8888",
                                       "node08:8889"]}
    assert cluster.task_index == 3 and not cluster.is_chief
    with pytest.raises(ClusterError, match="SLURM_STEP_NUM_TASKS=5"):
        cluster_module.from_environment(dict(environ, SLURM_STEP_NUM_TASKS="5"))
    with pytest.raises(ClusterError, match="set TF_CONFIG"):
        cluster_module.from_environment({})
    # TF_CONFIG, when set, is preferred.
    assert cluster_module.from_environment(
        dict(environ, TF_CONFIG=config({"worker": ["x:1"]}))).jobs == {"worker": ["x:1"]}


def test_rendezvous_meets_every_worker_then_frees_the_port():
    ports = cluster_module.free_local_ports(3)
    workers = {"worker": [f"localhost:{p}" for p in ports]}
    errors = []

    def worker(index):
        try:
            cluster_module.rendezvous(parse_tf_config(config(workers, "worker", index)), 20)
        except ClusterError as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(thread.is_alive() for thread in threads)
    for port in ports:                     # free again for TensorFlow's server
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", port))


def test_rendezvous_names_who_did_not_answer_and_a_busy_port():
    ports = cluster_module.free_local_ports(3)
    workers = {"worker": [f"localhost:{p}" for p in ports]}
    with pytest.raises(ClusterError) as error:
        cluster_module.rendezvous(parse_tf_config(config(workers)), 0.5)
    message = str(error.value)
    assert message.startswith(f"worker 1 (localhost:{ports[1]}), worker 2 (localhost:"
                              f"{ports[2]}) did not answer within 0.5 s")
    with socket.socket() as busy:
        busy.bind(("", ports[0]))
        busy.listen(1)
        with pytest.raises(ClusterError, match=f"cannot listen on port {ports[0]}"):
            cluster_module.rendezvous(parse_tf_config(config(workers)), 0.5)


def test_stopped_tasks_prefers_the_addresses_that_no_longer_answer():
    cluster = parse_tf_config(config({"worker": ["a:1", "b:2", "c:3"]}))
    message = ("Collective ops is aborted by: The following tasks are unhealthy (stopped "
               "sending heartbeats):\n/job:worker/replica:0/task:2")
    assert cluster_module.stopped_tasks(message, cluster, probe=lambda a: a != "b:2") == \
        [("worker", 1, "b:2")]
    assert cluster_module.stopped_tasks(message, cluster, probe=lambda a: True) == \
        [("worker", 2, "c:3")]
    assert cluster_module.stopped_tasks("no task named", cluster, probe=lambda a: True) == []


class _Strategy:
    def __init__(self, replicas):
        self.num_replicas_in_sync = replicas


def test_workers_rows_partition_every_epoch(tmp_path):
    """Each worker's rows: over an epoch every sample once in all, as one machine's batches."""
    from training.data import TrainingSet
    from training.replicas import Replicas

    root = tmp_path / "data"
    root.mkdir()
    for k in range(12):
        (root / f"s{k:02d}.png").write_bytes(b"")
    data = TrainingSet([root], seed=5)
    batch, workers, per_worker = 6, 3, 2
    clusters = [parse_tf_config(config({"worker": [f"h:{p}" for p in range(1, 4)]}, "worker", w))
                for w in range(workers)]
    parts = [Replicas("multiworker", _Strategy(workers * per_worker), c) for c in clusters]
    assert [p.worker_rows(batch) for p in parts] == [(0, 2), (2, 2), (4, 2)]
    for epoch in range(3):
        read = []
        for step in range(epoch * 2, epoch * 2 + 2):        # 12 samples, 6 a step
            whole = data.names(step, batch)
            rows = [whole[first:first + count] for first, count in
                    (p.worker_rows(batch) for p in parts)]
            assert sum(rows, []) == whole
            read += sum(rows, [])
        assert sorted(read) == sorted(str(root / f"s{k:02d}.png") for k in range(12))
