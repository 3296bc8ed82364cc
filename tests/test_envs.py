"""The paper's agentic environments behind the protocol: ScienceWorld (its real simulator, Java),
ALFWorld (real games from ../shared/data/alfworld), WebShop (its parsing and rendering on pages
in WebShop's format, and the environment end to end on a stand-in store: WebShop itself cannot
be installed offline), the lazy registry, and replay determinism for every family."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from leafe_recipe.envs.base import EnvUnavailable, env_config, get_family, known_families, replay
from leafe_recipe.envs.pool import expert_trajectory
from leafe_recipe.envs.pool import EnvPool

ALFWORLD_DATA = SHARED_DATA / "alfworld"
STAND_INS = Path(__file__).parent / "stand_ins"


def needs(module: str):
    import importlib.util

    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed (make setup installs it)")


NEEDS_JAVA = pytest.mark.skipif(shutil.which("java") is None, reason="ScienceWorld needs Java, which is absent here")
NEEDS_ALFWORLD_DATA = pytest.mark.skipif(not ALFWORLD_DATA.exists(), reason=f"{ALFWORLD_DATA} not found (set LEAFE_SHARED_DATA)")


# --- the registry ---------------------------------------------------------------------------


def test_importing_the_package_starts_no_simulator_and_imports_no_family():
    code = (
        "import sys; from leafe_recipe.envs.base import get_family; get_family('sokoban'); "
        "print(sorted(m for m in sys.modules if m.startswith('leafe_recipe.envs') or m in "
        "('leafe_recipe.sandbox', 'scienceworld', 'textworld')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['leafe_recipe.envs', 'leafe_recipe.envs.base', 'leafe_recipe.envs.sokoban']"


def test_a_missing_simulator_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scienceworld", None)  # an import of it now fails
    with pytest.raises(EnvUnavailable, match=r"needs 'scienceworld'.*pip install -e '\.\[scienceworld\]'"):
        get_family("scienceworld").make().reset(get_family("sokoban").tasks("test", 1)[0])


def test_every_built_in_family_has_an_env_config_and_an_lm_eval_task():
    from leafe_recipe import TASKS_DIR

    for name in known_families():
        if name in ("choice",):  # the tests' own family
            continue
        assert get_family(name).name == name and env_config(name)["module"].startswith("leafe_recipe.envs.")
        assert env_config(name)["eval_task"] == f"leafe_{name}" or name in ("codecontests",)
    for task in ("leafe_scienceworld", "leafe_alfworld", "leafe_webshop"):
        assert (TASKS_DIR / task / f"{task}.yaml").exists()


# --- ScienceWorld -----------------------------------------------------------------------------


def test_the_scienceworld_canonicaliser_ignores_listing_order_and_readings_only():
    from leafe_recipe.envs.scienceworld import canonical

    a = "This room is called the kitchen. In it, you see:\n\tthe agent\n\ta fridge (containing milk, an apple)\n\ta thermometer, currently reading a temperature of 18 degrees celsius\nYou also see: A door to the hallway, A door to the outside"
    b = "This room is called the kitchen. In it, you see:\n\ta thermometer, currently reading a temperature of 19 degrees celsius\n\tthe agent\n\ta fridge (containing an apple, milk)\nYou also see: A door to the outside, A door to the hallway"
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical(a.replace("kitchen", "bathroom"))
    assert canonical(a) != canonical(a.replace("milk", "juice"))


@needs("scienceworld")
@NEEDS_JAVA
@pytest.mark.slow
def test_scienceworld_splits_gold_path_and_replay_in_a_fresh_simulator():
    family = get_family("scienceworld")
    assert [len(family.tasks(s, None)) for s in ("train", "validation", "test")] == [3592, 1796, 1819]
    tasks = family.tasks("test", 30)
    assert len({t.data["task"] for t in tasks}) == 30  # round-robin: every task once
    task = next(t for t in tasks if t.data["task"] == "find-living-thing")
    observations, actions = expert_trajectory(family, {"max_steps": 100}, task)  # the simulator's gold path
    assert "Your task is to" in observations[0] and "Commands you can use" in observations[0]
    with EnvPool(family, {"max_steps": 100}) as pool:  # a worker process, another JVM
        env = pool.acquire()
        replay(env, task, actions, observations, family.canonical)
        assert env.valid_actions() and all(a.startswith("Action: ") for a in env.valid_actions())
    step = family.make(max_steps=2)
    step.reset(task)
    assert step.step("no action here").info["invalid"] and step.step("Action: look around").done
    step.close()


# --- ALFWorld -----------------------------------------------------------------------------------


@pytest.fixture
def alfworld_data(monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", str(ALFWORLD_DATA))


@needs("textworld")
@NEEDS_ALFWORLD_DATA
def test_alfworld_splits_and_task_types(alfworld_data):
    from leafe_recipe.envs.alfworld import TASK_TYPES

    family = get_family("alfworld")
    test, train, validation = (family.tasks(s, None) for s in ("test", "train", "validation"))
    # offline: the 140 seen games are carved by content into train and validation (a fifth by fingerprint)
    assert (len(test), len(train) + len(validation)) == (134, 140) and 20 <= len(validation) <= 40
    assert [t.data["group"] for t in test[:6]] == list(TASK_TYPES)  # round-robin over the six types
    assert {t.data["split"] for t in train + validation} == {"valid_seen"}
    games = [{family.fingerprint(t)["game"] for t in split} for split in (test, train, validation)]
    assert not games[0] & games[1] and not games[0] & games[2] and not games[1] & games[2]


@needs("textworld")
@NEEDS_ALFWORLD_DATA
@pytest.mark.slow
def test_alfworld_expert_wins_and_replays_exactly_in_a_worker_process(alfworld_data):
    family = get_family("alfworld")
    argv = list(sys.argv)
    for task in family.tasks("test", 2):
        observations, actions = expert_trajectory(family, {"max_steps": 50}, task)
        assert "Your task is to:" in observations[0] and "Admissible commands:" in observations[0]
        with EnvPool(family, {"max_steps": 50}) as pool:
            replay(pool.acquire(), task, actions, observations)  # exactly: no canonicaliser
    assert sys.argv == argv  # TextWorld's loader overwrites it; the environment puts it back
    env = family.make(max_steps=1)
    env.reset(family.tasks("test", 1)[0])
    step = env.step("Action: fly to the moon")
    assert step.info["invalid"] and step.done and not step.success and "Nothing happens" in step.observation


# --- WebShop ------------------------------------------------------------------------------------


SEARCH_PAGE = "WebShop [SEP] Instruction: [SEP] i need a long lasting 6.76 fl oz bottle of l'eau d'issey, and price lower than 100.00 dollars [SEP] Search"
ITEM_PAGE = (
    "Instruction: [SEP] i need a long lasting 6.76 fl oz bottle of l'eau d'issey, and price lower than 100.00 dollars [SEP] "
    "Back to Search [SEP] < Prev [SEP] size [SEP] 2.5 fl oz [SEP] 6.76 fl oz (pack of 1) [SEP] L'eau D'issey By Issey "
    "Miyake for MenEau De Toilette Spray, 6.7 Fl Oz Bottle [SEP] Price: $64.98 [SEP] Rating: N.A. [SEP] Description "
    "[SEP] Features [SEP] Reviews [SEP] Buy Now"
)


def test_webshop_actions_are_read_from_react_answers():
    from leafe_recipe.envs.webshop import parse_action

    assert parse_action("Thought: search first.\nAction: search[l'eau d'issey 6.76 fl oz]") == "search[l'eau d'issey 6.76 fl oz]"
    assert parse_action("Thought: that one.\nAction: click[B000VOHH8I]") == "click[b000vohh8i]"
    assert parse_action("I could click[Back to Search] but Action: click[Buy Now]") == "click[buy now]"
    assert parse_action("Action: buy it") is None and parse_action("Action: search[]") is None


def test_webshop_pages_render_one_part_per_line_with_the_available_actions():
    from leafe_recipe.envs.webshop import available, render

    actions = available({"has_search_bar": False, "clickables": ["back to search", "< prev", "2.5 fl oz", "6.76 fl oz (pack of 1)", "buy now"]})
    text = render(ITEM_PAGE, actions, 12)
    assert text.splitlines()[:3] == ["Instruction:", "i need a long lasting 6.76 fl oz bottle of l'eau d'issey, and price lower than 100.00 dollars", "Back to Search"]
    assert "Available actions:\nclick[back to search]\nclick[< prev]\nclick[2.5 fl oz]" in text and text.endswith("Steps left: 12")
    assert available({"has_search_bar": True, "clickables": ["search"]}) == ["search[<your query>]", "click[search]"]
    assert render(SEARCH_PAGE, ["search[<your query>]"], 15).splitlines()[0] == "WebShop"


def test_without_webshop_installed_the_environment_says_how_to_install_it():
    with pytest.raises(EnvUnavailable, match=r"WebShop is not installed here.*setup.sh.*env.kwargs.root"):
        get_family("webshop").tasks("test", 1)


@pytest.fixture
def stand_in_store(monkeypatch):
    monkeypatch.syspath_prepend(str(STAND_INS))
    import leafe_recipe.envs.webshop as webshop

    monkeypatch.setattr(webshop, "_SERVERS", {})
    yield webshop
    for name in [m for m in sys.modules if m.startswith("web_agent_site")]:
        del sys.modules[name]


def test_webshop_episodes_on_a_stand_in_store(stand_in_store):
    family = get_family("webshop")
    assert [t.id for t in family.tasks("test", 2)] == ["test-0", "test-1"] and len(family.tasks("validation", None)) == 1000
    task = family.tasks("test", 1)[0]
    env = family.make()
    first = env.reset(task)
    assert "i need a lemon scented candle in an 8 oz jar" in first and "search[<your query>]" in first
    moves = ["Action: search[lemon candle]", "Action: click[B000AAA001]", "Action: click[8 oz]", "Action: click[buy now]"]
    observations, steps = [first], []
    for move in moves:
        steps.append(env.step(move))
        observations.append(steps[-1].observation)
    assert [s.done for s in steps] == [False, False, False, True] and steps[-1].success and steps[-1].reward == 1.0
    assert "Invalid action: click[buy now] is not available" in _fresh(family, task).step("Action: click[buy now]").observation
    replay(family.make(), task, moves, observations)  # exact: the seeded store answers the same
    again = family.make()  # a second browser on the process's one store
    again.reset(task)
    assert again.step(moves[0]).observation == observations[1]


def _fresh(family, task):
    env = family.make()
    env.reset(task)
    return env


# --- replay determinism for every family ---------------------------------------------------------


def test_sokoban_and_coding_replay_exactly():
    for name, kwargs in (("sokoban", {"max_steps": 12}), ("humaneval", {"max_turns": 1})):
        family = get_family(name)
        task = family.tasks("test", 1)[0]
        observations, actions = expert_trajectory(family, kwargs, task)
        replay(family.make(**kwargs), task, actions, observations)
