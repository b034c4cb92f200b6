"""The IPython extension, driven as a notebook user types cells, against a real local cluster."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import overseer_nb as ov
from overseer_nb.config import defaults
from overseer_nb.errors import RunError

pytestmark = pytest.mark.cluster

SEED = """\
%%overseer_graph pipeline
# the seed graph of Overseer's guide
start:
result1: start
result2: start
finish: result1, result2
"""


@pytest.fixture
def nb(shell, client):
    """The shell, with runs going to the shared 2-engine test cluster."""
    ov.use_cluster(client)
    return shell


def cell(shell, source: str):
    """Run ``source`` as a cell; fail the test if it raised; return its value."""
    result = shell.run_cell(textwrap.dedent(source), store_history=True)
    if not result.success:
        raise AssertionError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}")
    return result.result


def usage_error(shell, source: str) -> str:
    """Run ``source``; it must end in a short ``UsageError``, whose message is returned."""
    result = shell.run_cell(textwrap.dedent(source), store_history=True)
    error = result.error_in_exec
    assert isinstance(error, UsageError), f"expected a UsageError, got {error!r}"
    message = str(error)
    assert len(message) < 400 and message.count("\n") <= 2, message
    return message


def count(directory, job: str) -> int:
    """How many times the handler of ``job`` ran (each run appends one line to its file)."""
    path = directory / job
    return len(path.read_text().splitlines()) if path.exists() else 0


HANDLERS = """\
%%overseer_handlers pipeline
import os

def _mark(job):
    with open(os.path.join(LOG, job.type), "a") as f:
        f.write(f"{job.attempt}\\n")

def start(job):
    _mark(job)
    return job.args["n"] + OFFSET

def result1(job):
    _mark(job)
    return double(job.inputs["start"])

def result2(job):
    _mark(job)
    return {BROKEN} job.inputs["start"] + 1

def finish(job):
    _mark(job)
    return job.inputs["result1"] + job.inputs["result2"]
"""


def define_pipeline(shell, tmp_path, broken: bool = False) -> None:
    """The seed graph, a notebook global and helper in their own cell, then the handlers."""
    cell(shell, SEED)
    cell(shell, f"LOG = {str(tmp_path)!r}\nOFFSET = 100\n\ndef double(x):\n    return 2 * x\n")
    cell(shell, HANDLERS.replace("{BROKEN}", "1 / 0 if True else" if broken else ""))


def test_seed_graph_handlers_and_run_wait(nb, tmp_path, capsys):
    define_pipeline(nb, tmp_path)
    assert nb.user_ns["pipeline"] == ov.JobGraph(
        {"start": [], "result1": ["start"], "result2": ["start"], "finish": ["result1", "result2"]}
    )
    out = capsys.readouterr().out
    assert "pipeline: bound start, result1, result2, finish; every job type has a handler." in out

    run = cell(nb, """r = %overseer_run pipeline --args {"n": 1} --wait\nr""")
    assert isinstance(run, ov.Run) and run is ov.last_run()
    assert run.args == {"n": 1}
    assert run.results == {"start": 101, "result1": 202, "result2": 102, "finish": 304}
    assert {job: count(tmp_path, job) for job in run.graph} == dict.fromkeys(run.graph, 1)
    assert {run.jobs[j].engine for j in run.graph} <= set(range(2))

    table = cell(nb, "%overseer_status")
    assert "finished" in str(table) and "result2" in str(table)
    assert "<table>" in table._repr_html_()


def test_no_eager_sends_each_job_only_once_its_parents_finished(nb, tmp_path):
    define_pipeline(nb, tmp_path)
    run = cell(nb, '%overseer_run pipeline --args {"n": 1} --no-eager --wait')
    assert run.succeeded and run.options.eager is False and not run.machine.ahead
    assert cell(nb, '%overseer_run pipeline --args {"n": 1} --wait').options.eager is True


def test_fixed_handler_cell_then_retry_reruns_only_the_failed_subtree(nb, tmp_path, capsys):
    define_pipeline(nb, tmp_path, broken=True)
    run = cell(nb, '%overseer_run pipeline --args \'{"n": 1}\' --wait')
    assert run.statuses == {"start": "finished", "result1": "finished", "result2": "failed", "finish": "unstarted"}
    assert "ZeroDivisionError" in str(cell(nb, "%overseer_status"))
    capsys.readouterr()

    cell(nb, "%overseer_retry --dry-run")
    assert "would retry result2, finish (dry run: nothing changed)" in capsys.readouterr().out
    assert run.statuses["result2"] == "failed"

    cell(nb, HANDLERS.replace("{BROKEN}", ""))  # the user fixes result2 and re-runs the cell
    cell(nb, "%overseer_retry")
    assert f"retrying result2, finish in run {run.run_id}" in capsys.readouterr().out
    run.wait(60)
    assert run.results == {"start": 101, "result1": 202, "result2": 102, "finish": 304}
    runs = {job: count(tmp_path, job) for job in run.graph}
    assert runs == {"start": 1, "result1": 1, "result2": 2, "finish": 1}

    cell(nb, "%overseer_retry start --rerun --dry-run")
    assert "would rerun start, result1, result2, finish" in capsys.readouterr().out


def test_bare_run_is_shown_once_and_is_the_cell_value(nb, tmp_path, capsys):
    define_pipeline(nb, tmp_path)
    capsys.readouterr()
    result = nb.run_cell('%overseer_run pipeline --args {"n": 2} --wait', store_history=True)
    run = result.result
    assert isinstance(run, ov.Run) and run.succeeded
    assert capsys.readouterr().out.count(f"Run {run.run_id}") == 1  # as Out[], not displayed again

    cell(nb, 'r2 = %overseer_run pipeline --args {"n": 3}\nr2.wait(60)\nNone')
    run2 = nb.user_ns["r2"]
    assert run2.results["finish"] == 2 * 103 + 104
    assert capsys.readouterr().out.count(f"Run {run2.run_id}") == 1  # displayed by the magic
    assert cell(nb, "%overseer_status r2").title.startswith(f"Run {run2.run_id}")
    assert cell(nb, f"%overseer_status {run.run_id}").title.startswith(f"Run {run.run_id}")


def test_cancel_aborts_a_running_job(nb, tmp_path, capsys):
    cell(nb, "%%overseer_graph slow\nnap:\nafter: nap\n")
    cell(nb, "%%overseer_handlers slow\nimport time\ndef nap(job):\n    time.sleep(30)\nafter = nap\n")
    run = cell(nb, "%overseer_run slow")
    deadline = time.monotonic() + 30
    while run.statuses["nap"] != "started" and time.monotonic() < deadline:
        time.sleep(0.05)
    cell(nb, "%overseer_cancel")
    run.wait(30)
    assert run.statuses == {"nap": "aborted", "after": "aborted"}
    assert f"cancelled: Run {run.run_id}" in capsys.readouterr().out


def test_every_mistake_is_a_short_usage_error_that_changes_nothing(nb, tmp_path):
    define_pipeline(nb, tmp_path)
    good = nb.user_ns["pipeline"]
    before = ov.last_run()

    msg = usage_error(nb, "%%overseer_graph pipeline\nstart:\nfinish start other\n")
    assert "line 3" in msg and "'finish start other'" in msg
    msg = usage_error(nb, "%%overseer_graph pipeline\nstart:\nfinish: start other\n")
    assert "line 3" in msg and "start other" in msg and "finish: start, other" in msg
    msg = usage_error(nb, "%%overseer_graph pipeline\na: b\nb: c\nc: a\n")
    assert "cycle" in msg and "'a' -> " in msg
    msg = usage_error(nb, "%%overseer_graph pipeline\nstart:\nfinish: strat\n")
    assert "'strat'" in msg and "did you mean 'start'" in msg and "line 3" in msg
    msg = usage_error(nb, "%%overseer_graph 2pipe\nstart:\n")
    assert "'2pipe'" in msg
    assert nb.user_ns["pipeline"] is good  # no bad definition replaced it

    msg = usage_error(nb, "%%overseer_handlers pipelin\ndef stray(job):\n    pass\n")
    assert "'pipelin'" in msg and "did you mean 'pipeline'" in msg
    assert "stray" not in nb.user_ns  # the cell did not run
    msg = usage_error(nb, '%%overseer_handlers pipeline\nimport overseer_nb as ov\n@ov.handler("finsh")\ndef f(job):\n    pass\n')
    assert "'finsh'" in msg and "did you mean 'finish'" in msg
    msg = usage_error(nb, "%%overseer_handlers pipeline\ndef finish():\n    pass\n")
    assert "'finish'" in msg and "def finish(job)" in msg
    msg = usage_error(nb, "%%overseer_handlers pipeline\nraise KeyError('oops')\n")
    assert "KeyError" in msg and "no handler was bound" in msg

    msg = usage_error(nb, "%overseer_run pipelin")
    assert "'pipelin'" in msg and "did you mean 'pipeline'" in msg and "%%overseer_graph pipelin" in msg
    msg = usage_error(nb, "%overseer_run pipeline --args {org: 1}")
    assert "not valid JSON" in msg and "{org: 1}" in msg
    msg = usage_error(nb, "%overseer_run pipeline --args [1, 2]")
    assert "JSON object" in msg
    msg = usage_error(nb, "%overseer_run pipeline --bogus 3")
    assert "--bogus" in msg
    msg = usage_error(nb, "%overseer_run pipeline --retries -1")
    assert "retries" in msg and "-1" in msg

    cell(nb, "%%overseer_graph partial\nstart:\nextra-step: start\n")
    cell(nb, "%%overseer_handlers partial\ndef start(job):\n    return 1\n")
    msg = usage_error(nb, "%overseer_run partial")
    assert "'partial'" in msg and "extra-step" in msg and "def extra_step(job)" in msg
    assert ov.last_run() is before  # nothing was started by any of these

    msg = usage_error(nb, "%overseer_status nosuchrun")
    assert "'nosuchrun'" in msg
    msg = usage_error(nb, "%overseer_retry --rerun")
    assert "--rerun needs a JOB" in msg
    msg = usage_error(nb, "%overseer_cluster --stop --engines 3")
    assert "--stop" in msg and "--engines" in msg


def test_retry_mistakes_name_the_job(nb, tmp_path):
    define_pipeline(nb, tmp_path, broken=True)
    run = cell(nb, '%overseer_run pipeline --args {"n": 1} --wait')
    msg = usage_error(nb, "%overseer_retry reslt2")
    assert "'reslt2'" in msg and "did you mean 'result2'" in msg
    msg = usage_error(nb, "%overseer_retry start")
    assert "'start'" in msg and "finished" in msg
    assert run.statuses["result2"] == "failed"


def test_config_changes_a_later_run(nb, tmp_path):
    cell(nb, "%%overseer_graph flaky\nwobble\n")
    cell(nb, f"""\
        %%overseer_handlers flaky
        import overseer_nb as ov
        @ov.handler("wobble")
        def always_faults(job):
            with open({str(tmp_path / "wobble")!r}, "a") as f:
                f.write("x\\n")
            ov.fault("the service is busy")
        """)
    cell(nb, "%config Overseer.fault_backoff = 0.01")
    cell(nb, "%config Overseer.max_faults = 2")
    first = cell(nb, "%overseer_run flaky --wait")
    assert first.statuses == {"wobble": "failed"} and count(tmp_path, "wobble") == 2
    cell(nb, "%config Overseer.max_faults = 3")
    assert defaults().max_faults == 3
    second = cell(nb, "%overseer_run flaky --wait")
    assert second.statuses == {"wobble": "failed"} and count(tmp_path, "wobble") == 2 + 3
    third = cell(nb, "%overseer_run flaky --wait --max-faults 1")
    assert third.statuses == {"wobble": "failed"} and count(tmp_path, "wobble") == 2 + 3 + 1


def test_ipython_config_file_settings_reach_the_configurable():
    from traitlets.config import Config

    ip = InteractiveShell.instance()
    saved = ip.config
    ip.config = Config({"Overseer": {"engines": 3, "max_faults": 7}})
    try:
        ip.run_line_magic("load_ext", "overseer_nb")
        assert (defaults().engines, defaults().max_faults) == (3, 7)
        assert defaults().run_options().max_faults == 7
    finally:
        ip.run_line_magic("unload_ext", "overseer_nb")
        ip.config = saved


def overseer_state(ip):
    mm = ip.magics_manager
    names = {kind: sorted(n for n in table if n.startswith("overseer")) for kind, table in mm.magics.items()}
    mine = [c for c in ip.configurables if type(c).__name__ == "Overseer"]
    return names, mine, [k for k in mm.registry if k == "OverseerMagics"]


def test_load_unload_reload_leave_nothing_behind():
    ip = InteractiveShell.instance()
    ip.run_line_magic("unload_ext", "overseer_nb")
    empty = overseer_state(ip)
    assert empty == ({"line": [], "cell": []}, [], [])
    callbacks = {event: list(cbs) for event, cbs in ip.events.callbacks.items()}

    ip.run_line_magic("load_ext", "overseer_nb")
    loaded = overseer_state(ip)
    assert loaded[0] == {
        "line": ["overseer_cancel", "overseer_cluster", "overseer_diff", "overseer_resume", "overseer_retry",
                 "overseer_run", "overseer_runs", "overseer_status", "overseer_store"],
        "cell": ["overseer_graph", "overseer_handlers"],
    }
    assert len(loaded[1]) == 1 and defaults() is loaded[1][0]

    ip.run_line_magic("config", "Overseer.max_faults = 9")
    assert defaults().max_faults == 9
    for _ in range(2):
        ip.run_line_magic("reload_ext", "overseer_nb")
    reloaded = overseer_state(ip)
    assert reloaded[0] == loaded[0] and len(reloaded[1]) == 1 and len(reloaded[2]) == 1
    assert reloaded[1][0] is not loaded[1][0] and defaults() is reloaded[1][0]
    assert ip.run_line_magic("config", "Overseer.max_faults = 4") is None and defaults().max_faults == 4

    ip.run_line_magic("unload_ext", "overseer_nb")
    assert overseer_state(ip) == empty
    assert defaults() is not reloaded[1][0] and defaults().max_faults == 5
    assert {event: list(cbs) for event, cbs in ip.events.callbacks.items()} == callbacks
    assert ip.run_cell("%overseer_runs").error_in_exec is not None  # really gone


def test_every_magic_has_help_with_an_example(shell):
    for kind in ("line", "cell"):
        for name, fn in shell.magics_manager.magics[kind].items():
            if name.startswith("overseer"):
                assert "Example" in fn.__doc__ and f"%{name}" in fn.__doc__, name


def test_journal_magics_use_the_journal_functions(nb, tmp_path, monkeypatch, capsys):
    import overseer_nb.journal as journal

    monkeypatch.delattr(journal, "runs", raising=False)
    monkeypatch.delattr(journal, "load_run", raising=False)
    assert "journal" in usage_error(nb, "%overseer_runs")
    assert "journal" in usage_error(nb, "%overseer_resume 20260101-000000-abcdef")

    define_pipeline(nb, tmp_path)
    past = cell(nb, '%overseer_run pipeline --args {"n": 5} --wait')
    seen = {}

    class Loaded:
        graph = past.graph

        def resume(self, handlers):
            seen["handlers"] = handlers
            return past

    def load_run(run_id):
        if run_id != past.run_id:
            raise RunError(f"no run {run_id!r} in the journal")  # as the journal's load_run does
        return Loaded()

    monkeypatch.setattr(journal, "runs", lambda: ["a table of runs"], raising=False)
    monkeypatch.setattr(journal, "load_run", load_run, raising=False)
    assert cell(nb, "%overseer_runs") == ["a table of runs"]
    assert cell(nb, f"%overseer_resume {past.run_id}") is past
    assert seen["handlers"] is nb.magics_manager.registry["OverseerMagics"].notebook.handlers["pipeline"]
    assert "nope" in usage_error(nb, "%overseer_resume nope")


def test_cluster_magic_shows_the_cluster_in_use(nb, capsys):
    cell(nb, "%overseer_cluster")
    out = capsys.readouterr().out
    assert "2 engines on a cluster overseer_nb connected to" in out and "controller tcp://127.0.0.1" in out


def test_import_overseer_nb_imports_no_cluster_or_widget_package():
    code = (
        "import sys, overseer_nb\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'ipyparallel', 'zmq', 'ipywidgets', 'anywidget'})\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(not hasattr(ov, "load_run"), reason="no journal in this version")
def test_resume_from_the_journal_uses_the_rebound_handlers(nb, tmp_path, capsys):
    define_pipeline(nb, tmp_path, broken=True)
    run = cell(nb, '%overseer_run pipeline --args {"n": 1} --wait')
    assert run.statuses["result2"] == "failed"
    cell(nb, HANDLERS.replace("{BROKEN}", ""))
    resumed = cell(nb, f"%overseer_resume {run.run_id}")
    resumed.wait(60)
    assert resumed.results["finish"] == 304
    assert {job: count(tmp_path, job) for job in run.graph} == {"start": 1, "result1": 1, "result2": 2, "finish": 1}
    assert cell(nb, "%overseer_status").title.startswith(f"Run {resumed.run_id}")


def test_every_configuration_option_has_help():
    from overseer_nb.config import Overseer

    traits = Overseer.class_traits(config=True)
    assert {"engines", "max_faults", "timeout", "journal", "update_interval"} <= set(traits)
    assert all(len(trait.help) > 10 for trait in traits.values()), [n for n, t in traits.items() if not t.help]


@pytest.mark.cluster
def test_a_mapped_type_in_cells_status_rows_and_an_item_retried_by_name(nb, capsys):
    cell(nb, """%%overseer_graph sweep\ngrid:\ntrain: each grid\nbest: train""")
    assert nb.user_ns["sweep"].each_of("train") == "grid"
    cell(nb, """%%overseer_handlers sweep
BROKEN = {2}

def grid(job):
    return [1, 2, 3, 4]

def train(job):
    if job.index in BROKEN:
        raise ValueError("broken item")
    return job.inputs["grid"] * 10

def best(job):
    return sum(job.inputs["train"])
""")
    run = cell(nb, "%overseer_run sweep --wait")
    assert run.statuses["train"] == "failed"
    table = str(cell(nb, "%overseer_status"))
    assert "3/4 items finished; 1 failed" in table
    assert not any(line.startswith("train[") for line in table.splitlines())  # one row for the mapped type
    assert "blocked by 'train[2]' failed; retry it to go on" in table  # why best waits
    items = str(cell(nb, "%overseer_status --items train"))
    assert "train[2]" in items and "broken item" in items and "train[3]" in items
    assert "not a mapped job type" in usage_error(nb, "%overseer_status --items best")
    cell(nb, "BROKEN = set()")
    capsys.readouterr()
    cell(nb, "%overseer_retry train[2]")
    assert "retrying train[2], best" in capsys.readouterr().out
    run.wait(60)
    assert run.succeeded and run.results["best"] == 100
