"""Start or join Ray: local mode on a laptop or CI, the cluster under `ray job submit`; and size thread pools.

A plain `ray.init()` silently joins any cluster an earlier `ray start` left on the machine, so local mode
asks for `address="local"` unless `RAY_ADDRESS` is set (as `ray job submit` does). Local mode keeps Ray on
loopback and its dashboard off, caps the object store, and passes the AWS variables to workers so `s3://`
paths work inside tasks and actors.

Console: unless verbose (`clippings.logs.verbose`), Ray's loggers, Ray Data's progress and the output of
every worker and actor (Ray Train's controller and workers included) go to the open log files, not the
console (`clippings.logs`).

Threads: a process given c CPUs by Ray runs every thread pool (torch intra- and inter-op, OpenMP, MKL,
OpenBLAS, the tokenizers' Rayon pool, Arrow's) at max(1, floor(c)) threads, Ray's own rule for OMP_NUM_THREADS.
Pools larger than the grant make each fork-join step wait for descheduled threads as soon as anything else
uses the cores (docs/benchmarks.md#training-beside-a-busy-process).
The sizes travel as environment variables in each task's, actor's and train worker's runtime env (read when
the libraries load) and are applied again in-process by `size_thread_pools`. Local mode also starts workers
at niceness 0 instead of Ray's 15, which left them a sliver of a core beside any ordinary process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

AWS_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
)


def worker_env() -> dict[str, str]:
    """Environment variables workers need (S3 endpoint and credentials, offline hub, console mode) — never
    printed."""
    keep = AWS_VARS + ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "CLIPPINGS_VERBOSE")
    return {k: os.environ[k] for k in keep if k in os.environ}


def threads_for(cpus: float) -> int:
    """Threads per pool for a process granted `cpus` CPUs: the floor, at least 1 (Ray's OMP_NUM_THREADS rule)."""
    return max(1, int(cpus))


def thread_env(cpus: float) -> dict[str, str]:
    """The thread-pool environment variables of a process granted `cpus` CPUs."""
    return dict.fromkeys(THREAD_VARS, str(threads_for(cpus)))


def runtime_env(cpus: float) -> dict:
    """A runtime env for a task, actor or train worker granted `cpus` CPUs: `worker_env` plus `thread_env`
    (given whole, not relying on Ray merging it with the job's)."""
    return {"env_vars": {**worker_env(), **thread_env(cpus)}}


def task(function: Callable, cpus: float = 1.0) -> Any:
    """`function` as a Ray task of `cpus` CPUs with their runtime env (runtime_env), retried twice if its
    worker dies."""
    import ray

    return ray.remote(num_cpus=cpus, runtime_env=runtime_env(cpus), max_retries=2)(function)


def size_thread_pools(cpus: float) -> int:
    """Size this process's pools to a grant of `cpus` CPUs, in-process: the environment for libraries and
    child processes not yet started, torch's intra- and inter-op pools now. Returns the thread count.

    Call first thing in a task, actor or train worker (torch's inter-op pool can only be sized before use).
    """
    import torch

    n = threads_for(cpus)
    os.environ.update(thread_env(n))
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already started in this process (a reused worker): it keeps its first size
        pass
    return n


def _worker_lines_to_log(data: dict) -> None:
    """Ray's worker-output hook: each line of a worker's stdout/stderr to the log files, named by its source
    (the autoscaler's periodic status tables are dropped as Ray's own printer drops them)."""
    from ray._private.worker import filter_autoscaler_events

    from clippings.logs import DETAIL

    source = data.get("actor_name") or data.get("task_name") or ("raylet" if data.get("pid") == "raylet" else "worker")
    lines = data.get("lines", [])
    if data.get("pid") == "autoscaler":
        source, lines = "autoscaler", list(filter_autoscaler_events(lines))
    detail = logging.getLogger(DETAIL)
    for line in lines:
        detail.info("(%s pid=%s) %s", source, data.get("pid"), line)


def _raylet_lines(data: dict, ignore_prefix: bool) -> None:
    """Stands in for Ray's `print_to_stdstream`, which its error listener calls directly with the raylet's
    messages (e.g. "A worker died or was killed ... unexpected system error" when a worker crashes inside
    Ray, which Ray retries): to the log files unless verbose."""
    from clippings.logs import verbose

    if verbose():
        _print_to_stdstream(data, ignore_prefix)
    else:
        _worker_lines_to_log(data)


_print_to_stdstream = None
"""Ray's own printer, kept for verbose mode once `_raylet_lines` replaces it."""


def _route_ray_output() -> None:
    """Send worker output, the raylet's messages and Ray Data's progress to the log files (called after
    `ray.init`, unless verbose)."""
    global _print_to_stdstream
    import ray.data

    from clippings.logs import quiet_libraries

    ray_worker, dispatcher = ray_output_hooks()
    quiet_libraries()  # again: importing ray.data installed its console handler
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Same name as Ray's own printer, so ray.shutdown() removes ours as it would remove its own.
    dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("ray_print_logs", _worker_lines_to_log)
    if ray_worker.print_to_stdstream is not _raylet_lines:
        _print_to_stdstream, ray_worker.print_to_stdstream = ray_worker.print_to_stdstream, _raylet_lines


def ray_output_hooks() -> tuple[Any, Any]:
    """Ray's private output hooks that `_route_ray_output` replaces: (the `ray._private.worker` module, whose
    `print_to_stdstream` prints the raylet's messages, and the worker-output dispatcher).

    They are not public API: a Ray release may move them. Raises RuntimeError naming what is gone and the
    way around it, instead of letting the console routing fail halfway or silently print nothing.
    """
    try:
        import ray._private.worker as ray_worker
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError as err:
        raise RuntimeError(_moved_hook_message(f"{err}")) from err
    if not callable(getattr(ray_worker, "print_to_stdstream", None)):
        raise RuntimeError(_moved_hook_message("ray._private.worker.print_to_stdstream is gone"))
    for method in ("add_handler", "remove_handler"):
        if not callable(getattr(dispatcher, method, None)):
            raise RuntimeError(_moved_hook_message(f"the worker output dispatcher has no {method}()"))
    return ray_worker, dispatcher


def _moved_hook_message(what: str) -> str:
    import ray

    return (f"Ray {ray.__version__} moved a private name that clippings routes console output through ({what}); "
            "clippings is tested with ray==2.60.0: install that version, or set CLIPPINGS_VERBOSE=1 to leave "
            "Ray's output on the console untouched")


def job_env_vars() -> set[str]:
    """The environment variables a `ray job submit --runtime-env-json` sets for this job (none outside one)."""
    import json

    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return set()
    return set((json.loads(raw).get("runtime_env") or {}).get("env_vars") or {})


def init_ray(num_cpus: int | None = None, object_store_gb: float = 2.0) -> None:
    """Initialise Ray once per process: join `RAY_ADDRESS` if set, else start a private local instance.

    num_cpus: CPUs for local mode (default: all of this machine's). object_store_gb: local object store cap.
    Tasks and actors that size nothing themselves get one thread per pool (the job's runtime env).
    """
    import ray

    from clippings.logs import quiet_libraries, verbose

    if ray.is_initialized():
        return
    quiet_libraries()  # before init: its token-authentication notice and the like go to the log file
    if os.environ.get("RAY_ADDRESS"):
        env = runtime_env(1)
        given = job_env_vars()  # a job's own env_vars win: Ray refuses a driver's that repeat them
        env["env_vars"] = {key: value for key, value in env["env_vars"].items() if key not in given}
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=env, log_to_driver=True)
    else:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep a local cluster on loopback
        ray.init(
            address="local",
            num_cpus=num_cpus,
            object_store_memory=int(object_store_gb * 2**30),
            include_dashboard=False,
            runtime_env=runtime_env(1),
            log_to_driver=True,
            configure_logging=True,
            logging_level="INFO",
            # Ray starts workers at niceness 15: beside any ordinary process they got ~1/30 of a core
            # (pretraining ~1% of its rate alone). At 0 they get their fair share of a shared machine.
            _system_config={"worker_niceness": 0},
        )
    if not verbose():
        _route_ray_output()


def get(refs: Any) -> Any:
    """ray.get, where a BadInput raised in a task or actor comes out as itself (its one line), not as Ray's
    error carrying the remote traceback."""
    import ray
    from ray.exceptions import RayTaskError

    from clippings.errors import BadInput

    try:
        return ray.get(refs)
    except RayTaskError as error:
        if isinstance(error.cause, BadInput):
            raise error.cause from None
        raise
