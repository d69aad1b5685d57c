"""Read-outs of a trained recurrent ensemble (mfbook.rnn_analysis, chapter 9)."""

import numpy as np
import pytest
import torch

from mfbook import rnn_analysis
from mfbook.msi_train import MSIConfig, build_msi_model
from mfbook.rnn_nn import MeanFieldRNN


def model_with_kinds():
    model = MeanFieldRNN(
        3, 10, 2, alpha=0.5, identity=False, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        model.pi_rec.fill_(0.5)
        model.pi_rec[:2] = 0.0  # 20 connections with pi = 0 ...
        model.xi_rec[:2] = 0.0  # ... and xi = 0: VIP
        model.pi_rec[2:5] = 1.0  # 30 UIP
    return model


def test_fractions_and_removal_masks():
    model = model_with_kinds()
    fr = rnn_analysis.category_fractions(model)["rec"]
    assert fr == {"vip": 0.2, "uip": 0.3, "variable": 0.5}
    vip = rnn_analysis.vip_mask(model, "rec")
    random = rnn_analysis.random_mask(model, "rec", 20, torch.Generator().manual_seed(1))
    assert int(vip.sum()) == int(random.sum()) == 20
    assert not (random & (model.pi_rec.detach() >= 1)).any()  # never an absent connection
    cut = rnn_analysis.removed(model, "rec", vip)
    assert float(cut.pi_rec.detach()[vip].min()) == 1.0
    assert torch.equal(cut.pi_rec.detach()[~vip], model.pi_rec.detach()[~vip])
    assert float(model.pi_rec.detach()[vip].max()) == 0.0  # the original is untouched
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        rnn_analysis.removed(model, "rec", vip.float())
    with pytest.raises(ValueError, match="group must be one of"):
        rnn_analysis.removed(model, "hidden", vip)
    with pytest.raises(ValueError, match=r"count must be an int in \[0, 70\]"):
        rnn_analysis.random_mask(model, "rec", 71)
    with torch.no_grad():
        model.m_rec.fill_(0.05)
        model.m_rec[0, :3] = -0.5  # strong, and pi = 0 and xi = 0 there
        model.m_rec[5, 0] = 0.5  # strong but pi = 0.5
    strong = rnn_analysis.strong_mask(model, "rec")
    assert strong.nonzero().tolist() == [[0, 0], [0, 1], [0, 2]]
    with pytest.raises(TypeError, match="MeanFieldRNN"):
        rnn_analysis.category_fractions(torch.nn.Linear(2, 2))


def test_rates_are_the_mean_network_and_selectivity_sees_tuned_units():
    model = build_msi_model(MSIConfig(), torch.Generator().manual_seed(2))
    with torch.no_grad():  # unit 60 reads only the positive visual channel, unit 10 only the
        model.m_inp.zero_()  # positive auditory one, unit 120 only the start cue
        model.m_rec.zero_()
        model.xi_rec.zero_()
        model.m_inp[60, 0] = 1.0
        model.m_inp[10, 1] = 1.0
        model.m_inp[120, 4] = 1.0
    index, kinds = rnn_analysis.selectivity(model, torch.Generator().manual_seed(3))
    assert kinds[60] == "uni" and index[60, 0] > 0.2 and abs(float(index[60, 1])) < 0.2
    assert kinds[10] == "uni" and index[10, 1] > 0.2
    assert kinds[120] == "non" and kinds[0] == "non"
    x = torch.rand(2, 5, 5)
    r = rnn_analysis.rates(model, x)
    assert r.shape == (2, 5, 150) and float(r.min()) >= 0


def test_explained_variance_and_first_crossing():
    gen = torch.Generator().manual_seed(4)
    line = torch.randn(200, 1, generator=gen) @ torch.randn(1, 6, generator=gen)
    shares = rnn_analysis.explained_variance(line + 1e-3 * torch.randn(200, 6, generator=gen))
    assert shares[0] > 0.999 and np.isclose(shares.sum(), 1) and np.all(np.diff(shares) <= 1e-12)
    with pytest.raises(ValueError, match="no variance"):
        rnn_analysis.explained_variance(torch.ones(5, 3))
    assert rnn_analysis.first_crossing([0, 5, 10], [0.0, 0.05, 0.3], 0.1) == 10
    assert rnn_analysis.first_crossing([0, 5], [0.0, 0.05], 0.1) is None
    with pytest.raises(ValueError, match="2 iterations for 3 values"):
        rnn_analysis.first_crossing([0, 5], [0, 1, 2], 0.1)
