"""JobGraph validation and queries: no cluster, no I/O."""

import pytest

import overseer_nb as ov
from overseer_nb.errors import (
    CycleError,
    GraphError,
    JobNameError,
    ParentsError,
    SelfDependencyError,
    UnknownParentError,
)

SEED = {"start": [], "result1": ["start"], "result2": ["start"], "finish": ["result1", "result2"]}


def test_seed_graph_relations():
    g = ov.JobGraph(SEED)
    assert g.job_types == ("start", "result1", "result2", "finish")
    assert g.roots() == ("start",)
    assert g.children("start") == ("result1", "result2")
    assert g.descendants("start") == {"result1", "result2", "finish"}
    assert g.ancestors("finish") == {"start", "result1", "result2"}
    order = g.topological_order()
    assert order.index("start") < order.index("result1") < order.index("finish")
    assert g.depth("finish") == 2
    assert ov.JobGraph(g) == g


def test_cycle_message_shows_the_path():
    with pytest.raises(CycleError) as info:
        ov.JobGraph({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    # each job in the path lists the next as a parent
    for job, parent in zip(cycle, cycle[1:], strict=False):
        assert parent in {"a": ["c"], "b": ["a"], "c": ["b"]}[job]
    assert "'a' -> 'c' -> 'b' -> 'a'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_parent_suggests_the_closest_name():
    with pytest.raises(UnknownParentError) as info:
        ov.JobGraph({"start": [], "finish": ["strat"]})
    msg = str(info.value)
    assert "'strat'" in msg and "did you mean 'start'" in msg and "'finish'" in msg


def test_self_dependency():
    with pytest.raises(SelfDependencyError, match="'loop' lists itself"):
        ov.JobGraph({"loop": ["loop"]})


@pytest.mark.parametrize("bad", ["", "   ", 3, None])
def test_bad_job_names(bad):
    with pytest.raises(JobNameError):
        ov.JobGraph({bad: []})
    with pytest.raises(JobNameError, match="parents of 'x'"):
        ov.JobGraph({"x": [bad]})


@pytest.mark.parametrize("parents", ["start", None, 3, {"start": 1}])
def test_parents_must_be_a_list(parents):
    with pytest.raises(ParentsError) as info:
        ov.JobGraph({"start": [], "x": parents})
    assert "'x'" in str(info.value)
    if parents == "start":
        assert "['start']" in str(info.value)


def test_graph_must_be_a_mapping():
    with pytest.raises(GraphError, match="dict of job type"):
        ov.JobGraph([("a", [])])


def test_empty_graph_and_names_with_dashes():
    assert len(ov.JobGraph({})) == 0
    g = ov.JobGraph({"process-1a": [], "report.v2": ["process-1a"]})
    assert g.parents("report.v2") == ("process-1a",)


def test_unknown_job_query_names_it():
    g = ov.JobGraph(SEED)
    with pytest.raises(ov.UnknownJobError, match="did you mean 'finish'"):
        g.parents("finsh")


def test_large_graph_validates_fast():
    import time

    n = 10_000
    mapping = {f"j{i}": ([f"j{i - 1}", f"j{i // 2}"] if i else []) for i in range(n)}
    t = time.perf_counter()
    g = ov.JobGraph(mapping)
    assert time.perf_counter() - t < 1.0
    assert len(g.topological_order()) == n
