"""The Ray executor's parts that need no cluster: routing, the in-worker recorder, the storage check,
resources, batch plans and their CLI errors. (The cluster itself: tests/test_ray_cluster.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import facechain
from facechain.errors import FacechainError, InputError
from facechain.service.jobs import Job, JobState
from facechain.service.store import JobStore
from tests.cli_helpers import run_cli


# --- routing ----------------------------------------------------------------------------------------


def _job(kind: str = "generate", created: float = 100.0, **params) -> Job:
    return Job(id=f"job_{kind}_{created}", kind=kind, params=params, created=created)


def test_base_model_key_follows_the_verbs_precedence(isolated_home, tmp_path):
    from facechain.identity import Identity
    from facechain.models.registry import DEFAULT_BASE_MODEL
    from facechain.service.routing import base_model_key

    Identity(name="ann", base_model="hf:someone/base", trigger_word="a woman", path=isolated_home / "identities" / "ann").save()
    local = tmp_path / "model"
    local.mkdir()
    assert base_model_key(_job(person="ann", base_model=str(local))) == str(local.resolve())  # the param wins
    assert base_model_key(_job(person="ann")) == "hf:someone/base"  # else the identity's
    assert base_model_key(_job(photo=["u1"])) == DEFAULT_BASE_MODEL  # FACT: the default model
    # an identity still in training: the train job it waits for names the model
    train = Job(id="job_t", kind="train", params={"name": "bob", "base_model": "hf:x/y"})
    waiting = Job(id="job_g", kind="generate", params={"person": "bob"}, after=["job_t"])
    assert base_model_key(waiting, {"job_t": train}.get) == "hf:x/y"
    assert base_model_key(waiting) == DEFAULT_BASE_MODEL  # without the lookup: the default, never an error


def test_styles_base_model_comes_before_the_identitys(isolated_home):
    from facechain.identity import Identity
    from facechain.service.routing import base_model_key
    from facechain.styles import find_style

    Identity(name="ann", base_model="hf:someone/base", trigger_word="a woman", path=isolated_home / "identities" / "ann").save()
    styled = next(n for n in ("cyberpunk", "business_suit", "film") if find_style(n).base_model)
    assert base_model_key(_job(person="ann", style=styled)) == find_style(styled).base_model
    assert base_model_key(_job("train", person="ann", style=styled)) == "hf:someone/base"  # training ignores styles


def test_warm_preference_orders_jobs_for_one_worker():
    from facechain.service.routing import warm_preference

    jobs = [_job(created=100.0, base_model="B"), _job(created=101.0, base_model="A"), _job("train", created=99.0)]
    score = warm_preference({"A"}, lambda j: j.params.get("base_model", ""), clock=lambda: 110.0)
    assert max(jobs, key=score).params == {"base_model": "A"}  # warm beats older
    assert score(jobs[2]) > score(jobs[0])  # a job that loads nothing beats evicting A for B
    # with no warm job: an empty worker takes a new model before one holding another model does
    empty = warm_preference(set(), lambda j: j.params["base_model"], clock=lambda: 110.0)
    holding = warm_preference({"C"}, lambda j: j.params["base_model"], clock=lambda: 110.0)
    assert empty(jobs[0]) > holding(jobs[0])
    # a job another idle worker holds the model for is left to it; a busy holder only lowers it
    polite = warm_preference({"C"}, lambda j: j.params["base_model"], idle_others=[{"B"}], clock=lambda: 110.0)
    assert polite(jobs[0]) == float("-inf") and polite(jobs[1]) > float("-inf")
    waiting = warm_preference(set(), lambda j: j.params["base_model"], busy_held={"B"}, clock=lambda: 110.0)
    assert waiting(jobs[1]) > waiting(jobs[0]) > float("-inf")
    # nothing starves: past max_wait_s the oldest goes first whatever it needs
    late = warm_preference({"A"}, lambda j: j.params.get("base_model", ""), idle_others=[{"B"}], max_wait_s=5,
                           clock=lambda: 110.0)
    assert max(jobs, key=late) is jobs[2] and late(jobs[0]) > late(jobs[1])


def test_claim_next_with_a_preference_takes_the_preferred_runnable_job(tmp_path):
    store = JobStore(tmp_path)
    old, _ = store.create("generate", {"base_model": "B"})
    new, _ = store.create("generate", {"base_model": "A"})
    blocked, _ = store.create("generate", {"base_model": "A"}, after=[old.id])
    prefer = {old.id: 0.0, new.id: 1.0, blocked.id: 5.0}
    got = store.claim_next("me", prefer=lambda j: prefer[j.id])
    assert got.id == new.id and got.state is JobState.RUNNING and got.attempts == 1  # blocked waits for `old`
    assert store.claim_next("me", prefer=lambda j: float("-inf")) is None  # every job left to others
    assert store.claim_next("me").id == old.id  # without a preference: the oldest, as before


# --- the in-worker recorder and warm worker (no Ray) ------------------------------------------------


@pytest.fixture
def echo_kind():
    """A job kind whose runner reports progress and honours cancel/stop like the verbs do."""
    from facechain import progress
    from facechain.errors import InputError as _InputError
    from facechain.service.kinds import KINDS, JobKind, register_kind

    def run(ctx):
        if ctx.params.get("fail"):
            raise _InputError("photo.jpg", "no face found")
        with progress.task("echo", total=ctx.params.get("steps", 3), unit="step") as t:
            for _ in range(ctx.params.get("steps", 3)):
                t.update(1)
        return {"files": [], "echo": ctx.params.get("say"), "attempt": ctx.attempt}

    register_kind(JobKind(name="echo", function="builtins:print", config=None, device="cpu", run=run,
                          phases={"echo": (0.0, 1.0)}))
    yield "echo"
    KINDS.pop("echo", None)


def test_recorder_keeps_what_a_job_reports_for_the_server(echo_kind, tmp_path):
    from facechain.service.ray_worker import JobRecorder
    from facechain.service.settings import ServiceSettings
    from facechain.service.worker import run_job

    settings = ServiceSettings(root=tmp_path / "service")
    job = Job(id="job_1", kind="echo", params={"say": "hi", "steps": 3}, state=JobState.RUNNING, attempts=2)
    rec = JobRecorder(job, {})
    assert run_job(rec, settings, job) is JobState.SUCCEEDED  # type: ignore[arg-type]
    assert rec.outcome == {"state": "succeeded", "error": None, "result": {"files": [], "echo": "hi", "attempt": 2}}
    events = rec.drain()
    assert events and events[-1]["data"]["task"] == "echo" and events[-1]["progress"] == 1.0 and rec.drain() == []

    failing = Job(id="job_2", kind="echo", params={"fail": True}, state=JobState.RUNNING)
    rec = JobRecorder(failing, {})
    run_job(rec, settings, failing)  # type: ignore[arg-type]
    assert rec.outcome["state"] == "failed" and rec.outcome["error"] == "photo.jpg: no face found"


@pytest.mark.parametrize("flag, state", [("cancel", "cancelled"), ("interrupt", "queued")])
def test_cancel_and_stop_reach_the_job_through_its_progress(echo_kind, tmp_path, flag, state, monkeypatch):
    import facechain.service.worker as worker
    from facechain.service.ray_worker import JobRecorder
    from facechain.service.settings import ServiceSettings

    monkeypatch.setattr(worker, "_CANCEL_CHECK_S", 0.0)
    job = Job(id="job_3", kind="echo", params={"steps": 50}, state=JobState.RUNNING, attempts=1)
    rec = JobRecorder(job, {})
    setattr(rec, flag, True)
    worker.run_job(rec, ServiceSettings(root=tmp_path / "service"), job)  # type: ignore[arg-type]
    assert rec.outcome["state"] == state


def test_warm_worker_runs_a_job_and_refuses_a_folder_it_cannot_see(echo_kind, tmp_path):
    from facechain.service.ray_worker import WarmWorker
    from facechain.service.shared_storage import Marker, write_marker

    root = tmp_path / "service"
    marker = write_marker(root)
    w = WarmWorker({"root": str(root)}, marker.to_json(), name="w0")
    job = Job(id="job_4", kind="echo", params={"say": "x"}, state=JobState.RUNNING, attempts=1)
    out = w.run(job.to_json(), {})
    assert out["state"] == "succeeded" and out["result"]["echo"] == "x" and out["events"]
    assert (root / "jobs" / "job_4" / "log.txt").exists() and w.hello()["jobs_done"] == 1
    with pytest.raises(RuntimeError, match="does not see the service's folder"):
        WarmWorker({"root": str(root)}, Marker(tmp_path / "elsewhere" / "marker.json", marker.token).to_json())


# --- shared storage -------------------------------------------------------------------------------------


def test_storage_check_names_the_nodes_that_do_not_share_the_folder(tmp_path):
    from facechain.service.shared_storage import Marker, SharedStorageError, probe, verify, write_marker

    marker = write_marker(tmp_path / "service")
    nodes = [{"node_id": "a" * 40, "ip": "10.0.0.1"}, {"node_id": "b" * 40, "ip": "10.0.0.2"},
             {"node_id": "c" * 40, "ip": "10.0.0.3"}, {"node_id": "d" * 40, "ip": "10.0.0.4"}]
    other_disk = Marker(tmp_path / "other" / "service" / "cluster" / "marker.json", marker.token)
    results = {nodes[0]["node_id"]: probe(marker, nodes[0]["node_id"]),
               nodes[1]["node_id"]: probe(other_disk, nodes[1]["node_id"]),  # sees another folder at the path
               nodes[2]["node_id"]: ModuleNotFoundError("No module named 'facechain'")}
    verify(marker, nodes[:1], results)  # a node that shares it passes
    with pytest.raises(SharedStorageError) as e:
        verify(marker, nodes, results)
    text = str(e.value)
    assert "10.0.0.1" not in text and all(ip in text for ip in ("10.0.0.2", "10.0.0.3", "10.0.0.4"))
    assert "No module named 'facechain'" in text and "did not run" in text and "\n" not in text
    # a node that reads the marker but whose reply lands elsewhere is caught on the way back
    (marker.path.parent / f"reply-{'a' * 40}.json").unlink()
    with pytest.raises(SharedStorageError, match="10.0.0.1.*reply is not visible"):
        verify(marker, nodes[:1], results)


# --- resources and settings ---------------------------------------------------------------------------


def test_resources_per_kind_and_pool_capacity():
    from facechain.options import OptionError, validate
    from facechain.service.ray_executor import pool_capacity, resources_for

    assert resources_for("train", "gpu", {}) == {"num_gpus": 1, "num_cpus": 1}
    assert resources_for("prepare", "cpu", {}) == {"num_cpus": 1}
    configured = validate({"ray_resources": ['generate={"num_gpus": 0.5}',
                                             'train={"resources": {"facechain_gpu": 1}}']})["ray_resources"]
    assert configured == {"generate": {"num_gpus": 0.5}, "train": {"resources": {"facechain_gpu": 1}}}
    assert validate({"ray_resources": configured})["ray_resources"] == configured  # Python: the mapping itself
    assert resources_for("generate", "gpu", configured) == {"num_gpus": 0.5}
    assert pool_capacity({"num_gpus": 0.5, "num_cpus": 1}, {"GPU": 2.0, "CPU": 16.0}) == 4
    assert pool_capacity({"resources": {"facechain_gpu": 1}}, {"facechain_gpu": 3.0}) == 3
    assert pool_capacity({"num_gpus": 1}, {"CPU": 8.0}) == 0
    for bad in ("generate", "generate=[1]", "=1", "generate={oops"):
        with pytest.raises(OptionError, match="^ray_resources must be KIND=JSON"):
            validate({"ray_resources": [bad]})
    with pytest.raises(OptionError, match="unknown key 'gpus' \\(did you mean num_gpus"):
        validate({"ray_resources": {"train": {"gpus": 1}}})


def test_workers_get_the_services_home_even_when_the_process_environment_changes_later(tmp_path, monkeypatch):
    from facechain.service.ray_executor import RayExecutor
    from facechain.service.settings import ServiceSettings

    monkeypatch.setenv("FACECHAIN_HOME", str(tmp_path / "home"))
    executor = RayExecutor(ServiceSettings(root=tmp_path / "home" / "service"), JobStore(tmp_path / "home" / "service"))
    first = executor._runtime_env()  # at start-up
    monkeypatch.setenv("FACECHAIN_HOME", str(tmp_path / "elsewhere"))  # e.g. another test, or a library call
    assert executor._runtime_env() == first  # a replacement worker started now still sees the service's home
    assert first["env_vars"]["FACECHAIN_HOME"] == str((tmp_path / "home").resolve())


def test_settings_check_the_executor_options():
    from facechain.options import OptionError
    from facechain.service.settings import ServiceSettings

    assert ServiceSettings(executor="ray").executor == "ray"
    assert ServiceSettings(ray_resources=['train={"num_gpus": 2}']).ray_resources == {"train": {"num_gpus": 2}}
    with pytest.raises(OptionError, match="^executor 'slurm' is not a choice"):
        ServiceSettings(executor="slurm")
    with pytest.raises(OptionError, match="^max_attempts must be at least 1"):
        ServiceSettings(max_attempts=0)
    with pytest.raises(OptionError, match="^ray_address must be auto, HOST:PORT or ray://HOST:PORT"):
        ServiceSettings(ray_address="somewhere")
    assert ServiceSettings(ray_address="ray://10.0.0.1:10001").ray_address == "ray://10.0.0.1:10001"


# --- batch plans ----------------------------------------------------------------------------------------


def _plan_dir(faces_dir: Path, tmp_path: Path) -> Path:
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "a.jpg").write_bytes((faces_dir / "obama" / "obama_small.jpg").read_bytes())
    (tmp_path / "t.jpg").write_bytes((faces_dir / "obama" / "obama_small.jpg").read_bytes())
    return tmp_path


def test_plan_becomes_items_with_dependencies_in_order(faces_dir, tmp_path):
    from facechain.batch import parse_plan

    base = _plan_dir(faces_dir, tmp_path)
    plan = parse_plan({"name": "p1", "defaults": {"train": {"steps": 10}, "generate": {"seed": 1}},
                       "people": [{"name": "alice", "photos": "alice", "styles": ["cyberpunk", {"prompt": "x",
                                   "label": "plain"}], "count": 2, "templates": ["t.jpg"], "generate": {"seed": 3}},
                                  {"name": "bob", "styles": ["film"]},
                                  {"name": "carol", "fact_photos": ["t.jpg"], "styles": ["film"]}]}, base=base)
    items = {(i.person, i.key): i for i in plan.items}
    assert list(items) == [("alice", "train"), ("alice", "generate:cyberpunk"), ("alice", "generate:plain"),
                           ("alice", "inpaint:t"), ("bob", "generate:film"), ("carol", "fact:film")]
    assert items["alice", "train"].params == {"steps": 10, "name": "alice"}
    assert items["alice", "train"].files == {"photos": [base / "alice" / "a.jpg"]}
    assert items["alice", "generate:cyberpunk"].params == {"seed": 3, "num_images": 2, "style": "cyberpunk", "person": "alice"}
    assert items["alice", "generate:plain"].params["prompt"] == "x"
    assert items["alice", "inpaint:t"].params == {"person": ["alice"]} and items["alice", "inpaint:t"].files == {"template": [base / "t.jpg"]}
    assert "person" not in items["carol", "fact:film"].params and items["carol", "fact:film"].files == {"photo": [base / "t.jpg"]}
    assert plan.output == base / "p1-results"


@pytest.mark.parametrize("plan, reason", [
    ([], "a plan is a mapping"),
    ({"people": []}, "non-empty list"),
    ({"people": [{"name": "a", "styles": ["x"]}], "extra": 1}, "unknown key 'extra'"),
    ({"people": [{"name": "../a", "styles": ["x"]}]}, "person name '../a'"),
    ({"people": [{"name": "a", "styles": ["x"]}, {"name": "a", "styles": ["y"]}]}, "listed twice"),
    ({"people": [{"name": "a", "photos": "missing"}]}, "does not exist"),
    ({"people": [{"name": "a", "styles": ["x"], "count": 0}]}, "'count' must be a whole number"),
    ({"people": [{"name": "a"}]}, "nothing to make"),
    ({"people": [{"name": "a", "styles": ["x", "x"]}]}, "listed twice"),
    ({"defaults": {"trian": {}}, "people": [{"name": "a", "styles": ["x"]}]}, "unknown key 'trian'"),
])
def test_bad_plans_are_one_line_input_errors(tmp_path, plan, reason):
    from facechain.batch import parse_plan

    with pytest.raises(InputError, match=reason) as e:
        parse_plan(plan, tmp_path / "plan.yaml")
    assert str(e.value).startswith(str(tmp_path / "plan.yaml")) and "\n" not in str(e.value)


def test_batch_cli_refuses_bad_input_with_one_line(tmp_path):
    code, _, err = run_cli("batch", tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml: no such plan file" in err
    (tmp_path / "bad.yaml").write_text("people: [unclosed\n")
    code, _, err = run_cli("batch", tmp_path / "bad.yaml")
    assert code == 2 and "not a readable YAML plan" in err and "Traceback" not in err
    (tmp_path / "ok.yaml").write_text(json.dumps({"people": [{"name": "a", "styles": ["film"]}]}))
    code, _, err = run_cli("batch", tmp_path / "ok.yaml", "--executor", "ray", "--ray-resources", "train")
    assert code == 2 and "--ray-resources must be KIND=JSON" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("batch", tmp_path / "ok.yaml", "--max-attempts", "0")
    assert code == 2 and "--max-attempts must be at least 1" in err
    assert not (tmp_path / "ok-results").exists()  # nothing ran


def test_unreachable_cluster_is_a_one_line_error_at_once(tmp_path):
    pytest.importorskip("fastapi")
    code, _, err = run_cli("serve", "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert code == 2 and "cannot connect to the Ray cluster at 127.0.0.1:1" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "ok.yaml").write_text(json.dumps({"people": [{"name": "a", "styles": ["film"]}]}))
    code, _, err = run_cli("batch", tmp_path / "ok.yaml", "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert code == 2 and "cannot connect to the Ray cluster at 127.0.0.1:1" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("batch", tmp_path / "ok.yaml", "--executor", "ray", "--ray-address", "not-an-address")
    assert code == 2 and "--ray-address must be auto, HOST:PORT or ray://HOST:PORT" in err
    assert not (tmp_path / "ok-results").exists()
    with pytest.raises(FacechainError, match="^cannot connect to the Ray cluster at 127.0.0.1:1"):
        facechain.batch(tmp_path / "ok.yaml", executor="ray", ray_address="127.0.0.1:1", quiet=True)
