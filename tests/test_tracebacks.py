"""Tracebacks rendered as IPython shows them, from the frames an engine reports; handler locations and code digests.

No kernel here: a fake namer names files that are put in ``linecache`` as
IPython puts its cells there. The real kernel and cluster are in
test_tracebacks_notebook.py.
"""

from __future__ import annotations

import linecache
import re

import pytest

import overseer_nb as ov
from overseer_nb.cache import code_digest
from overseer_nb.display.details import CHANGED, handler_info, hover_why, job_details
from overseer_nb.execution import outcome_from_report
from overseer_nb.execution.engine import run_attempt
from overseer_nb.records import ErrorInfo
from overseer_nb.tracebacks import add_namer, location_of, remove_namer, render_error, render_traceback

CELL = "<fake-cell-7>"
CELL_SOURCE = [
    "import pipeline\n",
    "\n",
    "def clean(job):\n",
    "    rows = job.inputs['load']\n",
    "    return [pipeline.parse(r) for r in rows]\n",
    "\n",
    "handlers = {'clean': clean}\n",
]
MODULE = "/fake/site/pipeline.py"
MODULE_SOURCE = ["def parse(row):\n", "    value = row.strip()\n", "    return int(value)\n"]


@pytest.fixture
def cells():
    """linecache holds a fake cell and a fake module; a namer calls the cell In[7]."""
    linecache.cache[CELL] = (0, None, CELL_SOURCE, CELL)
    linecache.cache[MODULE] = (0, None, MODULE_SOURCE, MODULE)  # no mtime: checkcache keeps it

    def namer(filename):
        return "In[7]" if filename == CELL else None

    add_namer(namer)
    yield namer
    remove_namer(namer)
    linecache.cache.pop(CELL, None)
    linecache.cache.pop(MODULE, None)


FRAMES = [
    [CELL, 5, "clean", ""],  # an engine cannot read a cell: no line
    [CELL, 5, "<listcomp>", ""],
    [MODULE, 3, "parse", "return int(value)"],
]
EXPECTED = """\
Traceback (most recent call last)
Cell In[7], line 5, in clean
      3 def clean(job):
      4     rows = job.inputs['load']
----> 5     return [pipeline.parse(r) for r in rows]
      6
      7 handlers = {'clean': clean}

Cell In[7], line 5, in <listcomp>
      3 def clean(job):
      4     rows = job.inputs['load']
----> 5     return [pipeline.parse(r) for r in rows]
      6
      7 handlers = {'clean': clean}

File "/fake/site/pipeline.py", line 3, in parse
      1 def parse(row):
      2     value = row.strip()
----> 3     return int(value)

ValueError: invalid literal for int() with base 10: 'x'
"""


def test_frames_render_as_ipython_shows_them(cells):
    text = render_traceback("ValueError", "invalid literal for int() with base 10: 'x'",
                            [["ValueError", "ignored", "", FRAMES]], linecache.getlines)
    assert text == EXPECTED
    assert "\x1b[" not in text


def test_without_a_namer_a_cell_is_its_file_name(cells):
    remove_namer(cells)
    text = render_traceback("ValueError", "bad", [["ValueError", "bad", "", FRAMES[:1]]], linecache.getlines)
    assert text.splitlines()[1] == f'File "{CELL}", line 5, in clean'
    assert "----> 5     return [pipeline.parse(r) for r in rows]" in text


def test_a_changed_file_shows_only_the_line_that_ran_and_an_unknown_one_its_place(cells):
    moved = [[MODULE, 2, "parse", "return int(row)"], ["/nowhere/gone.py", 12, "f", ""]]
    text = render_traceback("ValueError", "bad", [["ValueError", "bad", "", moved]], linecache.getlines)
    assert 'File "/fake/site/pipeline.py", line 2, in parse\n----> 2 return int(row)\n' in text
    assert "value = row.strip()" not in text  # the kernel's file is not what ran: no neighbours from it
    assert 'File "/nowhere/gone.py", line 12, in f\n\nValueError: bad' in text


def test_chained_exceptions_say_how_they_follow(cells):
    sections = [["KeyError", "'load'", "", FRAMES[:1]], ["RuntimeError", "no input", "cause", FRAMES[2:]]]
    text = render_traceback("RuntimeError", "no input", sections, linecache.getlines)
    first, second = text.split("The above exception was the direct cause of the following exception:")
    assert "Cell In[7], line 5, in clean" in first and first.rstrip().endswith("KeyError: 'load'")
    assert 'File "/fake/site/pipeline.py", line 3' in second and second.rstrip().endswith("RuntimeError: no input")


def test_an_error_without_frames_keeps_its_text():
    plain = ErrorInfo("TimeoutError", "ran too long", "plain text")
    assert render_error(plain, linecache.getlines) is plain
    # an old engine's report has no stack: it reads as before
    report = {"kind": "error", "result": None, "error": {"ename": "E", "evalue": "v", "traceback": "tb"},
              "message": "", "silent": False, "stdout": "", "stderr": "", "started": 1.0, "ended": 2.0}
    error = outcome_from_report(report, 0).error
    assert (error.traceback, error.frames) == ("tb", ())


def parse_number(job):
    return int(job.args["value"])  # the failing line


def fails_with_a_cause(job):
    try:
        parse_number(job)
    except ValueError as exc:
        raise RuntimeError("the value is no number") from exc


def uses_the_package_wrongly(job):
    return ov.handlers.lifecycle("x", 5)  # raises inside overseer_nb


def attempt(fn):
    report = run_attempt(job="j", job_id="r:j", attempt=1, run_id="r", stages=(None, fn, None),
                         args={"value": "x"}, inputs={}, max_result_bytes=None)
    return outcome_from_report(report, "thread").error


def test_the_engine_reports_the_chain_and_leaves_out_its_own_frames():
    error = attempt(fails_with_a_cause)
    (first, second) = error.frames
    assert [first[0], first[2], second[0], second[2]] == ["ValueError", "", "RuntimeError", "cause"]
    assert [f[2] for f in first[3]] == ["fails_with_a_cause", "parse_number"]
    assert first[3][1][3] == 'return int(job.args["value"])  # the failing line'
    assert [f[2] for f in second[3]] == ["fails_with_a_cause"]
    error = attempt(uses_the_package_wrongly)
    (only,) = error.frames
    assert [f[2] for f in only[3]] == ["uses_the_package_wrongly"]  # overseer_nb's frames are left out
    assert "overseer_nb/handlers.py" in error.traceback  # the plain text an older kernel shows is as before


def test_a_run_renders_the_traceback_with_the_source_and_its_marker():
    graph = ov.JobGraph({"a": []})
    run = ov.run(graph, {"a": fails_with_a_cause}, args={"value": "x"}, executor=ov.ThreadExecutor(), journal=False)
    run.wait(30)
    text = run.jobs["a"].error.traceback
    assert f'File "{__file__}", line' in text and ", in parse_number\n" in text
    assert re.search(r'^-*> \d+     return int\(job.args\["value"\]\)  # the failing line$', text, re.M)
    assert "The above exception was the direct cause" in text
    assert text.rstrip().endswith("RuntimeError: the value is no number")
    assert "overseer_nb" not in text and "\x1b[" not in text
    assert run.jobs["a"].error.frames == ()  # rendered once, in the kernel


def test_location_and_a_changed_handler_in_the_panel():
    def first(job):
        raise ValueError("first")

    def second(job):
        raise ValueError("second")

    handlers = {"a": first}
    run = ov.run(ov.JobGraph({"a": []}), handlers, executor=ov.ThreadExecutor(), journal=False)
    run.wait(30)
    info = handler_info(run, "a")
    line = first.__code__.co_firstlineno
    assert info["where"] == {"text": f"handler: module test_tracebacks.py, line {line}", "cell": None,
                             "file": __file__, "line": line}
    assert info["changed"] == "" and job_details(run, "a")["changed"] == ""
    handlers["a"] = second  # what a %%overseer_handlers cell does to a run's handlers
    assert job_details(run, "a")["changed"] == CHANGED
    run.retry()
    run.wait(30)
    assert job_details(run, "a")["changed"] == ""  # the attempt shown ran the new code
    assert hover_why(run, "a") == ""  # failed: no tooltip


def test_location_of_a_cell_and_of_wrapped_functions(cells):
    code = compile("def clean(job):\n    return 1\n", CELL, "exec")
    ns: dict = {}
    exec(code, ns)
    found = location_of(ns["clean"])
    assert (found.text, found.execution_count) == ("cell In[7], line 1", 7)
    import functools

    assert location_of(functools.partial(ns["clean"])).cell == "In[7]"
    assert location_of(len) is None


SCALE = 2


def helper(x):
    return x * SCALE


def uses_helper(job):
    return helper(job)


def test_code_digest_follows_helpers_not_values():
    global SCALE, helper
    before = code_digest((None, uses_helper, None))
    SCALE = 3
    assert code_digest((None, uses_helper, None)) == before  # a value is no code
    old = helper

    def helper(x):  # noqa: F811 - redefined, as in a notebook cell
        return x + SCALE

    try:
        assert code_digest((None, uses_helper, None)) != before
    finally:
        helper = old
    assert code_digest((None, uses_helper, None)) == before


def test_the_widget_answers_why_for_a_waiting_node():
    pytest.importorskip("anywidget")
    from overseer_nb.display.widget import RunWidget

    run = ov.run(ov.JobGraph({"a": [], "b": ["a"]}), {"a": fails_with_a_cause, "b": uses_helper},
                 args={"value": "x"}, executor=ov.ThreadExecutor(), journal=False)
    run.wait(30)
    widget = RunWidget(run)
    sent: list = []
    widget.send = sent.append
    try:
        widget._on_msg(widget, {"kind": "why", "view": "v1", "job": "b"}, [])
        widget._on_msg(widget, {"kind": "why", "view": "v1", "job": "a"}, [])
    finally:
        widget.close()
    assert sent == [{"kind": "why", "view": "v1", "job": "b", "why": "blocked by 'a' failed; retry it to go on"},
                    {"kind": "why", "view": "v1", "job": "a", "why": ""}]
