"""What a person sees: Ray's output in the log files (the stage lines of a whole run are checked on the demo,
tests/test_demo.py; --verbose on the embed job tests/test_embed_resume.py kills), thread pools sized to Ray's
grant, the report header in words, and `clippings status`."""

from __future__ import annotations

import json
import os
import re

import pytest

from clippings.cli import main
from clippings.progress import Poster, Progress, training_progress
from clippings.raylocal import THREAD_VARS, runtime_env, thread_env, threads_for
from clippings.report import header_facts
from clippings.status import planned_stages


def test_thread_pools_follow_the_cpus_ray_grants(ray_local):
    assert [threads_for(c) for c in (0.25, 0.5, 1.0, 1.75, 2.0, 7.75)] == [1, 1, 1, 1, 2, 7]
    assert thread_env(1.75) == dict.fromkeys(THREAD_VARS, "1")

    @ray_local.remote(num_cpus=1, runtime_env=runtime_env(1))
    def pools() -> dict:
        import torch

        from clippings.raylocal import size_thread_pools

        n = size_thread_pools(ray_local.get_runtime_context().get_assigned_resources()["CPU"])
        return {"n": n, "torch": torch.get_num_threads(), "nice": os.nice(0),
                **{v: os.environ.get(v) for v in THREAD_VARS}}

    seen = ray_local.get(pools.remote())
    # niceness 0: Ray's default 15 left a worker ~1/30 of a core beside any ordinary process
    assert seen == {"n": 1, "torch": 1, "nice": os.nice(0), **dict.fromkeys(THREAD_VARS, "1")}


def test_the_raylets_messages_go_to_the_log_file(ray_local, capsys, caplog):
    """Ray's error listener prints the raylet's messages (a worker that crashed inside Ray and was retried)
    with a direct call, past the worker-output hook: they belong in the log file, not the console."""
    import ray._private.worker as ray_worker

    from clippings.logs import DETAIL

    line = "A worker died or was killed while executing a task by an unexpected system error."
    with caplog.at_level("INFO", logger=DETAIL):
        ray_worker.print_to_stdstream({"lines": [line], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    out = capsys.readouterr()
    assert line not in out.out + out.err
    assert f"(raylet pid=raylet) {line}" in caplog.text


def test_rays_private_output_hooks_are_where_raylocal_expects_them():
    """raylocal replaces two private Ray names; a Ray release that moves them must fail here, by name."""
    from clippings.raylocal import ray_output_hooks

    ray_worker, dispatcher = ray_output_hooks()
    assert callable(ray_worker.print_to_stdstream), "ray._private.worker.print_to_stdstream is gone"
    assert callable(dispatcher.add_handler) and callable(dispatcher.remove_handler), (
        "ray._private.ray_logging.global_worker_stdstream_dispatcher lost add_handler/remove_handler")


def test_a_moved_private_hook_is_one_clear_error(monkeypatch):
    import ray._private.worker as ray_worker

    from clippings.raylocal import ray_output_hooks

    monkeypatch.delattr(ray_worker, "print_to_stdstream")
    with pytest.raises(RuntimeError, match=r"print_to_stdstream is gone.*ray==2\.60\.0.*CLIPPINGS_VERBOSE=1"):
        ray_output_hooks()


def test_fits_share_one_progress_board_and_keep_their_events_apart(ray_local, caplog):
    """Every fit of a driver posts to one Board actor (no process per fit), each on its own channel."""
    with caplog.at_level("INFO", logger="clippings.progress"):
        with training_progress("first") as first, training_progress("second") as second:
            assert first.board._actor_id == second.board._actor_id and first.name != second.name
            Poster(first).note("a note of the first fit")
            Poster(second).note("a note of the second fit")
            Poster(None).note("a rank that does not speak")
    notes = [r.getMessage() for r in caplog.records if r.name == "clippings.progress"]
    assert notes == ["a note of the second fit", "a note of the first fit"]


def test_plain_progress_line_has_rate_and_eta(monkeypatch, capsys):
    monkeypatch.setattr("clippings.progress.PLAIN_EVERY_S", 0.0)
    with Progress("embed", total=1000, unit="row") as bar:  # stderr is captured: not a terminal
        bar.update(100)  # the clock starts at the first progress: no rate yet
        bar.set(300, status="part 2 of 5")
    first, second = capsys.readouterr().err.splitlines()
    assert first == "embed: 100/1000 rows (10%)"
    assert re.fullmatch(r"embed: 300/1000 rows \(30%\), [0-9.]+ rows/s, ETA \d+:\d\d, part 2 of 5", second)


def test_report_header_speaks_plainly():
    info = {"threshold": 0.219634871, "exact_up_to": 0.2204118, "im_wt": 0.5, "model_name": "tiny-clip"}
    facts = header_facts(info, 1234, 900, 210, 50, made_by="Supervised multimodal (model models/sm)")
    assert facts["Made by"] == "Supervised multimodal (model models/sm)"
    assert facts["Clippings"] == "1,234 in 900 groups; 210 groups hold reprints (the 50 largest are shown)"
    assert "cosine distance of their image-and-caption embeddings is ≤ 0.2196; exact up to 0.2204" \
        in facts["Linked when"]
    assert facts["Image weight"] == "0.50 (0 = caption only, 1 = image only)"
    assert header_facts({**info, "exact_up_to": 2.0}, 1, 1, 0, 0)["Made by"] == "model tiny-clip"
    jaccard = header_facts({"method": "jaccard", "n": 2, "overlap": 0.31250001}, 10, 8, 2, 2)
    assert "word 2-grams overlap by a Jaccard similarity ≥ 0.3125" in jaccard["Linked when"]


def test_status_lists_done_next_and_left(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "no stages.json" in capsys.readouterr().err
    plan = [stage.name for stage in planned_stages(str(tmp_path), built_in=True, demo=True)]
    record = {name: {"seconds": 2.0, "argv": []} for name in plan[:3]}
    (tmp_path / "stages.json").write_text(json.dumps(record))
    (tmp_path / "demo.log").write_text("")
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f": demo, 3 of {len(plan)} stages finished (6.0 s of stage time)")
    assert [line.split()[1] for line in out[1:4]] == plan[:3] and out[1].startswith("  done  synth")
    assert out[4].startswith(f"  next  {plan[3]} ")
    assert out[5].startswith(f"  left  {plan[4]}, ") and out[5].endswith(f"the last {plan[-1]}")
    assert "Resume: clippings demo --out" in out[6]
    (tmp_path / "stages.json").write_text(json.dumps({n: {"seconds": 1.0, "argv": []} for n in plan}))
    assert main(["status", str(tmp_path)]) == 0
    assert "all stages finished; open report/index.html" in capsys.readouterr().out
