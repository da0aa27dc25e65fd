"""The machines of a multi-worker run: who they are, whether they are all there, who stopped.

Why it is built this way: `tf.distribute.MultiWorkerMirroredStrategy` reads
`TF_CONFIG` and then waits inside TensorFlow's C++ runtime, holding the
Python interpreter, until every worker has registered. A misspelt
`TF_CONFIG` gives a traceback, and a worker that never comes gives a hang
that neither a Python thread nor SIGTERM can end (measured with TensorFlow
2.21: a lone worker of two, with an 8 s registration timeout configured,
still waited after 10 minutes). So before TensorFlow's server starts:

- `from_environment` reads `TF_CONFIG`, or a Slurm job step's variables,
  into a `Cluster`, and every mistake is one line (`ClusterError`);
- `rendezvous` listens on this worker's own address and knocks on every
  other worker's until all have reached each other, or names those that
  did not within the timeout. The port is then handed to TensorFlow's server.

When a worker stops during the run, the others get TensorFlow's error from
a collective operation, in TensorFlow's words; `stopped_tasks` names the
worker: the addresses that no longer answer, else the tasks the message names.

Nothing here imports TensorFlow, except `from_environment` for a Slurm job
(its host-list expansion is TensorFlow's own).
"""
import dataclasses
import json
import re
import socket
import time

JOBS = ("chief", "worker")        # the jobs MultiWorkerMirroredStrategy trains with


class ClusterError(ValueError):
    """A cluster that cannot start: a bad TF_CONFIG, a busy port, a worker not reached."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The tasks of a run and which one this process is.

    Attributes:
      jobs: {"chief": [address], "worker": [address, ...]}, addresses "host:port";
        "chief" is optional (without it worker 0 is the chief).
      task_type: "chief" or "worker", this process's job.
      task_index: this process's index in its job.
    """
    jobs: dict
    task_type: str
    task_index: int

    def tasks(self):
        """[(job, index, address)] of every task, the chief first."""
        return [(job, index, address) for job in JOBS
                for index, address in enumerate(self.jobs.get(job, []))]

    @property
    def address(self):
        """This task's "host:port"."""
        return self.jobs[self.task_type][self.task_index]

    @property
    def is_chief(self):
        """Whether this task writes the run's files (the chief, else worker 0)."""
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_index == 0

    @property
    def num_workers(self):
        return len(self.tasks())

    @property
    def worker_rank(self):
        """This task's place among all tasks, 0 for the chief (TensorFlow's `id_in_cluster`)."""
        return [(job, index) for job, index, _ in self.tasks()].index(
            (self.task_type, self.task_index))

    def peers(self):
        """[(job, index, address)] of the other tasks."""
        return [task for task in self.tasks() if task[:2] != (self.task_type, self.task_index)]

    def tf_config(self):
        """The cluster as a TF_CONFIG JSON string."""
        return json.dumps({"cluster": self.jobs,
                           "task": {"type": self.task_type, "index": self.task_index}})


def describe(job, index, address):
    """How a task is named to a user: "worker 1 (host:9001)"."""
    return f"{job} {index} ({address})"


def _address(text, where):
    if not isinstance(text, str) or text.count(":") < 1:
        raise ClusterError(f"{where}: {text!r} is not a \"host:port\" address")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"{where}: {text!r} is not a \"host:port\" address")
    return text


def parse_tf_config(text):
    """Reads a TF_CONFIG value into a `Cluster`.

    Args:
      text: the JSON of TF_CONFIG: {"cluster": {"worker": ["host:port", ...],
        optionally "chief": ["host:port"]}, "task": {"type": "worker", "index": 0}}.

    Returns:
      A `Cluster`.

    Raises:
      ClusterError: malformed JSON, a job other than chief and worker, an
        address that is not "host:port" or given twice, or a task that is not
        in the cluster (the message is one line naming what is wrong).
    """
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ClusterError(f"TF_CONFIG: not valid JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ClusterError('TF_CONFIG: needs a "cluster" object, e.g. '
                           '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                           '"task": {"type": "worker", "index": 0}}')
    jobs = {}
    for job, addresses in config["cluster"].items():
        if job not in JOBS:
            raise ClusterError(f"TF_CONFIG: job {job!r} is not used by multi-worker training "
                               "(only \"chief\" and \"worker\")")
        if not isinstance(addresses, list) or not addresses:
            raise ClusterError(f"TF_CONFIG: cluster.{job} must be a non-empty list of "
                               "\"host:port\" addresses")
        jobs[job] = [_address(a, f"TF_CONFIG cluster.{job}") for a in addresses]
    if "worker" not in jobs and "chief" not in jobs:
        raise ClusterError("TF_CONFIG: the cluster names no worker")
    if len(jobs.get("chief", [])) > 1:
        raise ClusterError("TF_CONFIG: cluster.chief holds more than one address")
    everything = [a for job in JOBS for a in jobs.get(job, [])]
    repeated = sorted({a for a in everything if everything.count(a) > 1})
    if repeated:
        raise ClusterError(f"TF_CONFIG: address {repeated[0]} is given to two tasks")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in jobs:
        raise ClusterError(f"TF_CONFIG: task.type must be one of {sorted(jobs)}, "
                           f"got {None if not isinstance(task, dict) else task.get('type')!r}")
    index = task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or \
            not 0 <= index < len(jobs[task["type"]]):
        raise ClusterError(f"TF_CONFIG: task.index {index!r} is not an index of "
                           f"cluster.{task['type']} ({len(jobs[task['type']])} addresses)")
    ordered = {job: jobs[job] for job in JOBS if job in jobs}
    return Cluster(ordered, task["type"], index)


SLURM_PORT = 8888       # the first port of a Slurm node's tasks (TensorFlow's resolver's default)


def slurm_cluster(environ):
    """The cluster of a Slurm job step (one task per worker), from its variables.

    Tasks on one node get ports 8888, 8889, ... (TensorFlow's
    `SlurmClusterResolver`, which expands Slurm's host lists). GPUs are left
    as Slurm gives them (`--gpus-per-task`, or one task per node with all its GPUs).

    Raises:
      ClusterError: a variable is missing or malformed.
    """
    names = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
             "SLURM_STEP_TASKS_PER_NODE")
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise ClusterError(f"Slurm: {missing[0]} is not set (run train.py with srun, one "
                           "task per worker)")
    from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver as slurm

    try:
        hosts = slurm.expand_hostlist(environ["SLURM_STEP_NODELIST"])
        per_node = slurm.expand_tasks_per_node(environ["SLURM_STEP_TASKS_PER_NODE"])
        rank, total = int(environ["SLURM_PROCID"]), int(environ["SLURM_STEP_NUM_TASKS"])
    except (ValueError, IndexError) as error:
        raise ClusterError(f"Slurm: cannot read the job step's nodes ({error})") from None
    addresses = [f"{host}:{SLURM_PORT + k}" for host, count in zip(hosts, per_node)
                 for k in range(count)]
    if len(addresses) != total or not 0 <= rank < total:
        raise ClusterError(f"Slurm: {len(addresses)} tasks on the nodes but "
                           f"SLURM_STEP_NUM_TASKS={total}, SLURM_PROCID={rank}")
    return Cluster({"worker": addresses}, "worker", rank)


def from_environment(environ):
    """This process's `Cluster`: from TF_CONFIG, else from a Slurm job step.

    Raises:
      ClusterError: neither is there, or the one there is malformed.
    """
    if environ.get("TF_CONFIG"):
        return parse_tf_config(environ["TF_CONFIG"])
    if environ.get("SLURM_PROCID") is not None and environ.get("SLURM_STEP_NODELIST"):
        return slurm_cluster(environ)
    raise ClusterError("--strategy multiworker: set TF_CONFIG on every machine (see "
                       "docs/training.md), or run inside a Slurm job step (srun)")


def _split(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def answers(address, timeout=1.0, message=b""):
    """Whether something accepts a TCP connection at "host:port" (`message` is sent to it)."""
    try:
        with socket.create_connection(_split(address), timeout=timeout) as connection:
            if message:
                connection.sendall(message)
            return True
    except OSError:
        return False


def _callers(listener):
    """The tasks ("job index") that knocked on `listener` since the last call."""
    heard = set()
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return heard
        with connection:
            connection.settimeout(1.0)
            try:
                heard.add(connection.recv(64).decode("ascii", "replace").strip())
            except OSError:
                pass


def rendezvous(cluster, timeout, poll=0.2, clock=time.monotonic, sleep=time.sleep):
    """Waits until every other task of the cluster and this one have reached each other.

    This task listens on its own port and knocks on every other task's,
    saying who it is. It is done when it has reached every other task and
    every other task has reached it; so when it stops listening, no task
    still needs it to listen. The port is then free for TensorFlow's server.

    Args:
      cluster: the `Cluster`.
      timeout: seconds to wait for the last task.
      poll: seconds between rounds of knocking.

    Raises:
      ClusterError: this task's port cannot be opened, or some tasks were not
        reached, or did not reach this one, within `timeout` (they are named).
    """
    _, port = _split(cluster.address)
    me = f"{cluster.task_type} {cluster.task_index}"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            listener.bind(("", port))
            listener.listen(64)
            listener.setblocking(False)
        except OSError as error:
            raise ClusterError(
                f"{describe(cluster.task_type, cluster.task_index, cluster.address)}: cannot "
                f"listen on port {port} ({error.strerror or error}); is another run using "
                "it?") from None
        peers = cluster.peers()
        reached, heard = set(), set()
        deadline = clock() + timeout
        while True:
            heard |= _callers(listener)
            for job, index, address in peers:
                if (job, index) not in reached and answers(
                        address, timeout=max(0.05, min(1.0, deadline - clock())),
                        message=me.encode("ascii")):
                    reached.add((job, index))
            heard |= _callers(listener)
            missing = [task for task in peers
                       if task[:2] not in reached or f"{task[0]} {task[1]}" not in heard]
            if not missing:
                return
            if clock() >= deadline:
                names = ", ".join(describe(*task) for task in missing)
                raise ClusterError(
                    f"{names} did not answer within {timeout:g} s (--cluster-timeout): start "
                    "train.py with the same command on every machine of the cluster, and "
                    "check the addresses and firewalls")
            sleep(poll)
    finally:
        listener.close()


def free_local_ports(count):
    """`count` distinct TCP ports free on this machine now (for a cluster on localhost)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_TASK = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")


def stopped_tasks(message, cluster, probe=answers):
    """The tasks that stopped, after TensorFlow's error `message` from a collective.

    The tasks whose addresses no longer answer; when all still answer (a
    machine that hangs, or a network cut between two that both run), the
    other tasks the message names.

    Returns:
      [(job, index, address)], possibly empty.
    """
    gone = [task for task in cluster.peers() if not probe(task[2])]
    if gone:
        return gone
    named = {(job, int(index)) for job, index in _TASK.findall(message)}
    return [task for task in cluster.peers() if task[:2] in named]
