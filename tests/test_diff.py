"""Comparing two runs (ov.diff, %overseer_diff) and the frozen picture of a run (run.snapshot())."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import rows

import overseer_nb as ov
from overseer_nb.errors import RunError
from overseer_nb.journal.recorder import forget_live_runs

ROOT = Path(__file__).resolve().parent.parent

V1 = {"fetch": [], "clean": ["fetch"], "report": ["clean"]}
V2 = {"fetch": [], "clean": ["fetch"], "report": ["clean"], "chart": ["clean"]}  # chart added


def fetch(job):
    return list(range(job.args["n"]))


def clean(job):
    return [x * 2 for x in job.inputs["fetch"]]


def clean_v2(job):
    rows = job.inputs["fetch"]
    if len(rows) > 4:
        raise ValueError(f"too many rows: {len(rows)}")
    return [x * 3 for x in rows]


def report(job):
    return sum(job.inputs["clean"])


def chart(job):
    return "#" * len(job.inputs["clean"])


def two_runs(journal=":memory:"):
    """A run of V1, then one of V2: chart added, clean changed (and failing), args changed."""
    first = ov.run(V1, {"fetch": fetch, "clean": clean, "report": report}, args={"n": 3},
                   executor=ov.ThreadExecutor(2), journal=journal).wait(20)
    second = ov.run(V2, {"fetch": fetch, "clean": clean_v2, "report": report, "chart": chart},
                    args={"n": 5, "note": "wide"}, executor=ov.ThreadExecutor(2), journal=journal).wait(20)
    return first, second


def check_two_runs(d):
    assert d.args == (("n", "3", "5"), ("note", "—", "'wide'"))
    assert d.only_in_b == ("chart",) and d.only_in_a == ()
    assert d.changed_code == {"clean"} and d.unknown_code == set()
    assert d.code["fetch"].status == d.code["report"].status == "same"
    assert "+    if len(rows) > 4:" in d.code["clean"].diff and "-def clean(job):" in d.code["clean"].diff
    row = d.job("clean")
    assert (row.a.state, row.b.state) == ("finished", "failed")
    assert row.a.result == "[0, 2, 4]" and row.b.result == "ValueError: too many rows: 5"
    assert (row.a.attempts, row.b.attempts) == (1, 1) and row.changed
    assert d.job("report").b.state == "blocked" and d.job("report").b.attempts == 0
    assert d.job("chart").a is None and d.job("chart").b.state == "blocked"
    assert d.job("fetch").a.result == "[0, 1, 2]" and d.job("fetch").b.result == "[0, 1, 2, 3, 4]"
    assert d.changed_jobs == {"fetch", "clean", "report", "chart"}
    text = str(d)
    for words in ("args: n: 3 -> 5; note: — -> 'wide'", "graph: only in B: chart", "code: changed: clean",
                  "only in B (not in A's graph)", "+++ clean (B)", "ValueError: too many rows"):
        assert words in text, (words, text)
    page = d._repr_html_()
    assert page.startswith('<div class="overseer-diff">') and "<th>duration A</th>" in page
    assert "<pre>--- clean (A)" in page and "&#x27;wide&#x27;" in page


def test_diff_of_two_thread_runs_of_a_changed_graph():
    first, second = two_runs()
    check_two_runs(ov.diff(first, second))
    same = ov.diff(first, first)
    assert same.args == () and same.changed_code == set() and same.changed_jobs == set()
    assert "args: the same" in str(same) and "code: the same" in str(same)


def test_diff_of_runs_loaded_back_from_the_journal_by_id(tmp_path):
    path = str(tmp_path / "j.sqlite")
    first, second = two_runs(path)
    code = dict((job, digest) for job, digest in rows(path, "SELECT job, digest FROM code WHERE run_id = ?",
                                                       (first.run_id,)))
    assert set(code) == {"fetch", "clean", "report"} and all(code.values())
    forget_live_runs()  # as in a new kernel: the runs come from the journal, without handlers
    d = ov.diff(first.run_id, second.run_id[:-2], journal=path)  # a unique prefix works too
    check_two_runs(d)
    assert (d.a, d.b) == (first.run_id, second.run_id)
    # from a second Python process, which never saw the handlers
    script = textwrap.dedent(f"""
        import overseer_nb as ov
        d = ov.diff({first.run_id!r}, {second.run_id!r}, journal={path!r})
        print(sorted(d.changed_code), d.only_in_b, d.job("clean").b.state)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['clean'] ('chart',) failed"


def test_a_retry_with_a_fixed_handler_records_the_code_it_ran(tmp_path):
    path = str(tmp_path / "j.sqlite")
    handlers = {"fetch": fetch, "clean": clean_v2, "report": report}
    run = ov.run(V1, handlers, args={"n": 6}, executor=ov.ThreadExecutor(1), journal=path).wait(20)
    assert run.statuses["clean"] == "failed"
    before = rows(path, "SELECT digest, source FROM code WHERE run_id = ? AND job = 'clean'", (run.run_id,))
    handlers["clean"] = clean  # fixed, then retried: the journal keeps the code the retry ran
    run.retry()
    run.wait(20)
    after = rows(path, "SELECT digest, source FROM code WHERE run_id = ? AND job = 'clean'", (run.run_id,))
    assert "def clean_v2" in before[0][1] and "def clean(job)" in after[0][1] and before[0][0] != after[0][0]


def test_code_unknown_is_said_not_guessed(tmp_path):
    path = str(tmp_path / "j.sqlite")
    first, second = two_runs(path)
    conn = sqlite3.connect(path)
    with conn:  # as a run recorded before the journal kept code
        conn.execute("DELETE FROM code WHERE run_id = ?", (first.run_id,))
    conn.close()
    forget_live_runs()
    d = ov.diff(first.run_id, second.run_id, journal=path)
    assert d.unknown_code == {"fetch", "clean", "report"} and d.changed_code == set()
    assert d.job("clean").code == "code unknown"
    assert "code: code unknown: fetch, clean, report" in str(d)
    assert "no handler code was recorded for it in run A" in d.code["clean"].why


def test_mapped_types_are_one_row_counting_their_items():
    graph = {"grid": [], "train": [ov.each("grid")], "best": ["train"]}

    def train(job):
        if job.args["bad"] and job.inputs["grid"] == job.args["bad"]:
            raise ValueError("diverged")
        return job.inputs["grid"] * 10

    handlers = {"grid": lambda job: list(range(job.args["n"])), "train": train, "best": lambda job: max(job.inputs["train"])}
    a = ov.run(graph, handlers, args={"n": 4, "bad": None}, executor=ov.ThreadExecutor(2)).wait(20)
    b = ov.run(graph, handlers, args={"n": 5, "bad": 2}, executor=ov.ThreadExecutor(2)).wait(20)
    d = ov.diff(a, b)
    row = d.job("train")
    assert [r.job for r in d.jobs] == ["grid", "train", "best"]  # items are not rows of their own
    assert row.a.state == "finished (4 finished)" and row.b.state == "failed (1 failed, 4 finished)"
    assert row.a.result == "4 items" and (row.a.attempts, row.b.attempts) == (4, 5)
    assert row.note == "4 -> 5 items; 1 item differ: train[2]: finished -> failed"
    assert row.a.duration is not None and "train[2]: finished -> failed" in str(d)


def test_bad_input_names_the_problem_and_the_fix(tmp_path):
    path = str(tmp_path / "j.sqlite")
    first, _second = two_runs(path)
    with pytest.raises(RunError, match=r"no run 'nope' in the journal; the newest are .*ov.runs\(\) lists them"):
        ov.diff(first, "nope", journal=path)
    with pytest.raises(RunError, match=r"run B of ov.diff is int 42, not a run; give a Run .*a run id"):
        ov.diff(first, 42)


# -- the magic ------------------------------------------------------------------------------
def usage_error(shell, source: str) -> str:
    from IPython.core.error import UsageError

    result = shell.run_cell(source, store_history=False)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    message = str(result.error_in_exec)
    assert len(message) < 400 and "\n" not in message, message
    return message


def test_magic_compares_runs_named_by_variables_and_by_ids(shell):
    first, second = two_runs()
    shell.user_ns.update(first=first, second=second, second_id=second.run_id)
    by_name = shell.run_cell("%overseer_diff first second").result
    check_two_runs(by_name)
    by_id = shell.run_cell(f"%overseer_diff {first.run_id} second_id").result
    assert (by_id.a, by_id.b) == (first.run_id, second.run_id) and by_id.changed_code == {"clean"}
    against_last = shell.run_cell("%overseer_diff first").result  # B: the last run
    assert against_last.b == second.run_id
    formatted, _ = shell.display_formatter.format(by_name)
    assert formatted["text/html"].startswith('<div class="overseer-diff">')
    assert "graph: only in B: chart" in formatted["text/plain"]  # what a terminal prints


def test_magic_bad_input_is_a_short_usage_error(shell):
    first, _second = two_runs()
    shell.user_ns.update(first=first, count=3)
    message = usage_error(shell, "%overseer_diff first count")
    assert "'count' is a variable holding int, not a run" in message and "%overseer_runs lists them" in message
    message = usage_error(shell, "%overseer_diff first 20990101-000000-abcdef")
    assert "no run '20990101-000000-abcdef' in the journal" in message and "ov.runs() lists them" in message
    message = usage_error(shell, "%overseer_diff")
    assert "give them, e.g. %overseer_diff first second" in message and "--help" in message


def test_magic_help_explains_it(shell, capsys):
    assert shell.run_cell("%overseer_diff --help").result is None
    shown = capsys.readouterr().out
    assert shown == shell.find_line_magic("overseer_diff").__doc__ + "\n"  # also what %overseer_diff? shows
    for words in ("%overseer_diff [-h] [A] [B]", "Compare two runs", "code unknown", "mapped type", "Example",
                  "%overseer_diff first second", "the second run, as A (default: the last run)"):
        assert words in shown, words


# -- the snapshot ---------------------------------------------------------------------------
def test_a_snapshot_stays_as_it_was_while_the_widget_follows_the_retry():
    from overseer_nb.display.widget import RunWidget

    handlers = {"fetch": fetch, "clean": clean_v2, "report": report}
    run = ov.Run(ov.JobGraph(V1), handlers, ov.ThreadExecutor(1), args={"n": 6})
    widget = RunWidget(run, interval=0.02)
    run._widget = widget
    run.start().wait(20)
    deadline = threading.Event()
    while widget.states.get("clean") != "failed" and not deadline.wait(0.02):
        pass
    picture = run.snapshot()
    svg = picture._repr_mimebundle_()["image/svg+xml"]
    assert 'data-job="clean"' in svg and svg.count('data-state="failed"') == 1
    assert f"overseer-snapshot-{run.run_id}" in svg and f"overseer-static-{run.run_id}" not in svg  # a live view keeps it
    assert "1/3 finished" in svg and picture.states == {"fetch": "finished", "clean": "failed", "report": "blocked"}
    assert "snapshot at" in repr(picture)

    handlers["clean"] = clean
    run.retry()
    run.wait(20)
    while widget.states.get("report") != "finished" and not deadline.wait(0.02):
        pass
    assert widget.states == {"fetch": "finished", "clean": "finished", "report": "finished"}
    assert picture._repr_mimebundle_()["image/svg+xml"] == svg  # byte for byte
    assert picture.states["clean"] == "failed"
    later = run.snapshot()._repr_mimebundle_()["image/svg+xml"]
    assert later != svg and later.count('data-state="finished"') == 3


def test_snapshot_shows_itself_as_svg_in_a_notebook(shell):
    run = ov.run(V1, {"fetch": fetch, "clean": clean, "report": report}, args={"n": 2},
                 executor=ov.ThreadExecutor(1)).wait(20)
    shell.user_ns["run"] = run
    formatted, _ = shell.display_formatter.format(shell.run_cell("run.snapshot()").result)
    assert formatted["image/svg+xml"].startswith("<svg") and formatted["text/plain"].startswith("snapshot at")


def test_runs_without_a_journal_compare_their_handlers_as_they_are_now():
    first = ov.run(V1, {"fetch": fetch, "clean": clean, "report": report}, args={"n": 3},
                   executor=ov.ThreadExecutor(1), journal=False).wait(20)
    second = ov.run(V1, {"fetch": fetch, "clean": clean_v2, "report": report}, args={"n": 3},
                    executor=ov.ThreadExecutor(1), journal=False).wait(20)
    d = ov.diff(first, second)
    assert d.changed_code == {"clean"}
    assert "(A: not in a journal, compared by its handlers as they are now)" in str(d)
