"""Training the recurrent ensemble on row-by-row MNIST (mfbook.rnn_train, chapter 9): it learns,
a seed fixes the run, both methods give the feed-forward history keys, bad configs are named."""

import pytest
import torch

from mfbook import rnn, rnn_nn
from mfbook.rnn_train import PlainRNN, RecurrentConfig, as_rows, train_recurrent

pytestmark = pytest.mark.slow  # real MNIST

SMALL = RecurrentConfig(n_rec=32, n_train=2_000, n_test=1_000, epochs=3, lr=1e-2)


def test_gbptt_learns_row_by_row_mnist():
    result = train_recurrent(SMALL, seed=0)
    h = result.history
    assert h["epoch"] == [1, 2, 3]
    assert set(h) == {
        "epoch",
        "train_loss",
        "test_error_mean",
        "test_error_mf",
        "test_error_sample",
    }
    assert h["train_loss"][-1] < h["train_loss"][0] < 2.3  # below ln 10 (chance) and falling
    assert h["test_error_mean"][-1] < 0.6  # ten classes: chance is 0.9
    assert isinstance(result.model, rnn_nn.MeanFieldRNN)
    for g in rnn.GROUPS:  # projected after every step
        pi = getattr(result.model, f"pi_{g}").detach()
        assert float(pi.min()) >= 0 and float(pi.max()) <= 1


def test_a_seed_fixes_the_run():
    config = SMALL.__class__(**{**SMALL.__dict__, "epochs": 1, "n_train": 512})
    one, two = train_recurrent(config, seed=3), train_recurrent(config, seed=3)
    assert one.history == two.history
    assert train_recurrent(config, seed=4).history != one.history


def test_bptt_trains_the_plain_network_and_validation_holds_images_out():
    config = RecurrentConfig(method="bptt", n_rec=32, n_train=2_000, n_val=500, epochs=3, lr=1e-2)
    result = train_recurrent(config, seed=0)
    assert isinstance(result.model, PlainRNN)
    assert set(result.history) == {"epoch", "train_loss", "val_error_mean"}
    assert result.history["val_error_mean"][-1] < 0.6


def test_images_become_row_sequences():
    x = torch.arange(2 * 784, dtype=torch.float32).view(2, 784)
    rows = as_rows(x)
    assert rows.shape == (2, 28, 28) and torch.equal(rows[1, 3], x[1, 3 * 28 : 4 * 28])
    with pytest.raises(ValueError, match="784-pixel images"):
        as_rows(torch.zeros(2, 100))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"method": "sgd"}, "method must be one of"),
        ({"alpha": 0.0}, r"alpha \(the leak 1/tau\)"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"n_val": 2_000, "n_train": 2_000}, "n_val .* must be smaller than n_train"),
        ({"epochs": 0}, "epochs must be positive"),
    ],
)
def test_bad_configs_are_named(change, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RecurrentConfig(**change)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gbptt_on_the_gpu_matches_the_cpu_and_trains():
    gen = torch.Generator().manual_seed(5)
    params = rnn.init_params(7, 12, 3, identity=False, generator=gen, dtype=torch.float64)
    x = torch.rand(4, 6, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (4,), generator=gen)
    eps = torch.randn(4, 6, 12, generator=gen, dtype=torch.float64)
    eps_out = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    cpu = rnn.gradients(params, x, y, eps, eps_out, 0.2)
    cuda = torch.device("cuda")
    moved = rnn.RecurrentParams(*(tuple(t.to(cuda) for t in p) for p in params))
    gpu = rnn.gradients(moved, *(t.to(cuda) for t in (x, y, eps, eps_out)), 0.2)
    for a, b in zip(cpu, gpu, strict=True):
        for u, v in zip(a, b, strict=True):
            torch.testing.assert_close(v.cpu(), u, rtol=1e-10, atol=1e-12)
    config = RecurrentConfig(n_train=512, n_test=256, epochs=1, batch_size=128)
    result = train_recurrent(config, seed=0, device="cuda")
    assert next(result.model.parameters()).device.type == "cuda"
    assert 0 <= result.history["test_error_mf"][-1] < 0.9
