"""Where attempts run: the executor seam, ipyparallel, the code that runs on an engine, clusters.

Nothing here imports ipyparallel at import time; it is imported when a
cluster is started or connected. Nothing here imports the run, the journal,
the displays or the notebook: execution sits under the run, above the core.
"""

from .cluster import LOCAL_CONTROLLER_ARGS, current_client, describe, prestart, stop_cluster, use_cluster
from .connection import queue_status
from .engine import engine_identity
from .ipp import IPyParallelExecutor, connect, store_problem
from .processes import EngineProcess, engine_process, pid_alive
from .seam import Detached, Executor, Task, outcome_from_report
from .shipping import Shipper
from .threads import ThreadExecutor

__all__ = [
    "Executor",
    "Task",
    "outcome_from_report",
    "Detached",
    "ThreadExecutor",
    "IPyParallelExecutor",
    "connect",
    "store_problem",
    "Shipper",
    "use_cluster",
    "stop_cluster",
    "current_client",
    "describe",
    "prestart",
    "engine_identity",
    "engine_process",
    "EngineProcess",
    "pid_alive",
    "queue_status",
    "LOCAL_CONTROLLER_ARGS",
]
