"""Reading the credit assignment out of a trained ensemble (chapters 5-6).

* :func:`category_fractions`: VIP / UIP / variable fractions per layer;
* :func:`perturbed`: a copy of the model with some connections removed or switched on;
* :func:`removed`: a copy of the model without the connections of a given mask;
* :func:`perturbation_curves`: the perturbation experiment of chapter 5, for any layer;
* :func:`perturbation_point`: one point of that experiment: one layer, kind and fraction;
* :func:`error_rate`: the fraction of misclassified rows of a batch of logits;
* :func:`subnetwork_errors`: test errors of many sampled sub-networks;
* :func:`layer_entropy`: mean per-connection entropy of every layer.
"""

from __future__ import annotations

import copy

import torch

from mfbook import _checks
from mfbook.nn import MeanFieldMLP

KINDS = ("vip", "random", "uip")
#: What each kind of perturbation does (chapter 5): the legend of ``plots.perturbation_panels``,
#: the buttons and text of ``widgets.perturbation_explorer``. Plain text (no TeX), since widget
#: buttons show it verbatim; each label ends with the name of the connections it perturbs.
KIND_LABELS = {"vip": "remove VIP", "random": "remove as many variable", "uip": "switch on UIP"}
#: Per kind of perturbation, the category of connections (a field of ``Categories``) of which
#: the fraction f is taken to count the connections perturbed: "random" removes as many as "vip".
FRACTION_OF = {"vip": "vip", "random": "vip", "uip": "uip"}


def _check_model(model) -> None:
    if not isinstance(model, MeanFieldMLP):
        raise TypeError(f"model must be a MeanFieldMLP, got {type(model).__name__}")


def category_fractions(model: MeanFieldMLP, atol: float = 0.0) -> list[dict[str, float]]:
    """Per layer, the fraction of VIP, UIP and variable connections (exact by default)."""
    _check_model(model)
    out = []
    for ss in model.spike_slabs():
        cats = ss.categories(atol)
        out.append({k: float(v.double().mean()) for k, v in cats._asdict().items()})
    return out


def _layer_index(model, layer) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(model.layers):
        raise ValueError(f"layer must be an int in [0, {len(model.layers)}), got {layer!r}")
    return layer


@torch.no_grad()
def perturbed(
    model: MeanFieldMLP, layer: int, kind: str, count: int, generator=None, scale: float = 1.0
) -> MeanFieldMLP:
    """A copy of ``model`` with ``count`` connections of one layer changed (chapter 5):

    * ``"vip"``: remove ``count`` VIP connections (pi <- 1);
    * ``"random"``: remove ``count`` randomly chosen variable connections (pi <- 1);
    * ``"uip"``: switch on ``count`` UIP connections with a weight drawn from Normal(0, 1)
      (pi <- 0, m ~ Normal(0, scale^2), xi <- 0; ``scale`` 1 as in the authors' script).

    The connections are the first ``count`` of a random order drawn from ``generator``, so with
    one seed a larger count contains a smaller one.
    """
    _check_model(model)
    l = _layer_index(model, layer)
    _checks.choice("kind", kind, KINDS)
    cats = model.layers[l].spike_slab().categories()
    pool = {"vip": cats.vip, "random": cats.variable, "uip": cats.uip}[kind].reshape(-1)
    idx = pool.nonzero().squeeze(1)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= idx.numel():
        raise ValueError(
            f"count must be an int in [0, {idx.numel()}] for kind {kind!r}, got {count!r}"
        )
    order = torch.randperm(idx.numel(), generator=generator)
    chosen = idx[order[:count].to(idx.device)]
    if kind != "uip":
        mask = torch.zeros_like(pool)
        mask[chosen] = True
        return removed(model, l, mask.reshape(model.layers[l].pi.shape))
    new = copy.deepcopy(model)
    target = new.layers[l]
    pi, m, xi = (t.data.view(-1) for t in (target.pi, target.m, target.xi))
    pi[chosen] = 0.0
    xi[chosen] = 0.0
    m[chosen] = scale * torch.randn(count, generator=generator, dtype=m.dtype).to(m.device)
    return new


@torch.no_grad()
def removed(model: MeanFieldMLP, layer: int, mask: torch.Tensor) -> MeanFieldMLP:
    """A copy of ``model`` with the connections of one layer where ``mask`` is True removed
    (pi <- 1): they are absent from every sampled sub-network (chapter 5)."""
    _check_model(model)
    l = _layer_index(model, layer)
    shape = model.layers[l].pi.shape
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != shape:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape {tuple(shape)}, got {got}")
    new = copy.deepcopy(model)
    new.layers[l].pi[mask.to(new.layers[l].pi.device)] = 1.0
    return new


def error_rate(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of rows of ``logits`` (B, classes) whose argmax differs from the label ``y``
    (B,), computed in double precision: the test error of a classifier on a batch."""
    return float((logits.argmax(1) != y).double().mean())


@torch.no_grad()
def subnetwork_errors(model: MeanFieldMLP, x, y, n_networks: int = 10, generator=None):
    """Test error of each of ``n_networks`` sampled sub-networks, a float64 tensor (n_networks,)
    on the device of ``x``."""
    _check_model(model)
    n_networks = _checks.positive_int("n_networks", n_networks)
    errs = [error_rate(model.sample_network(generator)(x), y) for _ in range(n_networks)]
    return torch.tensor(errs, dtype=torch.float64, device=x.device)


def perturbation_point(
    model: MeanFieldMLP,
    x,
    y,
    layer: int,
    kind: str,
    fraction: float,
    n_networks: int = 10,
    seed: int = 0,
) -> tuple[int, torch.Tensor]:
    """One point of the perturbation experiment (chapter 5): ``(count, errors)``.

    ``count`` connections of one layer are perturbed (see :func:`perturbed`): for ``"vip"`` and
    ``"uip"`` the fraction ``fraction`` of that layer's VIP or UIP connections (rounded); for
    ``"random"`` as many as for ``"vip"``, at most the number of variable connections. ``errors``
    are the test errors on (x, y) of ``n_networks`` sub-networks sampled from the perturbed model
    (:func:`subnetwork_errors`). A generator seeded with ``seed`` draws the order of the
    perturbed connections, so with one seed a larger fraction perturbs a superset of the
    connections of a smaller one; another, seeded with ``seed`` too, draws the sub-networks: the
    same draws for every kind and fraction (and for :func:`mfbook.removal.removal_errors`), so
    the curves differ by the perturbation alone (at fraction 0 they coincide).
    """
    _check_model(model)
    l = _layer_index(model, layer)
    _checks.choice("kind", kind, KINDS)
    cats = model.layers[l].spike_slab().categories()
    count = round(fraction * int(getattr(cats, FRACTION_OF[kind]).sum()))
    if kind == "random":
        count = min(count, int(cats.variable.sum()))
    net = perturbed(model, l, kind, count, torch.Generator().manual_seed(seed))
    return count, subnetwork_errors(net, x, y, n_networks, torch.Generator().manual_seed(seed))


def perturbation_curves(
    model: MeanFieldMLP,
    x,
    y,
    layer: int,
    fractions=(0.0, 0.25, 0.5, 0.75, 1.0),
    n_networks: int = 10,
    seed: int = 0,
) -> dict[str, list[float]]:
    """The perturbation experiment of chapter 5 for one layer.

    For each fraction f: remove f of the VIP connections; remove the same NUMBER of randomly
    chosen variable connections; switch on f of the UIP connections. Returns, per kind, the test
    error averaged over ``n_networks`` sampled sub-networks (``error_KIND``), its standard error
    over those networks (``sem_KIND``; 0 for one network), and the counts used
    (``count_KIND``): one :func:`perturbation_point` per kind and fraction.
    """
    _check_model(model)
    l = _layer_index(model, layer)
    out: dict[str, list[float]] = {"fraction": [float(f) for f in fractions]}
    for kind in KINDS:
        errs, sems, counts = [], [], []
        for f in fractions:  # the same seed, hence the same order, for every fraction
            count, errors = perturbation_point(model, x, y, l, kind, f, n_networks, seed)
            errs.append(float(errors.mean()))
            n = errors.numel()
            sems.append(float(errors.std() / n**0.5) if n > 1 else 0.0)
            counts.append(count)
        out[f"error_{kind}"], out[f"sem_{kind}"], out[f"count_{kind}"] = errs, sems, counts
    return out


def layer_entropy(
    model: MeanFieldMLP,
    n_samples: int | None = None,
    seed: int = 0,
    convention: str = "reference",
) -> list[float]:
    """Mean per-connection entropy of every layer (chapter 6), in the entropy ``convention`` of
    chapter 1 (``SpikeSlab.entropy``; one of ``spike_slab.ENTROPY_CONVENTIONS``).

    The default ``"reference"`` is the convention of the paper's entropy profile (chapter 1,
    eq-ch01-entropy-reference); ``"box"`` lies about pi ln(1/b) per connection below it, so it
    lowers layers with a large mean pi (eq-ch01-entropy-shift). ``n_samples`` Monte-Carlo draws
    per connection (None: the convention's default, 100 for ``"reference"``) come from one
    generator seeded with ``seed``, shared by the layers in order; ``"counting"`` is exact.
    """
    _check_model(model)
    gen = torch.Generator().manual_seed(seed)
    return [
        float(ss.entropy(n_samples, gen, convention=convention).mean())
        for ss in model.spike_slabs()
    ]
