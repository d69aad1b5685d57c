"""Every method of the comparison (chapter 10) learns real MNIST in seconds: 3 epochs on the first
2,000 training images, errors on the first 1,000 test images, far below chance (90%)."""

import math

import pytest
import torch

from mfbook import relatives
from mfbook.data import load_mnist
from mfbook.relatives import metrics
from mfbook.relatives import train as rtrain

pytestmark = pytest.mark.slow  # real MNIST

#: (hyperparameters, fit arguments) that train in 3 epochs. From the paper's initialisation
#: (m_var = 2/784 in the 1/sqrt(N) network) the logits start near 1e-5 and the data gradients are
#: tiny, so the KL term of the variational methods wins first (their weights shrink to the prior);
#: a He-like m_var = 2 and a warm-up of the KL weight let the data lead.
RECIPES = {
    "bp": ({}, {"lr": 0.05}),
    "mc_dropout": ({"p": 0.2}, {"lr": 0.05}),
    "bbb": ({"m_var": 2.0}, {"lr": 0.01, "warmup_epochs": 3}),
    "sparse_vd": ({"m_var": 2.0}, {"lr": 0.01, "warmup_epochs": 3}),
    "gbp": ({}, {"lr": 0.05}),
}


@pytest.fixture(scope="module")
def mnist():
    return load_mnist("train", n=2000), load_mnist("test", n=1000)


def test_every_method_has_a_recipe():
    assert set(RECIPES) == set(relatives.METHODS)


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_method_beats_chance_clearly(name, mnist):
    (x, y), (xt, yt) = mnist
    hyper, kw = RECIPES[name]
    model = relatives.build(name, seed=0, **hyper)
    fit = rtrain.fit(model, x, y, epochs=3, batch_size=100, seed=0, **kw)
    assert fit.history["nll"][-1] < fit.history["nll"][0]
    g = torch.Generator().manual_seed(0)
    for n_samples in (0, 5):
        probs = model.predict(xt, n_samples, g)
        assert metrics.error(probs, yt) < 0.5
        assert metrics.nll(probs, yt) < math.log(10) - 0.5
        assert 0 <= metrics.ece(probs, yt) < 0.4
    assert sum(fit.history["seconds"]) < 15
