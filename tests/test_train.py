"""Training (smoke size): presets, determinism, checkpoints, resume, divergence."""

import dataclasses

import pytest
import torch

import mfbook
from mfbook import checkpoint as ckpt_mod
from mfbook.train import (
    PRESETS,
    TrainConfig,
    TrainingDiverged,
    all_finite,
    build_model,
    model_from_checkpoint,
    preset,
    resolve_device,
    train,
)

SMOKE = preset("smoke").replace(epochs=2, n_train=1000, n_test=500)


def strip_time(history):
    return {k: v for k, v in history.items() if k != "seconds"}


def test_paper_preset_is_the_reference_protocol():
    p = preset("paper")
    assert p.method == "gbp" and p.sizes == (784, 100, 100, 10)
    assert (p.n_train, p.n_test, p.batch_size, p.epochs) == (10_000, None, 500, 200)
    assert (p.lr, p.lr_halve_every, p.weight_decay) == (0.1, 20, 1e-4)
    assert p.reset_adam_each_epoch and p.adam_betas == (0.9, 0.999) and p.adam_eps == 1e-8
    assert (p.m_var, p.xi_max, p.pi_init) == (2 / 784, 0.01, 0.0)
    bp = preset("paper_bp")
    assert bp.method == "bp"
    same = {f.name for f in dataclasses.fields(TrainConfig)} - {"name", "method", "notes"}
    assert all(getattr(bp, k) == getattr(p, k) for k in same)
    assert preset("full").n_train is None
    assert set(PRESETS) == {"paper", "paper_bp", "paper_2022", "full", "smoke"}
    assert not p.decay_pi and p.dtype == "float32"


def test_schedule_steps_and_decay_factor():
    c = preset("paper")
    assert [c.lr_at(e) for e in (0, 19, 20, 199)] == [0.1, 0.1, 0.05, 0.1 * 0.5**9]
    assert c.steps_per_epoch() == 20 and c.steps_per_epoch(10_001) == 21
    by_step = 1.0
    for e in range(c.epochs):
        for _ in range(c.steps_per_epoch()):
            by_step *= 1 - c.lr_at(e) * c.weight_decay
    assert c.decay_factor() == pytest.approx(by_step, rel=1e-12)
    assert 0.99 < c.decay_factor() < 1
    assert c.replace(weight_decay=0).decay_factor() == 1
    with pytest.raises(ValueError, match="n_images"):
        preset("full").steps_per_epoch()
    assert preset("full").steps_per_epoch(60_000) == 120


def test_smoke_training_learns_and_records_every_error():
    r = train(SMOKE.replace(epochs=3), device="cpu", progress=False, seed=0)
    h = r.history
    assert h["epoch"] == [1, 2, 3]
    for key in ("train_loss", "test_error_mean", "test_error_mf", "test_error_sample"):
        assert len(h[key]) == 3
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["test_error_mean"][-1] < 0.5  # chance is 0.9
    assert all(0 <= e <= 1 for e in h["test_error_sample"])
    for ss in r.model.spike_slabs():  # projection held after every step
        assert float(ss.pi.min()) >= 0 and float(ss.pi.max()) <= 1 and float(ss.xi.min()) >= 0


def test_plain_backprop_preset_trains_the_plain_network():
    r = train(SMOKE.replace(method="bp"), device="cpu", progress=False, seed=0)
    assert set(r.history) == {"epoch", "lr", "train_loss", "test_error_mean", "seconds"}
    assert r.history["test_error_mean"][-1] < 0.6


def test_same_seed_is_bit_identical_and_another_seed_differs():
    a = train(SMOKE, device="cpu", progress=False, seed=3)
    b = train(SMOKE, device="cpu", progress=False, seed=3)
    c = train(SMOKE, device="cpu", progress=False, seed=4)
    assert strip_time(a.history) == strip_time(b.history)
    assert all(
        torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )
    assert not torch.equal(a.model.layers[0].m, c.model.layers[0].m)


def test_interrupted_run_resumes_bit_identically(tmp_path):
    full = train(SMOKE.replace(epochs=3), device="cpu", progress=False, seed=1)

    def stop_after_two(model, row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    cfg = SMOKE.replace(epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, device="cpu", progress=False, seed=1, checkpoint=path, callback=stop_after_two)
    assert ckpt_mod.load_checkpoint(path)["epoch"] == 2
    resumed = train(cfg, device="cpu", progress=False, seed=1, checkpoint=path)
    assert strip_time(resumed.history) == strip_time(full.history)
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)
    again = model_from_checkpoint(path)
    assert again.config == cfg and again.history["epoch"] == [1, 2, 3]
    assert torch.equal(again.model.layers[0].pi, full.model.layers[0].pi)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    train(SMOKE.replace(epochs=1), device="cpu", progress=False, seed=0, checkpoint=path)
    with pytest.raises(ValueError, match="another configuration"):
        train(SMOKE.replace(epochs=1, lr=0.5), device="cpu", progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="seed 0, expected 5"):
        train(SMOKE.replace(epochs=1), device="cpu", progress=False, seed=5, checkpoint=path)


def _minimal_state():
    return dict(
        model={"w": torch.ones(2)},
        config={"name": "x", "epochs": 1},
        seed=0,
        epoch=1,
        history={},
        order_gen=torch.Generator().get_state(),
        noise_gen=torch.Generator().get_state(),
        device_type="cpu",
        kernels=False,
    )


def test_corrupted_and_foreign_checkpoints_give_clear_errors(tmp_path, monkeypatch):
    path = ckpt_mod.save_checkpoint(tmp_path / "c.pt", **_minimal_state())
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted"):
        ckpt_mod.load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an mfbook checkpoint"):
        ckpt_mod.load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        ckpt_mod.load_checkpoint(tmp_path / "missing.pt")
    monkeypatch.setattr(mfbook, "__version__", "9.0.0")
    with pytest.raises(ValueError, match="written by mfbook 0.1"):
        ckpt_mod.load_checkpoint(path)


def test_checkpoint_load_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    torch.save({"format": "mfbook-checkpoint", "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="corrupted or not a checkpoint"):
        ckpt_mod.load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = ckpt_mod.save_checkpoint(tmp_path / "c.pt", **_minimal_state())
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt_mod.save_checkpoint(path, **_minimal_state())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_divergence_stops_with_the_epoch(tmp_path):
    cfg = SMOKE.replace(lr=1e30, epochs=3)
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1, step 1 "):
        train(cfg, device="cpu", progress=False, checkpoint=tmp_path / "d.pt")
    assert not (tmp_path / "d.pt").exists()  # nothing bad was saved


def test_divergence_later_keeps_the_last_good_checkpoint(tmp_path):
    def blow_up(model, row):
        if row["epoch"] == 1:
            with torch.no_grad():
                model.layers[0].m.mul_(1e30)  # the next epoch's loss overflows

    path = tmp_path / "d.pt"
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1 .*checkpoint of epoch 1 is kept"):
        train(SMOKE, device="cpu", progress=False, checkpoint=path, callback=blow_up)
    state = ckpt_mod.load_checkpoint(path)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"method": "adam"}, "method must be one of"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"epochs": 1.5}, "epochs must be an int"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"weight_decay": 2.0}, "weight_decay must lie in"),
        ({"n_train": 0}, "n_train must be positive"),
        ({"sizes": (784,)}, "sizes must have at least two entries"),
        ({"sizes": (784, 0, 10)}, r"sizes\[1\] must be positive"),
        ({"adam_betas": (0.9, 1.0)}, "adam_betas must be two numbers in"),
        ({"adam_betas": (0.9,)}, "adam_betas must be two numbers in"),
        ({"adam_eps": 0.0}, "adam_eps must be a positive finite number"),
        ({"m_var": float("inf")}, "m_var must be a positive finite number"),
        ({"m_var": -1.0}, "m_var must be a positive finite number"),
        ({"xi_max": float("nan")}, "xi_max must be a positive finite number"),
        ({"pi_init": 1.5}, r"pi_init must lie in \[0, 1\]"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"backward_variance": "2020"}, "backward_variance must be one of"),
        ({"n_val": -1}, "n_val must be a non-negative int"),
        ({"n_val": 1000}, "n_val must be below n_train"),
    ],
)
def test_bad_configs_are_named(changes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SMOKE.replace(**changes)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("papr")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        train(SMOKE, seed=-1, progress=False)
    with pytest.raises(ValueError, match="sizes must start with 784"):
        train(SMOKE.replace(sizes=(100, 10)), device="cpu", progress=False)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"nme": "x"})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_checkpoint_gets_the_usual_file_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    path = ckpt_mod.save_checkpoint(tmp_path / "c.pt", **_minimal_state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "run.pt"
    train(SMOKE.replace(epochs=1), device="cpu", progress=False, checkpoint=path)
    state = ckpt_mod.load_checkpoint(path)
    state["config"]["sizes"] = [784, 16, 10]  # parameters of 784-32-10 under a 784-16-10 config
    for key in ("format", "format_version", "mfbook"):
        state.pop(key)
    ckpt_mod.save_checkpoint(path, **state)
    with pytest.raises(ValueError, match=r"does not match the architecture \(784, 16, 10\)"):
        model_from_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 3e38, None])
def test_all_finite_sees_any_nan_or_inf(bad):
    model = build_model(SMOKE, seed=0)
    with torch.no_grad():
        for p in model.parameters():  # large finite values must not add up to inf
            p[0, 0] = 3e38
            p[0, 1] = -3e38
        if bad is not None:
            model.layers[1].xi[-1, -1] = bad
    assert all_finite(model) == (bad is None or bad == 3e38)


def test_float64_runs_train_in_float64_on_the_reference_path():
    result = train(SMOKE.replace(epochs=1, dtype="float64"), device="cpu", progress=False)
    assert {p.dtype for p in result.model.parameters()} == {torch.float64}
    assert 0 <= result.history["test_error_sample"][0] < 0.9


def test_the_2022_protocol_keeps_adam_and_decays_pi():
    config = preset("paper_2022")
    assert (config.epochs, config.reset_adam_each_epoch, config.decay_pi) == (100, False, True)
    assert {config.lr_at(e) for e in range(config.epochs)} == {0.1}  # a constant rate
    model = build_model(config, seed=0)
    from mfbook.loop import make_optimizer

    pi_group = make_optimizer(model, config).param_groups[0]
    assert pi_group["mf_weight_decay"] == config.weight_decay
    assert make_optimizer(model, preset("paper")).param_groups[0]["mf_weight_decay"] == 0.0


def test_held_out_images_replace_the_test_set():
    """With n_val the last n_val training images are the evaluation set: errors are named
    val_error_*, the test set is never touched, and training sees the other images only."""
    config = SMOKE.replace(epochs=1, n_val=200)
    assert config.steps_per_epoch() == -(-800 // config.batch_size)
    result = train(config, device="cpu", progress=False)
    assert {k for k in result.history if "_error_" in k} == {
        "val_error_mean",
        "val_error_mf",
        "val_error_sample",
    }
    from mfbook.data import load_mnist

    x, y = load_mnist("train", n=1000)
    with torch.no_grad():
        errors = (result.model(x[800:], "mean").argmax(1) != y[800:]).double().mean()
    assert result.history["val_error_mean"][0] == pytest.approx(float(errors))


def test_the_2020_variance_term_changes_training_only_before_the_last_layer():
    a = train(SMOKE.replace(epochs=1), device="cpu", progress=False)
    b = train(
        SMOKE.replace(epochs=1, backward_variance="as_published_2020"),
        device="cpu",
        progress=False,
    )
    assert b.model.layers[0].backward_variance == "as_published_2020"
    assert not torch.equal(a.model.layers[0].m, b.model.layers[0].m)
