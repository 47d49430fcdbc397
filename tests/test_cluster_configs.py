"""cluster_configs/: the launcher YAML passes Ray's own validation, the RayJobs have the fields KubeRay
needs, and every job path and flag named in them (and in the README) exists in this repository."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml

from clippings.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "cluster_configs"
RAYJOBS = ["kuberay-rayjob-embed.yaml", "kuberay-rayjob-train.yaml"]


def _job_command(job_file: str) -> str:
    """The subcommand a `jobs/*.py` entrypoint runs (from its `run_job("...")` call)."""
    path = ROOT / job_file
    assert path.is_file(), f"{job_file} named in an entrypoint does not exist"
    match = re.search(r'run_job\("([a-z_]+)"\)', path.read_text())
    assert match, f"{job_file} does not call clippings.cli.run_job"
    return match.group(1)


def _parse_entrypoint(entrypoint: str):
    """Parse `python jobs/x.py FLAGS` with the CLI's own parser; unknown flags or bad values fail."""
    words = shlex.split(entrypoint)
    assert words[0] == "python" and words[1].startswith("jobs/"), entrypoint
    command = _job_command(words[1])
    try:
        return build_parser(command).parse_args([command, *words[2:]])
    except SystemExit as e:
        pytest.fail(f"entrypoint {entrypoint!r} does not parse as 'clippings {command}' (exit {e.code})")


# ---------------------------------------------------------------- Ray cluster launcher (AWS)


def test_launcher_config_passes_ray_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CONFIGS / "aws-gpu.yaml").read_text())
    config = prepare_config(copy.deepcopy(raw))  # what `ray up` does before its AWS calls
    validate_config(config)  # jsonschema against ray-schema.json plus Ray's cross-field checks
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = 99  # above max_workers: Ray refuses it
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(broken)

    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"]["GPU"] == 0
    gpus = [n for n in nodes.values() if n.get("resources", {}).get("GPU", 0) >= 1]
    assert len(gpus) == 1 and gpus[0]["min_workers"] == 0 and gpus[0]["max_workers"] >= 2
    assert gpus[0]["node_config"]["InstanceType"].startswith(("g5.", "g6.", "p4", "p5"))
    for node in nodes.values():  # S3 through instance roles: no keys anywhere
        assert node["node_config"]["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::")
    text = (CONFIGS / "aws-gpu.yaml").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and "aws_secret_access_key" not in text
    # the dashboard is bound to loopback and no ingress rule is open to the world
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start
    for rule in config["provider"]["security_group"]["IpPermissions"]:
        assert rule["FromPort"] == rule["ToPort"] == 22
        assert all(r["CidrIp"] != "0.0.0.0/0" for r in rule["IpRanges"])
    # the repository is mounted and installed on every node
    (remote, local), = config["file_mounts"].items()
    assert local == "." and any(f"pip install --no-cache-dir -e {remote}" in c for c in config["setup_commands"])
    assert config["docker"]["worker_image"].startswith("rayproject/ray:2.60.0-py311")


# ---------------------------------------------------------------- KubeRay RayJobs

# The fields KubeRay (ray.io/v1) needs to create the cluster and submit the job: path -> type.
RAYJOB_REQUIRED = {
    "apiVersion": str, "kind": str, "metadata.name": str, "spec.entrypoint": str,
    "spec.shutdownAfterJobFinishes": bool, "spec.ttlSecondsAfterFinished": int,
    "spec.rayClusterSpec.headGroupSpec.rayStartParams": dict,
    "spec.rayClusterSpec.headGroupSpec.template.spec.containers": list,
    "spec.rayClusterSpec.workerGroupSpecs": list,
}
WORKER_REQUIRED = {"groupName": str, "replicas": int, "minReplicas": int, "maxReplicas": int,
                   "rayStartParams": dict, "template.spec.containers": list}


def _get(obj, dotted: str):
    for key in dotted.split("."):
        assert isinstance(obj, dict) and key in obj, f"missing field {dotted!r}"
        obj = obj[key]
    return obj


def _check_fields(obj, required: dict, where: str) -> None:
    for path, typ in required.items():
        value = _get(obj, path)
        type_ok = isinstance(value, bool) if typ is bool else isinstance(value, typ) and not isinstance(value, bool)
        assert type_ok, f"{where}: {path} is {value!r}, needs {typ.__name__}"
        assert value not in ("", [], None) or typ is dict, f"{where}: {path} is empty"


def _rayjob(name: str) -> dict:
    docs = list(yaml.safe_load_all((CONFIGS / name).read_text()))
    jobs = [d for d in docs if d.get("kind") == "RayJob"]
    assert len(jobs) == 1
    return jobs[0] | {"_docs": docs}


def _mounts(pod: dict) -> dict[str, str]:
    """mountPath -> volume source kind ('persistentVolumeClaim', 'emptyDir', ...) of a pod template."""
    volumes = {v["name"]: next(k for k in v if k != "name") for v in pod["spec"].get("volumes", [])}
    return {m["mountPath"]: volumes[m["name"]] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])}


@pytest.mark.parametrize("name", RAYJOBS)
def test_rayjob_has_kuberay_fields_and_gpu_workers(name):
    job = _rayjob(name)
    _check_fields(job, RAYJOB_REQUIRED, name)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["shutdownAfterJobFinishes"] is True and job["spec"]["ttlSecondsAfterFinished"] > 0
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"  # dashboard not public
    head_containers = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert all("nvidia.com/gpu" not in c["resources"].get("limits", {}) for c in head_containers)
    for group in cluster["workerGroupSpecs"]:
        _check_fields(group, WORKER_REQUIRED, f"{name} worker group")
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        for c in group["template"]["spec"]["containers"]:
            assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1
            assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
    # no other documents expose the cluster (no Ingress, no LoadBalancer Service)
    assert {d["kind"] for d in job["_docs"]} <= {"RayJob", "ServiceAccount", "PersistentVolumeClaim"}


@pytest.mark.parametrize("name", RAYJOBS)
def test_rayjob_entrypoint_names_real_jobs_and_flags(name):
    job = _rayjob(name)
    args = _parse_entrypoint(job["spec"]["entrypoint"])
    assert args.gpu is True
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["working_dir"] == "/home/ray/clippings"
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpus = sum(g["maxReplicas"] * g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
               for g in groups)
    if args.command == "train":
        # one Ray Train worker per GPU, all present at once; checkpoints on a shared volume in every pod
        assert args.workers == gpus == sum(g["minReplicas"] for g in groups)
        claim = next(d for d in job["_docs"] if d["kind"] == "PersistentVolumeClaim")
        assert "ReadWriteMany" in claim["spec"]["accessModes"]
        pods = [job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]] + [g["template"] for g in groups]
        for pod in pods:
            mounts = _mounts(pod)
            root = next(p for p in mounts if args.run_dir.startswith(p + "/"))
            assert mounts[root] == "persistentVolumeClaim"
    else:
        assert args.command == "embed" and all(p.startswith("s3://") for p in (args.archive, args.model, args.out))


def test_readme_commands_name_real_jobs_and_flags():
    text = (CONFIGS / "README.md").read_text().replace("\\\n", " ")
    commands = re.findall(r"-- +(python jobs/[^\n]+)", text)
    assert len(commands) == 3
    parsed = [_parse_entrypoint(c) for c in commands]
    assert [a.command for a in parsed] == ["pretrain", "train", "embed"]
    assert all(a.gpu for a in parsed)
    for a in parsed:  # training checkpoints on shared storage, not a node's disk
        if a.command in ("pretrain", "train"):
            assert a.run_dir.startswith("s3://")
    for path in re.findall(r"cluster_configs/[\w.-]+", text):
        assert (ROOT / path).is_file(), path
