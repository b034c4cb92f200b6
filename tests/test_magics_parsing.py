"""What the magics build on, without IPython or a cluster: graph cell text and handler binding."""

from __future__ import annotations

import pytest

import overseer_nb as ov
from overseer_nb.errors import CycleError, GraphError, InvalidHandlerError, UnknownParentError
from overseer_nb.notebook.binding import bind_handlers, defined_names, python_name
from overseer_nb.notebook.cells import graph_from_cell, parse_graph_text

SEED = {"start": [], "result1": ["start"], "result2": ["start"], "finish": ["result1", "result2"]}


def test_line_syntax_roots_comments_blank_lines_and_names_with_dashes_and_dots():
    text = """
    # Overseer's seed graph
    start:
    result1: start      # one parent
    result2: start,
    finish: result1, result2

    process-1a
    load.users: process-1a, finish
    """
    graph = parse_graph_text(text)
    assert graph.to_dict() == {**SEED, "process-1a": [], "load.users": ["process-1a", "finish"]}


@pytest.mark.parametrize(
    "body, words",
    [
        ("start:\nfinish: start result1", ["line 3", "'start result1'", "finish: start, result1"]),
        ("start:\nfinish: start,,x", ["line 3", "empty parent"]),
        ("start:\nfin ish: start", ["line 3", "'fin ish'"]),
        ("start:\nstart: x", ["line 3", "already declared on line 2"]),
        ("# nothing but a comment\n", ["empty"]),
        ('{"start": [],\n "finish": ["start"]', ["line 2", "not valid Python", "never closed"]),
        ('{"start": [],\n "finish": ["start"] "x": []}', ["line 3", "not valid Python"]),
    ],
)
def test_syntax_errors_name_the_line_and_the_text(body, words):
    with pytest.raises(GraphError) as info:
        graph_from_cell(body, {}, first_line=2)
    for word in words:
        assert word in str(info.value)


def test_graph_errors_keep_their_class_and_gain_the_line():
    with pytest.raises(UnknownParentError, match=r"line 3: .*'strat'.*did you mean 'start'"):
        parse_graph_text("start:\nfinish: strat", first_line=2)
    with pytest.raises(CycleError) as info:
        parse_graph_text("a: c\nb: a\nc: b")
    assert info.value.cycle[0] == info.value.cycle[-1]


def test_a_python_expression_is_evaluated_in_the_namespace():
    ns = {"roots": ["start"], "seed": dict(SEED), "other": ov.JobGraph({"x": []})}
    assert graph_from_cell('{"start": [], "finish": roots}', ns).to_dict() == {"start": [], "finish": ["start"]}
    assert graph_from_cell("\n  seed\n", ns).to_dict() == SEED
    assert graph_from_cell("other", ns) is ns["other"]
    assert graph_from_cell("start", ns).to_dict() == {"start": []}  # not a dict in ns: a job
    with pytest.raises(GraphError, match="NameError"):
        graph_from_cell('{"a": missing}', ns)
    with pytest.raises(GraphError, match="is a list, not a job graph"):
        graph_from_cell("[1, 2]", ns)


def test_names_a_cell_defines_at_its_top_level():
    source = """
import os, json as j
from math import sqrt
def start(job):
    inner = 1
class Helper: pass
result1 = {"process": start}
a, (b, c) = 1, (2, 3)
if True:
    def finish(job): pass
"""
    assert defined_names(source) == ["os", "j", "sqrt", "start", "Helper", "result1", "a", "b", "c", "finish"]
    assert defined_names("def broken(:") == []
    assert python_name("process-1a.v2") == "process_1a_v2"


def _start(job):
    return 1


def test_binding_by_name_by_mark_and_lifecycle_dict_into_the_same_dict():
    graph = ov.JobGraph({"start": [], "process-1a": ["start"], "finish": ["process-1a"]})

    def process_1a(job):
        return 2

    @ov.handler("finish")
    def wrap_up(job):
        return 3

    handlers: dict = {}
    binding = bind_handlers(graph, {"start": {"process": _start}, "process_1a": process_1a,
                                    "wrap_up": wrap_up, "note": "not a handler"}, handlers,
                            graph_name="etl")
    assert handlers == {"start": {"process": _start}, "process-1a": process_1a, "finish": wrap_up}
    assert str(binding) == "etl: bound start, process-1a (process_1a), finish (wrap_up); every job type has a handler."

    same = handlers
    bind_handlers(graph, {"start": _start}, handlers)
    assert handlers is same and handlers["start"] is _start


def test_binding_says_what_is_missing_and_checks_everything_first():
    graph = ov.JobGraph(SEED)
    handlers = {"start": _start}
    assert str(bind_handlers(graph, {}, handlers, graph_name="p")).endswith(
        "no handler yet for result1, result2, finish."
    )

    def result1():  # wrong signature
        pass

    with pytest.raises(InvalidHandlerError, match="result1"):
        bind_handlers(graph, {"result2": _start, "result1": result1}, handlers)
    assert handlers == {"start": _start}  # nothing bound

    @ov.handler("result1")
    def other(job):
        pass

    def result1(job):  # noqa: F811 - bound twice on purpose
        pass

    with pytest.raises(InvalidHandlerError, match="bound twice"):
        bind_handlers(graph, {"result1": result1, "other": other}, handlers)

    twins = ov.JobGraph({"a-b": [], "a.b": []})
    with pytest.raises(GraphError, match="'a-b', 'a.b'"):
        bind_handlers(twins, {"a_b": _start}, {})
