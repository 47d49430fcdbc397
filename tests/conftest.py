"""Shared fixtures: a real moto S3 server on 127.0.0.1, one local Ray per session, small built-in data.

Fixtures that build data are session-scoped so each of the suite's 2 test processes builds each thing once.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.ray_cluster import free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Test-only Ray settings that cut start-up, not what is computed (each ~2-6 s per Ray Train fit on 2 cores):
# keep up to 6 idle workers (CPUs + 4) so the next fit or embed reuses them instead of starting processes that
# import torch again (docs/benchmarks.md#demo-time: not for the product, it slowed the decode of the labelled
# store); no preemption watcher actor per fit (nothing preempts a local cluster); the Train controller polls
# its workers every 0.5 s instead of 2 s, so it sees a fit finish sooner. Subprocesses inherit them.
os.environ.setdefault("RAY_num_workers_soft_limit", "6")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")

# The suite runs in 2 processes (pytest-xdist: `-n 2 --dist loadfile` in pyproject.toml), each with its own
# session fixtures and local Ray. `pytest_xdist_make_scheduler` below hands out work units, each run whole by
# one process: a test file (its module fixtures are built once), except that the tests of an expensive session
# fixture (SHARED_SESSION) form one unit, so that fixture is built once, not once per process.
# (xdist's own `--dist loadgroup` marks do nothing under pytest 9: it renames items through `item._nodeid`.)
SHARED_SESSION = {
    "pretrained": ("test_overwrite.py::test_pretrain_with_a_view_term_is_refused_then_retrained_with_overwrite",
                   "test_pretrain.py::test_cli_pretrain_writes_a_plain_hf_model",
                   "test_pretrain.py::test_one_worker_matches_two_workers",
                   "test_pretrain.py::test_view_term_adds_to_the_loss_and_is_learnt",
                   "test_supcon.py::test_pretrain_then_train_through_the_cli",
                   "test_supcon.py::test_multimodal_training_is_bit_identical_beside_a_busy_loop_on_every_core"),
    "one_tower": ("test_overwrite.py::test_train_with_another_im_wt_is_refused_then_retrained_with_overwrite",
                  "test_supcon.py::test_one_tower_training_leaves_the_other_tower_alone"),
}
# Units slowest first (measured on 2 cores with both processes busy; the rest follow in file order): the long
# ones start at once and short files fill the end, so neither process idles while the other finishes a unit.
SLOWEST_FIRST = ("test_demo.py", "pretrained", "one_tower", "test_replicate_label_free.py",
                 "test_supcon.py", "test_job_submit.py", "test_embed_resume.py",
                 "test_link_spread.py", "test_link_actors.py", "test_compose.py", "test_mine.py", "test_resume.py",
                 "test_overwrite.py", "test_pretrain.py", "test_pairs.py", "test_embed.py", "test_label_browser.py",
                 "test_import_job.py", "test_auto_threshold.py")


def work_unit(nodeid: str) -> str:
    """The work unit of a test by its node id: a SHARED_SESSION name, else its file's name."""
    path, _, name = nodeid.partition("::")
    test = f"{os.path.basename(path)}::{name.split('[')[0]}"
    return next((unit for unit, tests in SHARED_SESSION.items() if test in tests), os.path.basename(path))


def pytest_collection_modifyitems(config, items):
    """Order the work units slowest first (SLOWEST_FIRST, then file order), tests within a unit in file order;
    and check that SHARED_SESSION lists exactly the tests that use each of its fixtures."""
    for item in items:
        for fixture in SHARED_SESSION:
            if (fixture in item.fixturenames) != (work_unit(item.nodeid) == fixture):
                raise pytest.UsageError(f"{item.nodeid}: list exactly the tests that use the session fixture "
                                        f"'{fixture}' in SHARED_SESSION (tests/conftest.py)")
    rank = {unit: i for i, unit in enumerate(SLOWEST_FIRST)}
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(work_unit(item.nodeid), len(first_seen))
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(work_unit(item.nodeid), len(rank)), first_seen[work_unit(item.nodeid)],
                                 order[id(item)]))


@pytest.hookimpl(optionalhook=True)  # an xdist hook
def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadfile`: xdist's file scheduling with `work_unit` as the unit, in collection order."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the collection order (xdist would sort by test count)
    return WorkUnits(config, log)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 with the AWS variables exported; yields the endpoint URL.

    s3fs, pyarrow and Ray workers (via clippings.raylocal.worker_env) then reach it with no extra arguments.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server, request):
    """A fresh bucket on the moto server; yields its `s3://name` prefix."""
    import boto3

    name = "test-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + f"-{free_port()}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return f"s3://{name}"


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One local Ray for the session (2 CPUs, small object store), started after the S3 variables are set."""
    import ray

    from clippings.raylocal import init_ray

    init_ray(num_cpus=2, object_store_gb=1.0)
    from ray.data import DataContext

    DataContext.get_current().execution_no_progress_timeout_s = 120
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small built-in archive (60 stories, seed 1): {unlabelled,train,val,test} folders."""
    from clippings.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(str(out), stories=60, seed=1)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The offline `tiny` CLIP saved as a plain HF folder."""
    from clippings.builtins import build_tiny
    from clippings.model import save_model

    out = tmp_path_factory.mktemp("tiny_model")
    model, processor = build_tiny(seed=0)
    save_model(model, processor, str(out))
    return out


@pytest.fixture(scope="session")
def train_archives(tmp_path_factory):
    """Small PIL-built reprint archives for the training tests: unlabelled (60×3), train (24×3), val (12×3)."""
    from train_helpers import make_archive

    root = tmp_path_factory.mktemp("train_archives")
    return {
        "unlabelled": make_archive(str(root / "unlabelled"), 60, 3, seed=1, labelled=False),
        "train": make_archive(str(root / "train"), 24, 3, seed=2),
        "val": make_archive(str(root / "val"), 12, 3, seed=3),
    }


@pytest.fixture(scope="session")
def pretrained(train_archives, ray_local, tmp_path_factory):
    """`clippings pretrain` through cli.main with 2 gloo workers, 2 epochs: (exit code, model folder)."""
    from clippings import cli

    out = tmp_path_factory.mktemp("pretrained") / "model"
    rc = cli.main(["pretrain", "--archive", train_archives["unlabelled"], "--out", str(out), "--workers", "2",
                   "--epochs", "2", "--batch-size", "32", "--seed", "3"])
    return rc, str(out)


@pytest.fixture(scope="session")
def supervised(pretrained, train_archives, tmp_path_factory):
    """`clippings train` from the session's pretrained model through cli.main, 2 gloo workers, 2 epochs, 4
    groups a step: {"rc": exit code, "out": folder, "argv": the command line without --out}."""
    from clippings import cli

    argv = ["train", "--archive", train_archives["train"], "--val", train_archives["val"], "--model", pretrained[1],
            "--workers", "2", "--epochs", "2", "--groups-per-step", "4"]
    out = str(tmp_path_factory.mktemp("supervised") / "model")
    return {"rc": cli.main([*argv, "--out", out]), "out": out, "argv": argv}


@pytest.fixture(scope="session")
def retrained(pretrained, train_archives, tmp_path_factory):
    """The session's pretrained model and run copied to a folder, then `clippings pretrain` into it with a
    view term: first without --overwrite (refused), then with it (--view-weight 0.5, 3 epochs, seed 3, one
    worker). {"refused": (exit code, stderr, the folder's clippings.json after it), "rc": exit code, "out":
    folder}."""
    import contextlib
    import io
    import shutil

    from clippings import cli

    out = str(tmp_path_factory.mktemp("retrained") / "model")
    shutil.copytree(pretrained[1], out)
    shutil.copytree(pretrained[1] + "_runs", out + "_runs")  # the session's run, copied: other tests read it as it is
    argv = ["pretrain", "--archive", train_archives["unlabelled"], "--out", out, "--batch-size", "32", "--seed", "3",
            "--view-weight", "0.5"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        refused = cli.main([*argv, "--epochs", "2", "--workers", "2"])
    with open(os.path.join(out, "clippings.json")) as f:
        kept = json.load(f)
    rc = cli.main([*argv, "--epochs", "3", "--overwrite"])
    return {"refused": (refused, err.getvalue(), kept), "rc": rc, "out": out}


@pytest.fixture(scope="session")
def one_tower(train_archives, ray_local, tmp_path_factory):
    """`clippings train` of the built-in tiny model, 1 epoch, 4 groups per step, training views at p = 0.5 (the
    image tower sees them; the text tower's run records p and ignores it): into `image` with --im-wt 1
    (the image tower alone), then that folder and its run copied to `text` and retrained there with
    --im-wt 0 --overwrite (the text tower alone, afresh). Returns {"rc": (exit codes), "image": folder,
    "text": folder, "argv": the command line without --im-wt and --out}."""
    import shutil

    from clippings import cli

    root = tmp_path_factory.mktemp("one_tower")
    image, text = str(root / "image"), str(root / "text")
    argv = ["train", "--archive", train_archives["train"], "--val", train_archives["val"], "--model", "tiny",
            "--epochs", "1", "--groups-per-step", "4", "--view-p", "0.5"]
    first = cli.main([*argv, "--out", image, "--im-wt", "1"])
    shutil.copytree(image, text)
    shutil.copytree(image + "_runs", text + "_runs")
    second = cli.main([*argv, "--out", text, "--im-wt", "0", "--overwrite"])
    return {"rc": (first, second), "image": image, "text": text, "argv": argv}
