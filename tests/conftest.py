"""Shared fixtures: a real moto S3 server on 127.0.0.1, one local Ray per session, small built-in data.

Fixtures that build data are session-scoped so the suite builds each thing once.
"""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
