"""Start or join Ray: local mode on a laptop or CI, the cluster under `ray job submit`.

A plain `ray.init()` silently joins any cluster an earlier `ray start` left on the machine, so local mode
asks for `address="local"` unless `RAY_ADDRESS` is set (as `ray job submit` does). Local mode keeps Ray on
loopback and its dashboard off, caps the object store, and passes the AWS variables to workers so `s3://`
paths work inside tasks and actors.
"""

from __future__ import annotations

import os

AWS_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


def worker_env() -> dict[str, str]:
    """Environment variables workers need (S3 endpoint and credentials, offline hub) — never printed."""
    keep = AWS_VARS + ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")
    return {k: os.environ[k] for k in keep if k in os.environ}


def init_ray(num_cpus: int | None = None, object_store_gb: float = 2.0) -> None:
    """Initialise Ray once per process: join `RAY_ADDRESS` if set, else start a private local instance.

    num_cpus: CPUs for local mode (default: all of this machine's). object_store_gb: local object store cap.
    """
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": worker_env()}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env, log_to_driver=True)
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep a local cluster on loopback
    ray.init(
        address="local",
        num_cpus=num_cpus,
        object_store_memory=int(object_store_gb * 2**30),
        include_dashboard=False,
        runtime_env=runtime_env,
        log_to_driver=True,
        configure_logging=True,
        logging_level="WARNING",
    )
