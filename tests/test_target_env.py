"""A saved target agent stands alone: wrap_target_env builds, from the model file alone, exactly the
observations the run trained on, SB3's evaluate_policy runs on it, a bare env is refused with what to
do, and `rltransfer evaluate` evaluates a model file."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import rltransfer
from rltransfer.cli import main
from rltransfer.envs import get_family
from rltransfer.errors import UserInputError
from rltransfer.records.observation_stats import ObservationStats
from rltransfer.records.target_observation import ObservationRecord
from rltransfer.target_env import read_record, wrap_target_env

TARGET = "very-long-heavy"
CASES = {
    # PPO on the Dict, conditioned by context, observations normalised with the bundle's statistics
    "ppo-dict-normalised": ("ppo", {"conditioning": "context"}, {"normalize": True}, {"n_steps": 64, "batch_size": 64}),
    # DQN on one flat Box (obs, one-hot conditioning, task), not normalised
    "dqn-flat": ("dqn", {"conditioning": "onehot"}, {}, {"learning_starts": 50, "batch_size": 32, "buffer_size": 2000}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def run(request, tmp_path_factory):
    algo, top, agent, hyper = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    cfg = {
        "family": "cartpole", "source_tasks": ["short", "long", "heavy-gravity"], "target_tasks": [TARGET], **top,
        "agent": {"algo": algo, "encoder": {"hidden": [16]}, "trunk": {"vf": [16]} if algo == "dqn" else {"pi": [16], "vf": [16]},
                  "hyperparams": hyper, **agent},
        "pretrain": {"timesteps": 384, "envs_per_task": 1}, "transfer": {"head_init": "nearest"}, "output_dir": str(tmp),
    }  # fmt: skip
    bundle = rltransfer.load_bundle(rltransfer.pretrain(cfg).bundle_path)
    rltransfer.transfer(cfg, bundle, TARGET, "zero_shot", seed=0, timesteps=128, out_dir=tmp / "run")
    return algo, bundle, tmp / "run"


def test_the_wrapped_env_gives_the_observations_the_run_trained_on(run):
    algo, bundle, out = run
    model = (PPO if algo == "ppo" else DQN).load(out / "model.zip", device="cpu")
    reference = rltransfer.make_target_env(bundle, TARGET)  # built from the bundle, as the run was
    wrapped = wrap_target_env(model, get_family("cartpole").make(TARGET))  # from the model file alone
    assert wrapped.observation_space == model.observation_space
    reference.seed(5)
    expected = reference.reset()
    got, _ = wrapped.reset(seed=5)
    for step in range(20):
        if isinstance(got, dict):
            assert sorted(got) == sorted(expected)
            for k in got:
                np.testing.assert_array_equal(got[k], expected[k][0], err_msg=f"{k} at step {step}")
        else:
            np.testing.assert_array_equal(got, expected[0], err_msg=f"step {step}")
        action = step % 2
        expected, _, done, _ = reference.step(np.array([action]))
        got, _, terminated, truncated, _ = wrapped.step(action)
        assert bool(done[0]) == (terminated or truncated)
        if done[0]:
            break


def test_evaluate_policy_runs_on_the_model_file_alone_and_a_bare_env_is_refused(run):
    algo, _, out = run
    model = (PPO if algo == "ppo" else DQN).load(out / "model.zip", device="cpu")
    env = wrap_target_env(out / "model.zip", get_family("cartpole").make(TARGET))
    mean, _ = evaluate_policy(model, env, n_eval_episodes=2, warn=False)
    assert mean > 0
    with pytest.raises(ValueError, match=r"wrap it with rltransfer.wrap_target_env\(model, env\)"):
        evaluate_policy(model, get_family("cartpole").make(TARGET), n_eval_episodes=1, warn=False)


def test_rltransfer_evaluate_on_a_model_file(run, capsys):
    _, _, out = run
    assert main(["evaluate", str(out / "model.zip"), "--episodes", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"{TARGET}: mean return ") and "over 3 episode(s)" in first
    assert main(["evaluate", str(out), "--episodes", "3"]) == 0 and capsys.readouterr().out == first  # seeded
    assert main(["evaluate", str(out), "--target", "medium", "--episodes", "2"]) == 0
    assert capsys.readouterr().out.startswith("medium: mean return ")
    for argv, message in [
        (["evaluate", str(out), "--target", "mediun"], "did you mean 'medium'?"),
        (["evaluate", str(out), "--episodes", "0"], "episodes must be a whole number of at least 1, got 0"),
        (["evaluate", str(out / "nothing.zip")], "no such model file"),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    # A run restored from a publication holds its result, not its agent: said so, and what gives the agent.
    restored = out.parent / "restored-seed-0"
    restored.mkdir()
    (restored / "result.json").write_text("{}")
    for argv, message in [
        (["evaluate", str(restored)], "the run's result is there but not its model.zip (a run restored from a "),
        (["evaluate", str(restored / "model.zip")], "train the run again with 'rltransfer transfer'"),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_a_model_rltransfer_did_not_save_says_so(tmp_path):
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu")
    model.save(tmp_path / "plain.zip")
    with pytest.raises(UserInputError, match="records no target observation layout"):
        wrap_target_env(tmp_path / "plain.zip", get_family("cartpole").make(TARGET))


def test_normalise_is_vecnormalizes_observation_normalisation():
    rng = np.random.default_rng(0)
    mean, var = rng.normal(size=4), rng.uniform(0.1, 3, size=4)
    stats = ObservationStats(key="obs", mean=mean.tolist(), var=var.tolist(), count=100.0, clip_obs=2.0, epsilon=1e-8)
    venv = VecNormalize(DummyVecEnv([lambda: get_family("cartpole").make(TARGET)]), clip_obs=2.0, epsilon=1e-8)
    venv.obs_rms = RunningMeanStd(shape=(4,))
    venv.obs_rms.mean, venv.obs_rms.var = mean, var
    obs = rng.normal(scale=3, size=(7, 4)).astype(np.float32)
    np.testing.assert_allclose(stats.normalise(obs), venv.normalize_obs(obs), rtol=1e-6, atol=1e-6)


def test_an_env_of_other_spaces_is_refused_not_padded(run):
    # Before, any env of shorter observations was zero-padded to the agent's: MountainCar's 2 ran a
    # CartPole agent without a word. Only a task of a family whose tasks' spaces differ is padded.
    _, _, out = run
    with pytest.raises(UserInputError, match=r"observation space Box\(.*\(2,\).* is not the one the agent was trained"):
        wrap_target_env(out / "model.zip", gym.make("MountainCar-v0"))
    with pytest.raises(UserInputError, match=r"name it: wrap_target_env\(model, env, task=\.\.\.\)"):
        wrap_target_env(out / "model.zip", gym.make("Acrobot-v1"))


def test_evaluating_on_another_task_gives_the_agent_that_tasks_conditioning(run, monkeypatch):
    # `rltransfer evaluate --target medium` told a context-conditioned agent it was on its own target.
    algo, _, out = run
    import rltransfer.target_env as target_env

    seen = []
    original = target_env.wrap_target_env
    monkeypatch.setattr(target_env, "wrap_target_env", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    target_env.evaluate(out, "medium", episodes=1)
    model = (PPO if algo == "ppo" else DQN).load(out / "model.zip", device="cpu")
    medium = original(model, get_family("cartpole").make("medium"), task="medium")
    own = original(model, get_family("cartpole").make("medium"))
    got, expected, target = (env.reset(seed=0)[0] for env in (seen[0], medium, own))
    if isinstance(got, dict):
        np.testing.assert_array_equal(got["context"], expected["context"])
        assert not np.array_equal(got["context"], target["context"])
    else:  # one-hot conditioning: the target is no source, as medium is not
        np.testing.assert_array_equal(got, expected)


def test_an_env_made_from_the_familys_gymnasium_id_says_its_task(run):
    """An env of the family's Gymnasium id knows its task: the agent gets that task's conditioning without
    task= (given a bare env of the agent's spaces, the agent would be told it is on its own target)."""
    algo, _, out = run
    model = (PPO if algo == "ppo" else DQN).load(out / "model.zip", device="cpu")
    family = get_family("cartpole")
    by_name = wrap_target_env(model, family.make("medium"), task="medium")
    for made in (
        gym.make("rltransfer/cartpole-v0", task="medium"),
        Monitor(gym.make("rltransfer/cartpole-v0", task="medium")),
    ):
        got, expected = wrap_target_env(model, made).reset(seed=0)[0], by_name.reset(seed=0)[0]
        for key in got if isinstance(got, dict) else [None]:
            np.testing.assert_array_equal(got[key] if key else got, expected[key] if key else expected)
    medium = family.task("medium").params
    params = gym.make("rltransfer/cartpole-v0", length=medium["length"], gravity=medium["gravity"])
    by_params = wrap_target_env(model, family.make(dict(medium)), task=dict(medium)).reset(seed=0)[0]
    got = wrap_target_env(model, params).reset(seed=0)[0]
    if isinstance(got, dict):
        np.testing.assert_array_equal(got["context"], by_params["context"])
    assert wrap_target_env(model, gym.make("rltransfer/cartpole-v0", task="medium"), task="medium")  # the same: taken
    with pytest.raises(UserInputError, match=r"task='short', but the env was made for another task .*\('medium', by "):
        wrap_target_env(model, gym.make("rltransfer/cartpole-v0", task="medium"), task="short")
    with pytest.raises(UserInputError, match=r"the env is rltransfer/acrobot-v0's, a task of another family"):
        wrap_target_env(model, gym.make("rltransfer/acrobot-v0"))


@pytest.mark.parametrize("normalize", [False, True])
def test_a_model_a_callback_saves_during_training_wraps_or_says_why_not(tmp_path, normalize):
    """A checkpoint (SB3's CheckpointCallback, EvalCallback's best model) lacked the observation record, set only
    when the run finished: wrap_target_env called it "not a target agent rltransfer saved"."""
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.monitor import Monitor

    cfg = {
        "family": "cartpole", "source_tasks": ["short", "long"], "target_tasks": [TARGET], "output_dir": str(tmp_path),
        "agent": {"encoder": {"hidden": [16]}, "trunk": {"pi": [16], "vf": [16]}, "normalize": normalize,
                  "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "pretrain": {"timesteps": 128, "envs_per_task": 1},
    }  # fmt: skip
    bundle = rltransfer.pretrain(cfg).bundle_path
    checkpoints = CheckpointCallback(save_freq=1, save_path=str(tmp_path / "ck"))
    run = rltransfer.transfer(
        cfg, bundle, TARGET, "finetune", timesteps=64, out_dir=tmp_path / "run", callbacks=checkpoints
    )
    first = sorted((tmp_path / "ck").glob("*.zip"))[0]
    env = get_family("cartpole").make(TARGET)
    final = wrap_target_env(tmp_path / "run" / "model.zip", env)
    if not normalize:  # its observations are built as the final model's
        checkpoint = wrap_target_env(first, Monitor(get_family("cartpole").make(TARGET)))
        np.testing.assert_array_equal(checkpoint.reset(seed=3)[0]["obs"], final.reset(seed=3)[0]["obs"])
        assert evaluate_policy(PPO.load(first), checkpoint, n_eval_episodes=1)[0] > 0
    else:  # the statistics it acted with are not in it: said, not guessed
        with pytest.raises(UserInputError, match="saved during its training .* while training still adapted"):
            wrap_target_env(first, env)
    assert run.model.target_observation["normalization"] != "adapting"  # the final model's: its statistics


def test_a_saved_models_observation_record_is_typed_and_a_damaged_one_is_named(run, tmp_path, capsys):
    """A target agent's record (how its observations are built) reads back as its type, field for field as saved
    (its JSON object, readable without rltransfer); one with a field missing or of the wrong kind is refused
    naming the field, from Python and from ``rltransfer evaluate`` (exit 2), where a KeyError or a wrong
    observation followed."""
    algo, bundle, out = run
    record, _, _ = read_record(out / "model.zip")
    model = (PPO if algo == "ppo" else DQN).load(out / "model.zip", device="cpu")
    assert isinstance(record, ObservationRecord) and record.to_json() == model.target_observation
    assert record.family == "cartpole" and record.algo == algo and record.source_tasks == list(bundle.task_names)
    assert isinstance(record.normalization, ObservationStats) == (bundle.manifest.obs_normalization is not None)
    for damage, field in [({"entries": None}, "entries"), ({"target": {"name": TARGET}}, "target.params")]:
        setattr(model, rltransfer.target_env.RECORD, {**model.target_observation, **damage})
        model.save(tmp_path / "damaged.zip")
        said = f"records a target observation layout that rltransfer cannot read \\({field}: "
        with pytest.raises(UserInputError, match=said):
            wrap_target_env(tmp_path / "damaged.zip", get_family("cartpole").make(TARGET))
        assert main(["evaluate", str(tmp_path / "damaged.zip")]) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_a_model_of_a_family_not_registered_here_says_how_to_make_it_known(run, tmp_path, capsys):
    """A family registered from Python is unknown to a process that has not imported its module: the refusal
    named the known families only (and wrap_target_env(task=...) raised a TaskError, unlike the rest)."""
    algo, _, out = run
    model = (PPO if algo == "ppo" else DQN).load(out / "model.zip", device="cpu")
    setattr(model, rltransfer.target_env.RECORD, {**model.target_observation, "family": "my-family"})
    model.save(tmp_path / "mine.zip")
    said = r"unknown family 'my-family'.*known once the module that registers it is imported.*rltransfer --import"
    with pytest.raises(UserInputError, match=said):
        wrap_target_env(tmp_path / "mine.zip", get_family("cartpole").make("medium"), task="medium")
    assert main(["evaluate", str(tmp_path / "mine.zip")]) == 2
    assert "a config's 'imports: [MODULE]', 'rltransfer --import MODULE ...'" in capsys.readouterr().err
