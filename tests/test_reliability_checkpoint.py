"""Reliability of checkpoints: a sha256 over the stored state, validation of what is loaded, and
the fused-kernel setting they were written with."""

import warnings

import pytest
import torch

from mfbook import checkpoint as ckpt_mod
from mfbook.checkpoint import load_checkpoint, save_checkpoint
from mfbook.fast import kernels
from mfbook.train import TrainingDiverged, kernels_in_use, preset, train

TINY = preset("smoke").replace(epochs=1, n_train=500, n_test=200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The checkpoint of a one-epoch run (its state is rewritten by the tests, in copies)."""
    path = tmp_path_factory.mktemp("ckpt") / "run.pt"
    train(TINY, device="cpu", progress=False, seed=0, checkpoint=path)
    return path


@pytest.fixture
def state(trained):
    return load_checkpoint(trained)


def _resume(path):
    return train(TINY, device="cpu", progress=False, seed=0, checkpoint=path)


def test_flipped_bytes_in_a_tensor_are_detected(trained, tmp_path):
    pi = load_checkpoint(trained)["model"]["layers.0.pi"]
    data = bytearray(trained.read_bytes())
    at = bytes(data).find(pi.numpy().tobytes()[:64])
    assert at > 0, "pi's bytes are stored as they are"
    data[at + 5] ^= 0x40
    data[at + 37] ^= 0x01
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"checkpoint {bad} is corrupted: its sha256"):
        load_checkpoint(bad)


def test_the_file_records_the_format_and_the_sha256(trained):
    wrapper = torch.load(trained, weights_only=True)
    assert wrapper["format_version"] == ckpt_mod.FORMAT_VERSION == 2
    assert set(wrapper) == {"format", "format_version", "mfbook", "sha256", "payload"}


def test_an_old_format_version_is_a_clear_error(state, tmp_path):
    old = tmp_path / "old.pt"
    torch.save({**state, "format_version": 1}, old)  # the layout of version 1: no wrapper
    with pytest.raises(ValueError, match=rf"checkpoint {old} has format version 1.*version 2"):
        load_checkpoint(old)


def test_nan_weights_are_reported_as_a_bad_checkpoint_not_as_divergence(state, tmp_path):
    state["model"]["layers.1.m"][0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "nan.pt", **state)
    with pytest.raises(ValueError, match=rf"checkpoint {path} holds NaN/inf in layers.1.m"):
        load_checkpoint(path)
    try:
        _resume(path)
    except TrainingDiverged as err:
        pytest.fail(f"reported as a divergence: {err}")
    except ValueError as err:
        assert "holds NaN/inf in layers.1.m" in str(err)
    else:
        pytest.fail("a checkpoint with NaN weights was resumed")


def _set(state, key, value):
    state[key] = value


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda s: s["model"]["layers.0.pi"].fill_(1.5), r"layers.0.pi must lie in \[0, 1\]"),
        (lambda s: s["model"]["layers.1.pi"].fill_(-0.1), r"layers.1.pi must lie in \[0, 1\]"),
        (lambda s: s["model"]["layers.1.xi"].fill_(-1e-3), r"layers.1.xi must lie in \[0, inf\]"),
        (lambda s: s["model"]["layers.0.m"].fill_(float("inf")), "holds NaN/inf in layers.0.m"),
        (lambda s: _set(s, "epoch", 2), r"epoch 2 is outside \[0, 1\]"),
        (lambda s: _set(s, "epoch", -1), r"epoch -1 is outside"),
        (lambda s: s["history"]["train_loss"].append(0.5), "history\\['train_loss'\\] has 2"),
        (lambda s: _set(s, "history", {"epoch": 1}), "history\\['epoch'\\] must be a list"),
        (lambda s: _set(s, "history", [1]), "history must be dict, got list"),
        (lambda s: _set(s, "seed", "0"), "seed must be int, got str"),
        (lambda s: _set(s, "seed", True), "seed must be int, got bool"),
        (lambda s: _set(s, "epoch", 1.0), "epoch must be int, got float"),
        (lambda s: _set(s, "config", None), "config must be dict, got NoneType"),
        (lambda s: _set(s, "kernels", 1), "kernels must be bool, got int"),
        (lambda s: s["model"].update({"layers.0.pi": [0.5]}), "layers.0.pi is not a floating"),
        (lambda s: s["config"].pop("epochs"), "its config has no int epochs"),
    ],
)
def test_what_is_loaded_is_validated(state, tmp_path, change, match):
    change(state)
    path = save_checkpoint(tmp_path / "bad.pt", **state)
    with pytest.raises(ValueError, match=rf"checkpoint {path}\S* .*{match}"):
        load_checkpoint(path)


def test_plain_backprop_weights_are_checked_too(tmp_path):
    path = tmp_path / "bp.pt"
    train(TINY.replace(method="bp"), device="cpu", progress=False, checkpoint=path)
    state = load_checkpoint(path)
    state["model"]["weights.1"][0] = float("nan")
    save_checkpoint(path, **state)
    with pytest.raises(ValueError, match="holds NaN/inf in weights.1"):
        load_checkpoint(path)


def test_checkpoints_record_the_kernel_setting(trained, state):
    cpu = torch.device("cpu")
    assert state["kernels"] is kernels_in_use(TINY, cpu)
    with kernels.disabled():
        assert kernels_in_use(TINY, cpu) is False
    assert kernels_in_use(TINY.replace(dtype="float64"), cpu) is False


def test_resuming_under_the_other_kernel_setting_warns(state, tmp_path):
    state["kernels"] = not kernels_in_use(TINY, torch.device("cpu"))
    path = save_checkpoint(tmp_path / "other.pt", **state)
    written, now = ("on", "off") if state["kernels"] else ("off", "on")
    match = f"written with the fused CPU kernels {written}, they are {now} now.*no longer bit-id"
    with pytest.warns(UserWarning, match=match):
        _resume(path)


def test_resuming_under_the_same_kernel_setting_does_not_warn(trained):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*bit-identical")
        _resume(trained)
