import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils.env_checker import check_env

from rltransfer.envs import Family, Parameter, TaskError, get_family, list_families, register_family

SHIPPED = ["acrobot", "cartpole", "lunarlander", "lunarlander-continuous", "minigrid", "mountaincar", "pendulum"]


def textbook_cartpole_step(state, force, g, mc, mp, l, tau=0.02):
    """Florian (2005) cart-pole equations with explicit Euler, written from the paper."""
    x, x_dot, th, th_dot = state
    total = mc + mp
    th_acc = (g * math.sin(th) + math.cos(th) * (-force - mp * l * th_dot**2 * math.sin(th)) / total) / (
        l * (4.0 / 3.0 - mp * math.cos(th) ** 2 / total)
    )
    x_acc = (force + mp * l * (th_dot**2 * math.sin(th) - th_acc * math.cos(th))) / total
    return np.array([x + tau * x_dot, x_dot + tau * x_acc, th + tau * th_dot, th_dot + tau * th_acc])


def test_shipped_families_listed():
    assert set(SHIPPED) <= set(list_families())


def test_cartpole_step_matches_textbook_equations_with_new_parameters():
    fam = get_family("cartpole")
    params = {"length": 1.3, "masspole": 0.35, "masscart": 2.0, "gravity": 15.0, "force_mag": 17.0}
    env = fam.make(params)
    env.reset(seed=3)
    cp = env.unwrapped
    assert cp.total_mass == pytest.approx(2.35) and cp.polemass_length == pytest.approx(0.35 * 1.3)
    cp.state = np.array([0.1, -0.2, 0.05, 0.3])
    for action, force in [(1, 17.0), (0, -17.0), (1, 17.0)]:
        expected = textbook_cartpole_step(cp.state, force, 15.0, 2.0, 0.35, 1.3)
        obs, *_ = env.step(action)
        np.testing.assert_allclose(cp.state, expected, rtol=1e-12)
        np.testing.assert_allclose(obs, expected.astype(np.float32), rtol=1e-6)


def test_tasks_live_side_by_side_without_class_or_module_state():
    fam = get_family("cartpole")
    a, b = fam.make("default"), fam.make({"length": 2.0, "gravity": 18.0})
    # Gymnasium's defaults are untouched by building a modified task.
    fresh = CartPoleEnv()
    assert (fresh.length, fresh.gravity, fresh.polemass_length) == (0.5, 9.8, 0.05)
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(5):
        oa, *_ = a.step(1)
        ob, *_ = b.step(1)
    assert not np.allclose(oa, ob)
    acro = get_family("acrobot").make({"link_length_1": 1.8, "link_mass_2": 2.5})
    assert acro.unwrapped.LINK_LENGTH_1 == 1.8
    assert AcrobotEnv.LINK_LENGTH_1 == 1.0 and AcrobotEnv.LINK_MASS_2 == 1.0 and AcrobotEnv.LINK_MOI == 1.0
    assert AcrobotEnv().LINK_COM_POS_1 == 0.5


def test_lunarlander_gravity_differs_in_one_process():
    fam = get_family("lunarlander")
    moon, heavy = fam.make({"gravity": -2.0}), fam.make({"gravity": -11.5})
    moon.reset(seed=1)
    heavy.reset(seed=1)
    for _ in range(30):  # interleaved: both worlds alive at once, engines off
        om, *_ = moon.step(0)
        oh, *_ = heavy.step(0)
    # obs[3] is the vertical velocity: the heavy lander falls much faster.
    assert oh[3] < om[3] - 0.3
    assert moon.unwrapped.world.gravity[1] == pytest.approx(-2.0)
    assert heavy.unwrapped.world.gravity[1] == pytest.approx(-11.5)


def test_pendulum_and_mountaincar_parameters_change_dynamics():
    pend = get_family("pendulum")
    a, b = pend.make("default"), pend.make({"m": 1.5, "l": 1.2, "g": 12.0})
    a.reset(seed=2)
    b.reset(seed=2)
    u = np.ones(1, np.float32)
    assert not np.allclose(a.step(u)[0], b.step(u)[0])
    mc = get_family("mountaincar")
    c, d = mc.make("default"), mc.make({"force": 0.002})
    c.reset(seed=4)
    d.reset(seed=4)
    assert d.step(2)[0][1] > c.step(2)[0][1]


@pytest.mark.parametrize("family", SHIPPED)
def test_every_task_passes_env_checker(family):
    fam = get_family(family)
    for name in fam.tasks:
        env = fam.make(name)
        check_env(env.unwrapped, skip_render_check=True)  # the physics
        check_env(env, skip_render_check=True)  # what agents see (wrappers included)
        env.close()


def test_unknown_and_out_of_range_parameters_are_named():
    fam = get_family("cartpole")
    with pytest.raises(TaskError, match=r"'length'=5.0 is out of range \[0.1, 3.0\]"):
        fam.make({"length": 5.0})
    with pytest.raises(TaskError, match="unknown parameter 'pole'.*length, masspole"):
        fam.make({"pole": 1.0})
    with pytest.raises(TaskError, match="^unknown task 'nope' in family 'cartpole'; known tasks"):
        fam.make("nope")  # from the API the error starts with what is wrong (it read "task: unknown task")
    with pytest.raises(TaskError, match="^target_tasks: unknown task 'nope'"):
        fam.task("nope", where="target_tasks")
    with pytest.raises(TaskError, match="finite number"):
        fam.task({"length": float("nan")})
    # A range given upside down was told as the default being outside it.
    with pytest.raises(TaskError, match=r"'force': range \[0.002, 0.0005\] has its low end above its high end"):
        Parameter("force", 0.001, 0.002, 0.0005)
    with pytest.raises(TaskError, match=r"'force': default 0.01 outside its range \[0.0005, 0.002\]"):
        Parameter("force", 0.01, 0.0005, 0.002)


def test_context_is_parameters_normalised_to_ranges():
    fam = get_family("cartpole")
    ctx = fam.context({"length": 3.0, "gravity": 2.0})
    names = list(fam.parameters)
    assert ctx[names.index("length")] == pytest.approx(1.0)
    assert ctx[names.index("gravity")] == pytest.approx(-1.0)
    p = fam.parameters["masscart"]
    assert ctx[names.index("masscart")] == pytest.approx(2 * (1.0 - p.low) / (p.high - p.low) - 1)


def test_the_nearest_task_is_by_context_the_first_of_equally_near_ones():
    family = get_family("classic")  # contexts: cartpole [-1, -0.5], cartpole-mid [-1, 0.25], cartpole-long [-1, 1]
    sources = ["cartpole", "cartpole-long", "acrobot-short"]  # acrobot-short [0, -1], mountaincar [1, -0.5]
    assert family.nearest("cartpole-mid", sources) == 0  # 0.75 from each cartpole: the first
    assert family.nearest("cartpole-mid", sources[::-1]) == 1  # cartpole-long, first of the two now
    assert family.nearest("mountaincar", sources) == 2  # 1.12 from acrobot-short, 2 from cartpole
    assert family.nearest({"env": 0.0, "scale": 1.5}, sources) == 1


def test_sampled_tasks_are_reproducible_and_in_range():
    fam = get_family("acrobot")
    a, b = fam.sample_tasks(5, seed=7), fam.sample_tasks(5, seed=7)
    assert [t.params for t in a] == [t.params for t in b]
    assert a[0].params != fam.sample_tasks(1, seed=8)[0].params
    for t in a:
        for k, v in t.params.items():
            assert fam.parameters[k].low <= v <= fam.parameters[k].high


def test_splits_labelled_and_inferred():
    fam = get_family("cartpole")
    assert fam.target_tasks["very-long-heavy"] == "extrapolation"
    assert fam.split_of("medium") == "interpolation"
    assert fam.split_of("short") == "source"
    assert fam.split_of({"length": 0.4}, ["short", "long"]) == "interpolation"
    assert fam.split_of({"length": 2.0}, ["short", "long"]) == "extrapolation"


def test_reward_thresholds():
    assert get_family("cartpole").reward_threshold() == 475.0
    assert get_family("pendulum").reward_threshold() == -200.0  # family-defined: Gymnasium has none
    assert get_family("lunarlander").reward_threshold() == 200.0


def test_user_defined_family_in_a_few_lines():
    def build(p):
        env = gym.make("MountainCar-v0")
        env.unwrapped.force = p["force"]
        return env

    fam = register_family(
        Family(
            name="test-user-mc",
            parameters=[Parameter("force", 0.001, 0.0005, 0.002)],
            build=build,
            tasks={"weak": {"force": 0.0008}, "strong": {"force": 0.0015}, "x": {"force": 0.0019}},
            source=["weak", "strong"],
            targets=["x"],
        ),
        overwrite=True,
    )
    assert "test-user-mc" in list_families()
    assert get_family("test-user-mc") is fam
    assert fam.target_tasks == {"x": "extrapolation"}
    assert fam.make("x").unwrapped.force == 0.0019
    with pytest.raises(TaskError, match="already registered"):
        register_family(fam)


def test_integer_parameters_refuse_fractions_and_sample_whole_numbers():
    fam = get_family("minigrid")
    with pytest.raises(TaskError, match="'layout' must be a whole number"):
        fam.make({"layout": 1.5})
    for t in fam.sample_tasks(6, seed=0):
        assert all(float(v).is_integer() for v in t.params.values())
    assert fam.make("doorkey-8").unwrapped.width == 8


def test_minigrid_views_are_channels_first_codes():
    env = get_family("minigrid").make("lavagap-5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 7, 7) and obs.dtype == np.float32 and 9.0 in obs  # lava's code


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "", ".", "..", " padded"])
def test_a_name_that_becomes_a_directory_is_one_directory_name(name):
    """A task's runs, a strategy's and an experiment's live in directories of their names: ``..`` as a target
    wrote its runs outside the experiment's ``runs/``, ``a/b`` nested them."""
    from rltransfer.config import is_one_name
    from rltransfer.strategies import register_strategy

    assert not is_one_name(name)
    p = Parameter("force", default=1.0, low=0.5, high=2.0)
    with pytest.raises(TaskError, match="task name .*: expected one directory name"):
        Family("f", [p], lambda _: gym.make("CartPole-v1"), {"a": {}, name: {"force": 2.0}}, ["a"], [name])
    with pytest.raises(TaskError, match="parameter name .*: expected one directory name"):
        Parameter(name, default=1.0, low=0.5, high=2.0)
    with pytest.raises(ValueError, match="strategy name .*: its runs' directory is named after it"):
        register_strategy(name)
    ok = Family("f", [p], lambda _: gym.make("CartPole-v1"), {"a": {}, "far-2": {"force": 2.0}}, ["a"], ["far-2"])
    assert is_one_name("far-2") and ok.task({"name": "far-2b", "force": 1.5}).name == "far-2b"
    with pytest.raises(TaskError, match="task name .*: expected one directory name"):
        ok.task({"name": name, "force": 1.5})
