"""Handlers: lifecycle normalisation, harness, validation. No cluster."""

import pytest
from conftest import spy_executor

import overseer_nb as ov
from overseer_nb.errors import HandlerOptionError, OptionError, UnknownHandlerError
from overseer_nb.handlers import current_handler, lifecycle

G = ov.JobGraph({"a": [], "b": ["a"]})


def test_missing_handlers_are_all_named():
    with pytest.raises(ov.MissingHandlerError) as info:
        ov.validate_graph_handlers(G, {})
    assert info.value.missing == ["a", "b"]
    assert "'a', 'b'" in str(info.value)


def test_non_callable_handler_is_named():
    with pytest.raises(ov.InvalidHandlerError, match="handler of 'b' is a int"):
        ov.validate_graph_handlers(G, {"a": print, "b": 3})


def test_lifecycle_needs_process_and_known_keys():
    with pytest.raises(ov.InvalidHandlerError, match="no 'process' stage"):
        lifecycle("a", {"pre_process": lambda job: job})
    with pytest.raises(ov.InvalidHandlerError, match="unknown key.*'proces'"):
        lifecycle("a", {"proces": lambda job: 1})


def test_wrong_signature_is_refused_with_the_fix():
    def a(job, extra):
        return 1

    with pytest.raises(ov.InvalidHandlerError, match=r"def a\(job\)"):
        lifecycle("a", a)
    with pytest.raises(ov.InvalidHandlerError, match=r"post_process.*\(job, result\)"):
        lifecycle("a", {"process": lambda job: 1, "post_process": lambda job: 1})


def test_harness_wraps_a_stage_and_fills_identity():
    calls = []

    def wrapper(f):
        def wrapped(job, result):
            calls.append(result)
            return f(job, result) * 10

        return wrapped

    h = ov.harness(lambda job: 4, wrapper, stage="post_process")
    assert h["post_process"]("job", 4) == 40 and calls == [4]
    assert h["pre_process"]("job") == "job"
    with pytest.raises(ValueError, match="stage must be one of"):
        ov.harness(lambda job: 1, wrapper, stage="later")


def test_handler_decorator_carries_options():
    @ov.handler("process-1a", retries=2, timeout=5)
    def process_1a(job):
        return 1

    life = lifecycle("process-1a", process_1a)
    assert life.options == {"retries": 2, "timeout": 5}
    with pytest.raises(TypeError, match="unknown handler option"):
        ov.handler("x", retry=1)


def test_options_reject_bad_values():
    with pytest.raises(ValueError, match="max_faults must be a whole number >= 1"):
        ov.run(G, {"a": print, "b": print}, max_faults=0, executor=ov.ThreadExecutor())
    with pytest.raises(TypeError, match="unknown run option.*retires"):
        ov.run(G, {"a": print, "b": print}, retires=1, executor=ov.ThreadExecutor())
    with pytest.raises(ov.ArgsError, match="args must be a dict"):
        ov.run(G, {"a": print, "b": print}, args=[1], executor=ov.ThreadExecutor())


def test_unpicklable_args_name_the_key():
    import threading

    with pytest.raises(ov.ArgsError, match="'lock'"):
        ov.run(G, {"a": print, "b": print}, args={"n": 1, "lock": threading.Lock()}, executor=ov.ThreadExecutor())


def test_current_handler_follows_redefinition_in_main():
    ns = {"__name__": "__main__"}
    exec("def step(job):\n    return 1\n", ns)
    old = ns["step"]
    exec("def step(job):\n    return 2\n", ns)
    assert current_handler(old) is ns["step"]
    assert current_handler(len) is len


def test_shipper_pickles_each_set_of_stages_once_until_told_to_forget():
    import threading

    from overseer_nb.execution import Shipper

    def step(job):
        return 1

    shipper = Shipper()
    first = shipper.pickle("a", (None, step, None))
    assert shipper.pickle("b", (None, step, None)) is first  # same functions: the same pickle
    shipper.forget()
    assert shipper.pickle("a", (None, step, None)) is not first
    lock = threading.Lock()
    with pytest.raises(ov.HandlerError, match="handler of 'locked' cannot be sent to the engines"):
        shipper.pickle("locked", (None, lambda job: lock, None))


# -- caught before anything runs ------------------------------------------------------------
def refused(handlers, error=ov.HandlerError):
    """The message ov.run refuses ``handlers`` of G with, checking that nothing was submitted."""
    spy = spy_executor()
    with pytest.raises(error) as info:
        ov.run(G, handlers, executor=spy, journal=False)
    assert spy.submitted == []
    with pytest.raises(error):
        ov.validate_graph_handlers(G, handlers)
    return str(info.value)


def test_async_and_generator_handlers_are_refused_naming_the_job_type():
    async def fetch(job):
        return 1

    async def feed(job):
        yield 1

    def rows(job):
        yield 1

    class Client:
        async def __call__(self, job):
            return 1

    assert "handler of 'b' (fetch) is an async def function" in refused({"a": print, "b": fetch})
    assert "asyncio.run" in refused({"a": print, "b": fetch})
    assert "handler of 'b' (feed) is an async generator function" in refused({"a": print, "b": feed})
    assert "handler of 'b' (rows) is a generator function (it uses yield)" in refused({"a": print, "b": rows})
    assert "handler of 'a' (Client) is an async def function" in refused({"a": Client(), "b": print})
    message = refused({"a": print, "b": {"process": print, "post_process": fetch}})
    assert "stage 'post_process' of the handler of 'b' (fetch) is an async def function" in message


def test_a_class_is_refused_as_a_handler_or_a_stage():
    class Step:
        def __init__(self, job):
            self.job = job

        def run(self, job):
            return 1

    assert "handler of 'a' is the class Step: calling it would make a Step object" in refused({"a": Step, "b": print})
    assert "stage 'process' of the handler of 'a' is the class Step" in refused({"a": {"process": Step}, "b": print})
    ov.validate_graph_handlers(G, {"a": Step(None).run, "b": print})  # a method is fine


def test_handler_options_are_checked_by_the_run_options_rules():
    @ov.handler("a", timeout=-5)
    def a(job):
        return 1

    message = refused({"a": a, "b": print}, HandlerOptionError)
    assert message == ("the handler of 'a' has a bad option: timeout must be a number of seconds > 0 "
                       "(or None for no limit), got -5")
    message = refused({"a": print, "b": {"process": print, "retries": "3"}}, HandlerOptionError)
    assert message == "the handler of 'b' has a bad option: retries must be a whole number >= 0, got '3'"
    with pytest.raises(OptionError):  # an option error too, as the run's own options
        ov.validate_graph_handlers(G, {"a": print, "b": {"process": print, "max_faults": 0}})
    assert lifecycle("a", {"process": print, "timeout": 2.5, "retries": 1}).options == {"timeout": 2.5, "retries": 1}


def test_a_handler_key_that_is_not_in_the_graph_gets_did_you_mean():
    graph = ov.JobGraph({"start": [], "result-1": ["start"], "result-2": ["start"]})
    with pytest.raises(UnknownHandlerError) as info:
        ov.validate_graph_handlers(graph, {"start": print, "result_1": print, "result-2": print})
    assert str(info.value) == (
        "handler key 'result_1' (did you mean 'result-1'?) is not a job type of the graph; its job types: "
        "'start', 'result-1', 'result-2'; 'result-1' has no handler. Key each handler by its job type"
    )
    with pytest.raises(ov.HandlerError, match=r"handler keys 'strat' \(did you mean 'start'\?\), 'zzz' are not"):
        ov.validate_graph_handlers(graph, {"start": print, "strat": print, "zzz": print,
                                           "result-1": print, "result-2": print})
