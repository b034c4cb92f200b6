"""Where attempts run: the executor seam, ipyparallel, the code that runs on an engine, clusters.

Nothing here imports ipyparallel at import time; it is imported when a
cluster is started or connected.
"""

from .cluster import current_client, describe, stop_cluster, use_cluster
from .ipp import IPyParallelExecutor
from .seam import Executor, Task, outcome_from_report
from .shipping import Shipper
from .threads import ThreadExecutor

__all__ = [
    "Executor",
    "Task",
    "outcome_from_report",
    "ThreadExecutor",
    "IPyParallelExecutor",
    "Shipper",
    "use_cluster",
    "stop_cluster",
    "current_client",
    "describe",
]
