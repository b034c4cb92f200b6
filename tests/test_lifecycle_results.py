"""A result this kernel cannot unpickle fails for its job only, naming it.

A real second process, with a module this process does not have, journals a
run whose job returns an object of that module; this process loads the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import overseer_nb as ov

ROOT = Path(__file__).resolve().parent.parent

MAKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    import onlyhere
    import overseer_nb as ov

    handlers = {"made": lambda job: onlyhere.Thing(), "plain": lambda job: 42}
    run = ov.run({"made": [], "plain": []}, handlers, executor=ov.ThreadExecutor(1), journal=sys.argv[1]).wait(30)
    assert run.succeeded, run.summary()
    print(run.run_id)
    """
)



def test_a_result_that_cannot_be_unpickled_here_fails_for_its_job_only(tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "onlyhere.py").write_text("class Thing:\n    pass\n")
    path = str(tmp_path / "j.sqlite")
    script = tmp_path / "maker.py"
    script.write_text(MAKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    made = subprocess.run([sys.executable, str(script), path, str(mods)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    run = ov.load_run(made.stdout.strip(), journal=path)
    results = run.results  # not an error as a whole
    assert results["plain"] == 42
    for unloadable in (results["made"], run.jobs["made"].result):
        assert "'made'" in repr(unloadable) and "No module named 'onlyhere'" in repr(unloadable)
