"""The epoch runners: eager (mfbook.loop) and CUDA graphs (mfbook.fast.graphs), one interface;
graphed epochs compute what the eager ones compute."""

import pytest
import torch

from mfbook.config import preset
from mfbook.data import load_mnist
from mfbook.fast.graphs import GraphedEpochs
from mfbook.loop import EagerEpochs, EpochRunner, TrainingDiverged, build_model
from mfbook.train import train

CONFIG = preset("smoke").replace(n_train=600, batch_size=100)


@pytest.fixture(scope="module")
def data():
    return load_mnist("train", n=600)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
RUNNERS = ["eager", pytest.param("graph", marks=CUDA)]


def run(kind, method, data, device="cpu", epochs=3):
    config = CONFIG.replace(method=method)
    x, y = (t.to(device) for t in data)
    model = build_model(config, seed=0).to(device)
    order, noise = torch.Generator().manual_seed(1), torch.Generator(device=device).manual_seed(2)
    if kind == "eager":
        runner = EagerEpochs(model, config, x, y, noise)
    else:
        runner = GraphedEpochs(model, config, x, y, noise)
    assert isinstance(runner, EpochRunner)
    losses = []
    for epoch in range(epochs):
        runner.start_epoch(0.1 * 0.5**epoch, fresh=True)
        losses.append(float(runner.epoch(order)))
    return losses, [p.detach().cpu().clone() for p in model.parameters()], runner


def adam_state(runner):
    return [v.clone() for s in runner.opt.state.values() for v in s.values()]


@pytest.mark.parametrize("kind", RUNNERS)
def test_fresh_epoch_resets_adam_and_state_round_trips(kind, data):
    device = "cuda" if kind == "graph" else "cpu"
    _, _, runner = run(kind, "gbp", data, device=device, epochs=1)
    saved, before = runner.optimizer_state(), adam_state(runner)
    assert any(bool(v.abs().sum() > 0) for v in before)  # Adam has moved
    runner.epoch(torch.Generator().manual_seed(5))
    assert not all(torch.equal(a, b) for a, b in zip(adam_state(runner), before, strict=True))
    runner.load_optimizer_state(saved)
    for v, s in zip(adam_state(runner), before, strict=True):
        assert torch.equal(v, s)
    runner.start_epoch(0.01, fresh=True)
    assert all(bool((v == 0).all()) for v in adam_state(runner))
    assert all(float(g["lr"]) == pytest.approx(0.01) for g in runner.opt.param_groups)


@pytest.mark.parametrize("kind", RUNNERS)
def test_check_steps_names_the_first_bad_step(kind, data):
    device = "cuda" if kind == "graph" else "cpu"
    _, _, runner = run(kind, "gbp", data, device=device, epochs=1)
    with torch.no_grad():
        runner.model.layers[0].m.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 1 "):
        runner.epoch(torch.Generator().manual_seed(0), check_steps=True)


def test_bad_requests_are_refused(data):
    x, y = data
    config = CONFIG
    model = build_model(config, seed=0)
    noise = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="CUDA graphs need the data on a CUDA device"):
        GraphedEpochs(model, config, x, y, noise)
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        train(config, device="cpu", progress=False, cuda_graphs=True)


@CUDA
def test_graphs_need_whole_batches(data):
    x, y = (t.cuda() for t in data)
    model = build_model(CONFIG, seed=0).cuda()
    with pytest.raises(ValueError, match="multiple of batch_size"):
        GraphedEpochs(model, CONFIG, x[:550], y[:550], torch.Generator("cuda").manual_seed(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["gbp", "bp"])
def test_cuda_graph_replays_the_eager_step(method, data):
    eager_losses, eager_params, _ = run("eager", method, data, device="cuda")
    losses, params, runner = run("graph", method, data, device="cuda")
    assert runner.graph is not None
    assert losses == pytest.approx(eager_losses, rel=1e-5)
    for p, q in zip(params, eager_params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_uses_graphs_on_cuda_and_finds_divergence(data):
    config = CONFIG.replace(epochs=2, n_test=500)
    graphed = train(config, device="cuda", progress=False)
    eager = train(config, device="cuda", progress=False, cuda_graphs=False)
    assert graphed.history["train_loss"] == pytest.approx(eager.history["train_loss"], rel=1e-5)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+"):
        train(config.replace(lr=1e30), device="cuda", progress=False)


@CUDA
def test_failed_capture_restores_the_model(data):
    _, _, runner = run("graph", "gbp", data, device="cuda", epochs=1)
    before = [p.detach().clone() for p in runner.model.parameters()]

    def broken():
        with torch.no_grad():
            runner.model.layers[0].m.add_(1.0)  # a warm-up step happened
        raise RuntimeError("capture refused")

    runner._warm_up_and_capture = broken
    with pytest.raises(RuntimeError, match="capture refused"):
        runner._capture()
    for p, q in zip(runner.model.parameters(), before, strict=True):
        assert torch.equal(p, q)
    assert all(bool((v == 0).all()) for v in runner.optimizer_state())


def test_auto_mode_falls_back_to_eager_when_capture_fails(data, monkeypatch):
    from types import SimpleNamespace

    import mfbook.train
    from mfbook.train import _epochs

    def refuse(*args, **kwargs):
        raise RuntimeError("no graphs here")

    monkeypatch.setattr(mfbook.train, "GraphedEpochs", refuse)
    on_gpu = SimpleNamespace(device=torch.device("cuda"), shape=(600, 784))
    model, noise = build_model(CONFIG, seed=0), torch.Generator().manual_seed(0)
    with pytest.warns(UserWarning, match=r"capture failed \(no graphs here\); training eagerly"):
        fallback = _epochs(model, CONFIG, on_gpu, None, noise, cuda_graphs=None)
    assert isinstance(fallback, EagerEpochs)
    with pytest.raises(RuntimeError, match="no graphs here"):
        _epochs(model, CONFIG, on_gpu, None, noise, cuda_graphs=True)
