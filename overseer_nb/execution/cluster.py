"""Which ipyparallel cluster runs the jobs: the shared local one, or one the user points at.

Nothing here is imported by ``import overseer_nb``; ipyparallel is imported
the first time a cluster is needed.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Any

from ..errors import ClusterError

__all__ = [
    "use_cluster",
    "stop_cluster",
    "current_client",
    "describe",
    "prestart",
    "replace_engines",
    "engines_starting",
    "is_default_local",
    "LOCAL_CONTROLLER_ARGS",
]

log = logging.getLogger("overseer_nb")

# Heartbeats every 0.5 s, 3 misses: a lost engine host is noticed in ~2 s
# instead of ~36 s with ipyparallel's defaults.
LOCAL_CONTROLLER_ARGS = [
    "--HeartMonitor.period=500",
    "--HeartMonitor.max_heartmonitor_misses=3",
]

# The controller and each engine of the local cluster run as
# ``python -c WATCHED <kernel pid> <module> <args>``: the module as ``python -m``
# runs it, beside a thread that ends the process and what it started (the
# controller's schedulers, an engine's nanny) once the kernel that started it is
# gone. atexit stops the cluster when the kernel exits; this is for a kernel that
# cannot run atexit: SIGKILL, the OOM killer, a segfault. A dead process's
# children are handed to another parent, so a changed parent pid is the signal.
WATCH_PERIOD = 0.5  # seconds between looks at the parent
WATCH_GRACE = 2.0  # seconds to exit on SIGTERM before the process and its children are killed
WATCHED = f"""import os, runpy, signal, sys, threading, time
def end(children, how):
    for child in children:
        try:
            getattr(child, how)()
        except Exception:
            pass
def watch(kernel):
    while os.getppid() == kernel:
        time.sleep({WATCH_PERIOD})
    try:
        import psutil
        children = psutil.Process().children(recursive=True)
    except Exception:
        children = []
    end(children, "terminate")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep({WATCH_GRACE})
    end(children, "kill")
    os._exit(1)
kernel, module = int(sys.argv[1]), sys.argv[2]
del sys.argv[1:3]
threading.Thread(target=watch, args=(kernel,), daemon=True, name="overseer-watch-kernel").start()
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

_lock = threading.RLock()
_state: dict[str, Any] = {"client": None, "cluster": None, "owned": False, "engines": None}


def _ipp():
    try:
        import ipyparallel
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ClusterError(
            "ipyparallel is not installed; pip install ipyparallel (overseer_nb depends on it)"
        ) from exc
    return ipyparallel


def use_cluster(
    client_or_cluster: Any = None,
    *,
    engines: int | None = None,
    profile: str | None = None,
    cluster_id: str | None = None,
    url_file: str | None = None,
) -> Any:
    """Set the cluster later runs use by default, and return its ``ipyparallel.Client``.

    Give one of: an ``ipyparallel.Client`` or ``Cluster``; ``profile`` and/or
    ``cluster_id`` of a running cluster (``ipcluster start --profile P``);
    ``url_file``, a ``ipcontroller-client.json`` file; or ``engines=N`` to
    start a local cluster of N engines now (stopping a local one started
    before). With nothing, start the local cluster if none is running.
    """
    chosen = [name for name, v in (("client_or_cluster", client_or_cluster), ("engines", engines), ("url_file", url_file)) if v is not None]
    if profile is not None or cluster_id is not None:
        chosen.append("profile/cluster_id")
    if len(chosen) > 1:
        raise ClusterError(
            f"use_cluster takes one way to find a cluster, got {', '.join(chosen)}; "
            "pass only one of them"
        )
    with _lock:
        if client_or_cluster is not None:
            client, cluster = _from_object(client_or_cluster)
            _set(client, cluster, owned=False)
        elif url_file is not None or profile is not None or cluster_id is not None:
            _set(_connect(profile=profile, cluster_id=cluster_id, url_file=url_file), None, owned=False)
        else:
            if engines is not None or not _state["owned"]:
                stop_cluster()
                _start_local(engines)
        return _state["client"]


def current_client(cluster: Any = None) -> tuple[Any, Any]:
    """``(client, cluster)`` for a run: ``cluster`` if given, else the default, started if needed."""
    if cluster is not None:
        return _from_object(cluster)
    with _lock:
        if _state["client"] is None:
            _start_local(None, wait_for=1)  # work starts on the first engine; the others join
        return _state["client"], _state["cluster"]


def prestart() -> threading.Thread | None:
    """Start the default local cluster in the background unless a cluster is chosen already.

    ``%load_ext overseer_nb`` calls this (``Overseer.prestart_cluster``), so the
    first run does not wait for engines to start. A run started meanwhile waits
    for this start instead of starting a second cluster.
    """
    if _state["client"] is not None:
        return None

    def start() -> None:
        with _lock:
            if _state["client"] is None:
                try:
                    _start_local(None, wait_for=1)
                except Exception as exc:  # the first run will say it again, in its cell
                    log.warning("overseer_nb: could not start the local cluster: %s", exc)

    thread = threading.Thread(target=start, daemon=True, name="overseer-prestart")
    thread.start()
    return thread


def stop_cluster() -> None:
    """Stop the local cluster overseer_nb started; forget a cluster it only connected to."""
    with _lock:
        client, cluster, owned = _state["client"], _state["cluster"], _state["owned"]
        _state.update(client=None, cluster=None, owned=False, engines=None)
    if client is not None:
        try:
            client.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass
    if owned and cluster is not None:
        _engine_kwargs.pop(id(cluster), None)
        try:
            # Engines stopped on purpose exit with code 1, which ipyparallel reports as
            # warnings carrying each engine's whole log: noise in the user's cell.
            cluster.log.setLevel(logging.ERROR)
            cluster.stop_cluster_sync()
        except Exception as exc:  # pragma: no cover
            log.warning("stopping the local cluster: %s", exc)


def describe() -> dict[str, Any]:
    """What the default cluster is: engines, where it runs, whether overseer_nb started it."""
    with _lock:
        client, cluster, owned = _state["client"], _state["cluster"], _state["owned"]
    if client is None:
        return {"connected": False}
    info = {"connected": True, "engines": len(client.ids), "owned": owned}
    info.update(profile=getattr(client, "profile", None), controller=getattr(client, "_config", {}).get("registration"))
    if cluster is not None:
        info.update(profile=cluster.profile, cluster_id=cluster.cluster_id)
    return info


def connected() -> tuple[Any, Any] | None:
    """The default cluster's (client, cluster) if one is connected now, else None (nothing is started)."""
    with _lock:
        client, cluster = _state["client"], _state["cluster"]
    return None if client is None else (client, cluster)


def _set(client: Any, cluster: Any, *, owned: bool) -> None:
    if _state["client"] is not None and _state["client"] is not client:
        stop_cluster()
    _state.update(client=client, cluster=cluster, owned=owned)


def _from_object(obj: Any) -> tuple[Any, Any]:
    ipp = _ipp()
    if isinstance(obj, ipp.Client):
        return obj, None
    if isinstance(obj, ipp.Cluster):
        try:
            return obj.connect_client_sync(), obj
        except Exception as exc:
            raise ClusterError(
                f"cannot connect to the ipyparallel Cluster {obj.cluster_id!r}: {exc}. "
                "Start it first (cluster.start_cluster_sync())."
            ) from exc
    raise ClusterError(
        f"cluster= takes an ipyparallel Client or Cluster, got {type(obj).__name__}; "
        "e.g. cluster=ipyparallel.Client(profile='mpi')"
    )


def _connect(*, profile, cluster_id, url_file) -> Any:
    ipp = _ipp()
    kwargs: dict[str, Any] = {}
    if url_file is not None:
        if not os.path.exists(url_file):
            raise ClusterError(
                f"connection file {url_file!r} does not exist; it is the "
                "ipcontroller-client.json written by the controller (ipcluster start)"
            )
        kwargs["url_file"] = url_file
    if profile is not None:
        kwargs["profile"] = profile
    if cluster_id is not None:
        kwargs["cluster_id"] = cluster_id
    try:
        # the connection file goes first, as connection_info: ipyparallel ignores a url_file= keyword
        file = kwargs.pop("url_file", None)
        return ipp.Client(file, **kwargs, timeout=10) if file else ipp.Client(**kwargs, timeout=10)
    except Exception as exc:
        where = ", ".join(f"{k}={v!r}" for k, v in {"url_file": url_file, **kwargs}.items() if v is not None)
        raise ClusterError(
            f"cannot connect to the ipyparallel cluster ({where}): {exc}. "
            "Start it first, e.g. ipcluster start --daemonize --profile=NAME"
        ) from exc


def _start_local(engines: int | None, *, wait_for: int | None = None) -> None:
    """Start the local cluster; return once ``wait_for`` engines (default: all) registered."""
    ipp = _ipp()
    n = engines if engines is not None else _default_engines()
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ClusterError(f"engines must be a whole number >= 1, got {n!r}")
    cluster = ipp.Cluster(
        n=n,
        controller_ip="127.0.0.1",
        controller_args=list(LOCAL_CONTROLLER_ARGS),
        log_level=logging.WARNING,
    )
    controller_kw, engine_kw = _kernel_watch(cluster)
    try:
        cluster.start_controller_sync(**controller_kw)
        if not cluster.send_engines_connection_env:  # else start_engines waits for the controller itself
            time.sleep(cluster.delay)
        cluster.start_engines_sync(n=n, **engine_kw)
        client = cluster.connect_client_sync()
        client.wait_for_engines(n if wait_for is None else wait_for, timeout=60)
    except Exception as exc:
        try:
            cluster.stop_cluster_sync()
        except Exception:
            pass
        raise ClusterError(f"cannot start a local ipyparallel cluster of {n} engines: {exc}") from exc
    _state.update(client=client, cluster=cluster, owned=True, engines=n)
    _engine_kwargs[id(cluster)] = engine_kw  # replacement engines are watched too
    _keep_engines(client, cluster, n)


def _kernel_watch(cluster: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Launcher keywords that run the controller and the engines under :data:`WATCHED`.

    Only for ipyparallel's local launchers (the default; a profile may choose
    others) and commands of the form ``python -m module ...``; anything else is
    started as configured, without the watch.
    """
    from ipyparallel.cluster import launcher

    if sys.platform.startswith("win"):  # no reparenting to watch for; ipyparallel tree-kills there
        return {}, {}
    where = dict(parent=cluster, log=cluster.log, profile_dir=cluster.profile_dir, cluster_id=cluster.cluster_id)
    controller_kw: dict[str, Any] = {}
    engine_kw: dict[str, Any] = {}
    if cluster.controller_launcher_class is launcher.LocalControllerLauncher:
        cmd = _watched_cmd(launcher.LocalControllerLauncher(**where).controller_cmd)
        if cmd is not None:
            controller_kw["controller_cmd"] = cmd
    if cluster.engine_launcher_class is launcher.LocalEngineSetLauncher:
        cmd = _watched_cmd(launcher.LocalEngineSetLauncher(**where).engine_cmd)
        if cmd is not None:
            engine_kw["engine_cmd"] = cmd
    return controller_kw, engine_kw


def _watched_cmd(cmd: list[str]) -> list[str] | None:
    """``[python, -m, module, *rest]`` run under :data:`WATCHED`, watching this process; None for other commands."""
    if len(cmd) < 3 or cmd[1] != "-m":
        return None
    return [cmd[0], "-c", WATCHED, str(os.getpid()), *cmd[2:]]


# id(cluster) -> what start_engines takes to start engines of the local cluster watched
_engine_kwargs: dict[int, dict[str, Any]] = {}


def _default_engines() -> int:
    from ..config import defaults

    return defaults().engines or os.cpu_count() or 1


def _keep_engines(client: Any, cluster: Any, n: int) -> None:
    """Start a replacement engine when one of the local cluster's engines dies."""

    def on_change(event: dict) -> None:
        if event.get("event") == "unregister" and _state["cluster"] is cluster:
            replace_engines(cluster, client, n)

    client._registration_callbacks.append(on_change)


# id(cluster) -> start times of engines asked for and not registered yet
_pending: dict[int, list[float]] = {}
_watched: set[int] = set()
_PENDING_FOR = 30.0  # an engine that has not registered by then is not coming


def replace_engines(cluster: Any, client: Any, target: int) -> None:
    """Start engines in the background until ``cluster`` has ``target`` again.

    Engines asked for and not registered yet count, so callers asking at once
    do not start too many. Replacement engines need no set-up: overseer_nb
    ships everything a task needs with the task.
    """
    key = id(cluster)
    now = time.monotonic()
    with _lock:
        if key not in _watched:
            _watched.add(key)
            client._registration_callbacks.append(lambda event: _registered(key, event))
        pending = [t for t in _pending.get(key, []) if now - t < _PENDING_FOR]
        missing = target - len(client.ids) - len(pending)
        _pending[key] = pending + [now] * max(0, missing)
    if missing <= 0:
        return

    def start() -> None:
        try:
            cluster.start_engines_sync(n=missing, **_engine_kwargs.get(key, {}))
        except Exception as exc:  # pragma: no cover - best effort
            log.warning("could not start %d replacement engine(s): %s", missing, exc)
            with _lock:
                del _pending[key][:missing]

    threading.Thread(target=start, daemon=True, name="overseer-replace-engines").start()


def _registered(key: int, event: dict) -> None:
    if event.get("event") == "register":
        with _lock:
            if _pending.get(key):
                _pending[key].pop(0)


def engines_starting(cluster: Any) -> bool:
    """True while engines asked for by :func:`replace_engines` have not registered yet."""
    now = time.monotonic()
    with _lock:
        return any(now - t < _PENDING_FOR for t in _pending.get(id(cluster), []))


def is_default_local(cluster: Any) -> bool:
    """True if ``cluster`` is the local cluster overseer_nb started (it replaces its own engines)."""
    return cluster is not None and _state["owned"] and _state["cluster"] is cluster


atexit.register(stop_cluster)
