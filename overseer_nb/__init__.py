"""overseer_nb: run a graph of jobs from a Jupyter notebook, Overseer's way.

Declare a graph (job type -> parent job types), write one handler per job
type, and ``run`` it: ready jobs run in parallel on an ipyparallel cluster.
``import overseer_nb`` stays light: ipyparallel, zmq and widgets are
imported only when a run or a display needs them.
"""

from __future__ import annotations

from .api import last_run, run
from .errors import (
    ArgsError,
    ClusterError,
    CycleError,
    DotNotFoundError,
    GraphError,
    HandlerError,
    HandlerOptionError,
    InvalidHandlerError,
    JobNameError,
    JobRunningError,
    JournalError,
    MissingHandlerError,
    OptionError,
    OverseerError,
    ParentsError,
    RunError,
    RunOwnerError,
    SelfDependencyError,
    TransitionError,
    UnknownHandlerError,
    UnknownJobError,
    UnknownOptionError,
    UnknownParentError,
)
from .execution import ThreadExecutor, stop_cluster, use_cluster
from .graph import JobGraph, each
from .handlers import handler, harness, validate_graph_handlers
from .job import Job
from .journal import diff, jobs_with_status, load_run, prune, runs, store_usage
from .notebook import name_cells
from .records import Attempt, ErrorInfo, JobRecord
from .running import Run
from .signals import abort, abort_silent, fault
from .states import DISPLAY_STATES, STATUSES

name_cells()  # a traceback says Cell In[5] where IPython runs cells (nothing is imported for it)

__version__ = "0.1.0"

__all__ = [
    "JobGraph",
    "each",
    "Job",
    "Run",
    "JobRecord",
    "Attempt",
    "ErrorInfo",
    "run",
    "last_run",
    "runs",
    "load_run",
    "diff",
    "jobs_with_status",
    "store_usage",
    "prune",
    "fault",
    "abort",
    "abort_silent",
    "harness",
    "handler",
    "validate_graph_handlers",
    "use_cluster",
    "stop_cluster",
    "ThreadExecutor",
    "STATUSES",
    "DISPLAY_STATES",
    "OverseerError",
    "GraphError",
    "CycleError",
    "UnknownParentError",
    "SelfDependencyError",
    "JobNameError",
    "ParentsError",
    "HandlerError",
    "MissingHandlerError",
    "InvalidHandlerError",
    "RunError",
    "UnknownJobError",
    "JobRunningError",
    "ClusterError",
    "ArgsError",
    "JournalError",
    "RunOwnerError",
    "UnknownHandlerError",
    "HandlerOptionError",
    "OptionError",
    "UnknownOptionError",
    "TransitionError",
    "DotNotFoundError",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython):
    """``%load_ext overseer_nb``: register the magics and the ``Overseer`` configuration."""
    from .notebook import load

    load(ipython)


def unload_ipython_extension(ipython):
    """``%unload_ext overseer_nb``: remove what ``load_ipython_extension`` added."""
    from .notebook import unload

    unload(ipython)
