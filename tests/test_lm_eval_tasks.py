"""The lm-eval tasks (tasks/), the leafe-agent model and evaluate_checkpoint.

Fast tests run lm-eval in this process with scripted models (no network, no model):
exact Pass@k from known correct counts through the real filter (the sandbox judges the
completions), the errors, the task configs. The slow ones run the `lm_eval` and
`leafe-eval` commands end to end on the tiny model, all at once (lm-eval indexes its
~15,000 built-in tasks for 15 s at every start), and `evaluate_checkpoint`.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import NEEDS_MBPP, SHARED_DATA
from leafe_recipe.records import read_jsonl
from leafe_recipe import TASKS_DIR
from leafe_recipe.envs.base import Task, get_family, replay
from leafe_recipe.envs.code import DatasetUnavailable, expert_action
from leafe_recipe.envs.sokoban import solve
from leafe_recipe.passk import ks_up_to, pass_at_k
from leafe_recipe.policy import Completion, Sampling
from leafe_recipe.prompts import build_messages
from scripted import grid_of

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from leafe_recipe import lm_eval_plugin as plugin  # noqa: E402

MBPP = SHARED_DATA / "mbpp" / "mbpp.jsonl"
SMALL_CC = Path(__file__).parent / "data" / "codecontests_small.jsonl"
BIN = Path(sys.executable).parent
TASKS = {
    "leafe_sokoban": "leafe_sokoban/leafe_sokoban.yaml",
    "leafe_mbpp": "leafe_mbpp/leafe_mbpp.yaml",
    "leafe_humaneval": "leafe_humaneval/leafe_humaneval.yaml",
    "leafe_codecontests": "leafe_codecontests/leafe_codecontests.yaml",
    "leafe_codecontests_mt": "leafe_codecontests/leafe_codecontests_mt.yaml",
    "leafe_scienceworld": "leafe_scienceworld/leafe_scienceworld.yaml",
    "leafe_webshop": "leafe_webshop/leafe_webshop.yaml",
    "leafe_alfworld": "leafe_alfworld/leafe_alfworld.yaml",
}
GROUPS = {"leafe_table1": ["leafe_webshop", "leafe_alfworld", "leafe_scienceworld", "leafe_sokoban"], "leafe_code": ["leafe_codecontests_mt", "leafe_mbpp"]}
OFFLINE = {"mbpp_path": str(MBPP), "codecontests_path": str(SMALL_CC), "sokoban": {"n_test": 4}, "scienceworld": {"n_test": 2}, "alfworld": {"n_test": 2}}


def needs_simulator(name: str):
    """A task whose simulator is missing here is skipped with the reason (WebShop is not installable offline)."""
    from leafe_recipe.envs.base import EnvUnavailable, env_config, get_family

    env = name.removeprefix("leafe_").split("_")[0]
    if not env_config(env).get("extra"):  # built in: nothing to install
        return
    try:
        get_family(env).tasks("test", 1, **plugin.task_spec({"env": env}, {})["tasks"])
    except EnvUnavailable as err:
        pytest.skip(str(err)[:200])


class _Loader(yaml.SafeLoader):
    """Reads task YAMLs, keeping `!function x.y` as the string."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def read_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


def manager(tmp_path: Path | None = None, **metadata) -> TaskManager:
    paths = [str(TASKS_DIR)] + ([str(tmp_path)] if tmp_path else [])
    return TaskManager(include_path=paths, include_defaults=False, metadata=metadata)


def variant(folder: Path, base: str, name: str, **keys) -> Path:
    """A task variant: include a leafe task YAML, override top-level keys."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"include": str(TASKS_DIR / TASKS[base]), "task": name, **keys}))
    return path


class ScriptedLM(LM):
    """lm-eval model answering `answer(doc, k)` for the k-th sample of each document."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer
        self.calls = 0

    def generate_until(self, requests, disable_tqdm=False):
        self.calls += 1
        seen = Counter()
        out = []
        for req in requests:
            key = (req.task_name, req.doc_id)
            out.append(self.answer(req.doc, seen[key]))
            seen[key] += 1
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def run(model, tasks, tm, **kwargs):
    kwargs.setdefault("confirm_run_unsafe_code", True)
    return lm_eval.simple_evaluate(model=model, tasks=tasks, task_manager=tm, bootstrap_iters=0, **kwargs)


# --------------------------------------------------------------------------- #
# Task configs
# --------------------------------------------------------------------------- #


def test_tasks_and_groups_are_found_and_valid_in_process():
    """What `lm_eval validate` checks (names resolve), without indexing lm-eval's own tasks."""
    tm = manager()
    names = [*TASKS, *GROUPS]
    assert set(tm.match_tasks(names)) == set(names)
    assert set(tm.all_tasks) == set(names)
    for group, members in GROUPS.items():
        cfg = read_yaml(TASKS_DIR / "groups" / f"{group}.yaml")
        assert cfg["task"] == members


def test_plugin_registers_leafe_agent_beside_lm_evals_models():
    from lm_eval.api.registry import get_model, model_registry

    assert get_model("leafe-agent") is plugin.LeafeAgent
    # registering into an empty registry would hide lm-eval's own models (get_model loads them only then)
    assert {"hf", "vllm"} <= set(model_registry.keys())


@pytest.mark.parametrize("name", [pytest.param(n, marks=NEEDS_MBPP) if "mbpp" in n else n for n in TASKS])
def test_every_task_builds_offline_with_pinned_sampling(name):
    needs_simulator(name)
    task = manager(**OFFLINE).load([name])["tasks"][name]
    cfg = task.config
    assert cfg.repeats == 128
    gen = cfg.generation_kwargs
    assert (gen["temperature"], gen["top_p"], gen["top_k"], gen["do_sample"]) == (1.0, 1.0, 0, True)
    assert gen["max_gen_toks"] >= 256 and gen["until"] == []
    assert (gen["repetition_penalty"], gen["min_p"]) == (1.0, 0.0)
    metrics = [m["metric"] for m in cfg.metric_list]
    assert metrics == [f"pass@{k}" for k in ks_up_to(128)] + ["correct", "mean_turns", "invalid_action_rate"]
    doc = task.eval_docs[0]
    settings = json.loads(doc["settings"])
    interactive = ("leafe_sokoban", "leafe_codecontests_mt", "leafe_scienceworld", "leafe_alfworld", "leafe_webshop")
    assert (plugin.AGENT_ONLY_KEY in gen) == settings["interactive"] == (name in interactive)
    assert bool(cfg.unsafe_code) == (name in ("leafe_codecontests", "leafe_codecontests_mt", "leafe_mbpp", "leafe_humaneval"))
    # the document is the pipeline's episode start: same task, same first prompt
    family = get_family(doc["env"])
    t = Task.from_json(json.loads(doc["task"]))
    assert doc["prompt"] == family.make(**settings["kwargs"]).reset(t)
    assert doc["system"] == family.system_prompt


@NEEDS_MBPP
def test_chat_prompt_of_a_single_turn_task_is_the_pipelines(tiny_model):
    """With --apply_chat_template, lm-eval's hf/vllm prompt is exactly the rollout's prompt."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    task = manager(mbpp_path=str(MBPP)).load(["leafe_mbpp"])["tasks"]["leafe_mbpp"]
    doc = task.eval_docs[0]

    def template(messages, add_generation_prompt=True):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    context = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=template)
    expected = template(build_messages(doc["system"], [doc["prompt"]], []))
    assert context == expected


@NEEDS_MBPP
def test_data_overrides_and_paths(tmp_path):
    tm = manager(sokoban={"n_test": 3, "kwargs": {"max_steps": 5}, "tasks": {"dim": [7, 7]}})
    docs = tm.load(["leafe_sokoban"])["tasks"]["leafe_sokoban"].eval_docs
    assert len(docs) == 3
    settings = json.loads(docs[0]["settings"])
    assert settings["kwargs"] == {"max_steps": 5} and settings["history_window"] == 2
    assert len(json.loads(docs[0]["task"])["data"]["grid"]) == 7

    # a relative path in a task YAML resolves against the YAML's folder, not the working directory
    data = tmp_path / "variants" / "data"
    data.mkdir(parents=True)
    (data / "mbpp.jsonl").write_text("".join(MBPP.read_text().splitlines(True)[:15]))
    leafe = read_yaml(TASKS_DIR / TASKS["leafe_mbpp"])["dataset_kwargs"]["leafe"]
    leafe["tasks"] = {"path": "data/mbpp.jsonl"}
    variant(tmp_path / "variants", "leafe_mbpp", "leafe_mbpp_rel", dataset_kwargs={"leafe": leafe})
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        docs = manager(tmp_path / "variants").load(["leafe_mbpp_rel"])["tasks"]["leafe_mbpp_rel"].eval_docs
    finally:
        os.chdir(cwd)
    assert [d["id"] for d in docs] == ["11", "12", "13", "14", "15"]  # task_id 11-510 of the first 15 lines
    # ... a config loaded inline (lm-eval's route for `--tasks FILE.yaml`) has no folder: the path must be absolute
    with pytest.raises(plugin.LeafeEvalError, match="relative.*absolute path"):
        plugin.leafe_dataset(leafe=leafe, config_source="inline")


@pytest.mark.parametrize("name", list(TASKS))
def test_a_task_takes_every_setting_from_its_environment_config(name):
    """Settings are written once, in hydra_conf/env/<env>.yaml: a task YAML names its environment
    and only what differs (its size, a single-turn variant), and the built task carries the rest."""
    from omegaconf import OmegaConf

    from leafe_recipe import CONF_DIR

    leafe = read_yaml(TASKS_DIR / TASKS[name])["dataset_kwargs"]["leafe"]
    assert set(leafe) <= {"env", "n_test", "tasks", "kwargs"}
    assert read_yaml(TASKS_DIR / TASKS[name])["include"] == "../_leafe_template_yaml"
    env = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "env" / f"{leafe['env']}.yaml"), resolve=True)
    spec = plugin.task_spec(leafe, {})
    assert spec["kwargs"] == {**env["kwargs"], **leafe.get("kwargs", {})}
    assert spec["tasks"] == {**env["tasks"], **leafe.get("tasks", {})}
    assert spec["history_window"] == env["history_window"]
    metadata = {"mbpp_path": str(MBPP), "codecontests_path": str(SMALL_CC), "scienceworld": {"n_test": 1}, "alfworld": {"n_test": 1}}
    if "mbpp" in name and not MBPP.exists():
        pytest.skip(f"{MBPP} not found")
    needs_simulator(name)
    task = manager(**metadata).load([name])["tasks"][name]
    assert task.config.generation_kwargs["max_gen_toks"] == env["max_new_tokens"]


def test_metadata_sizes_a_task_down_through_the_real_task():
    """--metadata '{"humaneval": {"repeats": 4, "max_new_tokens": 64}}': fewer samples and tokens
    (the GPU smoke's lm-eval steps) without a task variant."""
    task = manager(humaneval={"repeats": 4, "max_new_tokens": 64}).load(["leafe_humaneval"])["tasks"]["leafe_humaneval"]
    assert task.config.repeats == 4 and task.config.generation_kwargs["max_gen_toks"] == 64
    default = manager().load(["leafe_humaneval"])["tasks"]["leafe_humaneval"]
    assert default.config.repeats == 128 and default.config.generation_kwargs["max_gen_toks"] == 1024


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailable, match=r"(?s)no such file.*--metadata '\{\"mbpp_path\""):
        manager(mbpp_path=str(tmp_path / "nope.jsonl")).load(["leafe_mbpp"])
    with pytest.raises(plugin.LeafeEvalError, match="unknown keys in metadata 'sokoban'"):
        manager(sokoban={"max_steps": 3}).load(["leafe_sokoban"])


# --------------------------------------------------------------------------- #
# Scripted models through the real filter, metrics and aggregation
# --------------------------------------------------------------------------- #

# Correct samples (of n = 4) per MBPP problem 11, 12, 13 in the scripted run.
CORRECT = [0, 1, 4]


def scripted_mbpp(doc, k):
    task = Task.from_json(json.loads(doc["task"]))
    c = CORRECT[int(task.id) - 11]
    return expert_action(task) if k < c else "I do not know."


@NEEDS_MBPP
def test_single_turn_pass_at_k_is_exact_and_logged(tmp_path):
    variant(tmp_path, "leafe_mbpp", "leafe_mbpp_n4", repeats=4)
    results = run(ScriptedLM(scripted_mbpp), ["leafe_mbpp_n4"], manager(tmp_path, mbpp_path=str(MBPP)), limit=3)
    metrics = results["results"]["leafe_mbpp_n4"]
    expected = pass_at_k([4, 4, 4], CORRECT, [1, 2, 4]).mean(axis=0)
    assert expected == pytest.approx([5 / 12, 1 / 2, 2 / 3])
    for k, value in zip([1, 2, 4], expected):
        assert metrics[f"pass@{k},none"] == pytest.approx(value, abs=1e-12)
    assert metrics["correct,none"] == pytest.approx(5 / 12)
    assert metrics["mean_turns,none"] == 1.0
    assert metrics["invalid_action_rate,none"] == pytest.approx(7 / 12)  # the replies without code
    samples = results["samples"]["leafe_mbpp_n4"]
    assert [s["correct"] for s in samples] == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    record = json.loads(samples[1]["filtered_resps"][0][0])
    assert record["success"] and "accepted" in record["final_observation"]
    assert samples[1]["resps"][0][0] == expert_action(Task.from_json(json.loads(samples[1]["doc"]["task"])))


@NEEDS_MBPP
def test_code_task_needs_confirm_run_unsafe_code(tmp_path):
    variant(tmp_path, "leafe_mbpp", "leafe_mbpp_n2", repeats=2)
    with pytest.raises(ValueError, match="leafe_mbpp_n2 which is marked as unsafe.*confirm_run_unsafe_code=True"):
        run(ScriptedLM(scripted_mbpp), ["leafe_mbpp_n2"], manager(tmp_path, mbpp_path=str(MBPP)), limit=1, confirm_run_unsafe_code=False)


@NEEDS_MBPP
def test_k_greater_than_n_is_a_clear_error(tmp_path):
    variant(tmp_path, "leafe_mbpp", "leafe_mbpp_n4", repeats=4)
    tm = manager(tmp_path, mbpp_path=str(MBPP), mbpp={"ks": [1, 8]})
    with pytest.raises(plugin.LeafeEvalError, match=r"k=8 needs at least k samples.*n=4"):
        run(ScriptedLM(scripted_mbpp), ["leafe_mbpp_n4"], tm, limit=1)
    # leafe-agent checks before generating anything
    agent = plugin.LeafeAgent.from_policy(FailingPolicy())
    with pytest.raises(plugin.LeafeEvalError, match=r"k=8 needs at least k samples.*n=4"):
        run(agent, ["leafe_mbpp_n4"], tm, limit=1)


def test_interactive_task_refuses_plain_completions(tmp_path):
    variant(tmp_path, "leafe_sokoban", "leafe_sokoban_n2", repeats=2)
    with pytest.raises(plugin.LeafeEvalError, match="interactive.*--model leafe-agent"):
        run(ScriptedLM(lambda doc, k: "Action: up"), ["leafe_sokoban_n2"], manager(tmp_path), limit=1)


def test_sampling_from_gen_kwargs():
    s = plugin.sampling_from_gen_kwargs(
        {"until": ["\n\n"], "do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "max_gen_toks": 64,
         "repetition_penalty": 1.0, "min_p": 0.0, plugin.AGENT_ONLY_KEY: True}, seed=3)
    assert s == Sampling(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=64, seed=3, stop=("\n\n",))
    assert plugin.sampling_from_gen_kwargs({"do_sample": False, "temperature": 1.0}, 0).temperature == 0.0
    with pytest.raises(plugin.LeafeEvalError, match="repetition_penalty"):
        plugin.sampling_from_gen_kwargs({"repetition_penalty": 1.1}, 0)
    with pytest.raises(plugin.LeafeEvalError, match="num_beams"):
        plugin.sampling_from_gen_kwargs({"num_beams": 4}, 0)


class FailingPolicy:
    def generate(self, conversations, sampling):
        raise AssertionError("must not generate")


class SolverPolicy:
    """Plays the optimal Sokoban plan from the room in the last observation; records each call."""

    def __init__(self):
        self.batch_sizes: list[int] = []

    def generate(self, conversations, sampling):
        self.batch_sizes.append(len(conversations))
        out = []
        for conv in conversations:
            move = solve(grid_of(conv[-1]["content"]))[0]
            out.append(Completion(text=f"Thought: the plan.\nAction: {move}", num_tokens=5, truncated=False))
        return out


def test_leafe_agent_plays_episodes_lock_step(tmp_path):
    variant(tmp_path, "leafe_sokoban", "leafe_sokoban_n3", repeats=3)
    policy = SolverPolicy()
    agent = plugin.LeafeAgent.from_policy(policy)
    results = run(agent, ["leafe_sokoban_n3"], manager(tmp_path, sokoban={"n_test": 4}))
    metrics = results["results"]["leafe_sokoban_n3"]
    assert metrics["pass@1,none"] == metrics["pass@3,none"] == metrics["correct,none"] == 1.0
    assert metrics["invalid_action_rate,none"] == 0.0
    samples = results["samples"]["leafe_sokoban_n3"]
    plans = [json.loads(s["doc"]["task"])["data"]["optimal_len"] for s in samples]
    assert metrics["mean_turns,none"] == pytest.approx(np.mean(plans))
    # lock-step: one generate call per turn carrying every live episode (4 rooms x 3 samples)
    assert len(policy.batch_sizes) == max(plans) and policy.batch_sizes[0] == 12
    # the log carries the actions: replaying them reproduces each episode
    family = get_family("sokoban")
    for s in samples:
        task = Task.from_json(json.loads(s["doc"]["task"]))
        for text in s["filtered_resps"][0]:
            record = json.loads(text)
            env = family.make(**json.loads(s["doc"]["settings"])["kwargs"])
            env.reset(task)
            steps = [env.step(a) for a in record["actions"]]
            assert steps[-1].success == record["success"] and steps[-1].observation == record["final_observation"]


# --------------------------------------------------------------------------- #
# End to end on the tiny model: lm_eval and leafe-eval commands, evaluate_checkpoint
# --------------------------------------------------------------------------- #


def passk_from_log(samples_file: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in samples_file.read_text().splitlines()]
    correct = [s["correct"] for s in lines]
    n = np.array([len(c) for c in correct])
    c = np.array([sum(x) for x in correct])
    ks = ks_up_to(int(n.min()))
    return dict(zip(ks, pass_at_k(n, c, ks).mean(axis=0)))


def check_run(out: Path, task: str) -> dict:
    """The results lm-eval wrote equal Pass@k recomputed with passk from the per-sample log."""
    (results_file,) = out.rglob("results_*.json")
    (samples_file,) = out.rglob(f"samples_{task}_*.jsonl")
    metrics = json.loads(results_file.read_text())["results"][task]
    recomputed = passk_from_log(samples_file)
    assert recomputed
    for k, value in recomputed.items():
        assert metrics[f"pass@{k},none"] == pytest.approx(value, abs=1e-12)
    return metrics


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, tiny_model):
    """Start every command at once (each spends ~15 s indexing lm-eval's tasks), wait for all."""
    root = tmp_path_factory.mktemp("cli")
    variant(root / "variants", "leafe_mbpp", "leafe_mbpp_small", repeats=4)
    sokoban_yaml = variant(root / "by_path", "leafe_sokoban", "leafe_sokoban_small", repeats=3)
    group = root / "group"
    group.mkdir()
    (group / "small.yaml").write_text(yaml.safe_dump({"group": "leafe_small", "task": [{"task": "leafe_sokoban", "repeats": 2}]}))
    sokoban_meta = json.dumps({"sokoban": {"n_test": 2, "kwargs": {"max_steps": 3}}})
    common = ["--gen_kwargs", "max_gen_toks=16", "--log_samples", "--device", "cpu"]
    commands = {
        "hf_mbpp": [
            "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_model},dtype=float32",
            "--include_path", str(root / "variants"), "--tasks", "leafe_mbpp_small", "--limit", "3",
            "--metadata", json.dumps({"mbpp_path": str(MBPP)}), "--confirm_run_unsafe_code",
            "--apply_chat_template", "--batch_size", "12", "--output_path", str(root / "hf_mbpp"), *common,
        ],
        "agent_by_path": [
            "lm_eval", "--model", "leafe-agent", "--model_args", f"backend=hf,pretrained={tiny_model}",
            "--tasks", str(sokoban_yaml), "--metadata", sokoban_meta, "--output_path", str(root / "agent_by_path"), *common,
        ],
        "leafe_eval": [
            "leafe-eval", "--model", "leafe-agent", "--model_args", "backend=hf,pretrained=tiny",
            "--include_path", str(group), "--tasks", "leafe_small", "--metadata", sokoban_meta,
            "--output_path", str(root / "leafe_eval"), *common,
        ],
        "validate": ["lm_eval", "validate", "--include_path", str(TASKS_DIR), "--tasks", ",".join([*TASKS, *GROUPS])],
    }
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    procs = {
        name: subprocess.Popen([str(BIN / cmd[0]), *cmd[1:]], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, cmd in commands.items()
    }
    outputs = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=170)
        outputs[name] = (proc.returncode, out)
    return root, outputs


def _ok(cli_runs, name):
    root, outputs = cli_runs
    code, out = outputs[name]
    assert code == 0, out[-3000:]
    return root / name, out


@pytest.mark.slow
def test_lm_eval_validate_accepts_every_task(cli_runs):
    _, out = _ok(cli_runs, "validate")
    assert "All tasks found and valid" in out


@pytest.mark.slow
@NEEDS_MBPP
def test_lm_eval_hf_single_turn_end_to_end(cli_runs):
    out, _ = _ok(cli_runs, "hf_mbpp")
    metrics = check_run(out, "leafe_mbpp_small")
    assert set(metrics) >= {"pass@1,none", "pass@2,none", "pass@4,none", "correct,none"}
    (samples_file,) = out.rglob("samples_leafe_mbpp_small_*.jsonl")
    lines = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert [s["doc"]["id"] for s in lines] == ["11", "12", "13"]
    assert all(len(s["resps"][0]) == 4 and len(s["correct"]) == 4 for s in lines)
    assert all(json.loads(r)["turns"] == 1 for s in lines for r in s["filtered_resps"][0])


@pytest.mark.slow
def test_lm_eval_leafe_agent_by_yaml_path_end_to_end(cli_runs):
    out, _ = _ok(cli_runs, "agent_by_path")
    metrics = check_run(out, "leafe_sokoban_small")
    (samples_file,) = out.rglob("samples_leafe_sokoban_small_*.jsonl")
    lines = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(lines) == 2 and all(len(s["correct"]) == 3 for s in lines)
    records = [json.loads(r) for s in lines for r in s["filtered_resps"][0]]
    assert metrics["mean_turns,none"] == pytest.approx(np.mean([r["turns"] for r in records]))
    invalid = sum(r["invalid_actions"] for r in records) / sum(r["turns"] for r in records)
    assert metrics["invalid_action_rate,none"] == pytest.approx(invalid)
    family = get_family("sokoban")
    for s in lines:  # the actions in the log replay to the logged outcome
        task = Task.from_json(json.loads(s["doc"]["task"]))
        for r, ok in zip((json.loads(x) for x in s["filtered_resps"][0]), s["correct"]):
            env = family.make(max_steps=3)
            observations = [env.reset(task)]
            steps = [env.step(a) for a in r["actions"]]
            observations += [st.observation for st in steps]
            assert steps[-1].done and steps[-1].success == bool(ok) == r["success"]
            replay(family.make(max_steps=3), task, r["actions"], observations)


@pytest.mark.slow
def test_leafe_eval_has_the_model_and_the_tasks(cli_runs):
    out, text = _ok(cli_runs, "leafe_eval")
    check_run(out, "leafe_sokoban")
    assert "leafe_sokoban" in text and "pass@2" in text


@pytest.mark.slow
def test_evaluate_checkpoint_on_tiny(tmp_path):
    result = plugin.evaluate_checkpoint(
        "tiny", "leafe_sokoban", "hf", n_samples=3, limit=2, gen_kwargs={"max_gen_toks": 16},
        output_path=tmp_path, metadata={"sokoban": {"kwargs": {"max_steps": 3}}},
    )
    summary = result["tasks"]["leafe_sokoban"]
    assert summary["n_tasks"] == 2 and summary["n_samples"] == 3
    assert list(summary["pass_at_k"]) == ["1", "2", "3"]
    recomputed = passk_from_log(next(Path(result["output_path"]).glob("samples_leafe_sokoban_*.jsonl")))
    assert [summary["pass_at_k"][str(k)] for k in recomputed] == pytest.approx(list(recomputed.values()), abs=1e-12)
    assert summary["mean_turns"] == 3.0
    assert result["results"]["configs"]["leafe_sokoban"]["repeats"] == 3


def test_a_checkpoint_is_evaluated_with_the_window_it_was_trained_with(tmp_path, tiny_model):
    import shutil

    from leafe_recipe.manifest import Manifest, write

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_model, checkpoint)
    write(checkpoint, Manifest(prompt={"history_window": 1, "max_new_tokens": 8, "env": "sokoban"}))
    variant(tmp_path / "v", "leafe_sokoban", "leafe_sokoban_n1", repeats=1)
    tm = manager(tmp_path / "v", sokoban={"n_test": 1, "kwargs": {"max_steps": 2}})

    def window_used(agent, tm=tm):
        sample = run(agent, ["leafe_sokoban_n1"], tm, gen_kwargs="max_gen_toks=8")["samples"]["leafe_sokoban_n1"][0]
        record = json.loads(sample["filtered_resps"][0][0])
        return record["history_window"], record["history_window_source"]

    assert window_used(plugin.LeafeAgent(pretrained=str(checkpoint))) == (1, "checkpoint leafe_manifest.json")  # task says 2
    assert window_used(plugin.LeafeAgent(pretrained=str(checkpoint), history_window="3")) == (3, "model_args")
    override = manager(tmp_path / "v", sokoban={"n_test": 1, "kwargs": {"max_steps": 2}, "history_window": None})
    assert window_used(plugin.LeafeAgent(pretrained=str(checkpoint)), override) == (None, "metadata")
    assert window_used(plugin.LeafeAgent(pretrained=tiny_model)) == (2, "task")


@pytest.mark.slow
def test_a_policy_that_already_sampled_is_evaluated_as_a_fresh_one_would_be(tmp_path, tiny_model):
    """The base model after LEAFE's exploration scores what the base cell scores: every sample is
    seeded by its task and repeat index, never by what the policy drew before."""
    from leafe_recipe.policy import Sampling
    from leafe_recipe.policy.hf import HFPolicy

    def episodes(policy, out):
        result = plugin.evaluate_checkpoint(tiny_model, "leafe_sokoban", "leafe-agent", n_samples=3, limit=2, gen_kwargs={"max_gen_toks": 8},
                                            output_path=out, metadata={"sokoban": {"kwargs": {"max_steps": 3}}}, policy=policy)  # fmt: skip
        log = next(Path(result["output_path"]).glob("samples_leafe_sokoban_*.jsonl"))
        return [[json.loads(e)["actions"] for e in r["filtered_resps"][0]] for r in read_jsonl(log)]

    used = HFPolicy(tiny_model)
    used.generate([[{"role": "user", "content": "hi"}]] * 3, Sampling(max_new_tokens=4))
    assert episodes(used, tmp_path / "used") == episodes(HFPolicy(tiny_model), tmp_path / "fresh")
