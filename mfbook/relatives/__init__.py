"""gBP among its relatives: the methods of the measured comparison of chapter 10.

Each method is a small module with a model class of the common interface of
:mod:`mfbook.relatives.base`, on the book's baseline network (bias-free layers, z = (1/sqrt(N_in))
w h, ReLU hidden):

* ``"bp"``: plain backprop (:mod:`~mfbook.relatives.plain`);
* ``"mc_dropout"``: MC dropout, Gal & Ghahramani 2016 (:mod:`~mfbook.relatives.dropout`);
* ``"bbb"``: Bayes by Backprop with a Gaussian posterior and prior and the local
  reparameterisation trick, Blundell et al. 2015, Kingma et al. 2015 (:mod:`~mfbook.relatives.bbb`);
* ``"sparse_vd"``: sparse variational dropout, Molchanov et al. 2017
  (:mod:`~mfbook.relatives.sparse_vd`);
* ``"gbp"``: the book's mean-field ensemble, Li & Huang 2020 (:mod:`~mfbook.relatives.mean_field`).

:func:`build` makes one by name; :mod:`~mfbook.relatives.train` trains any of them,
:mod:`~mfbook.relatives.metrics`, :mod:`~mfbook.relatives.sparsity` and
:mod:`~mfbook.relatives.shift` measure them all by the same code.
"""

from __future__ import annotations

import inspect

import torch

from mfbook.relatives.base import Relative
from mfbook.relatives.bbb import BayesByBackprop
from mfbook.relatives.dropout import MCDropout
from mfbook.relatives.mean_field import GBP
from mfbook.relatives.plain import Backprop
from mfbook.relatives.sparse_vd import SparseVD

#: The methods by name.
METHODS: dict[str, type[Relative]] = {
    "bp": Backprop,
    "mc_dropout": MCDropout,
    "bbb": BayesByBackprop,
    "sparse_vd": SparseVD,
    "gbp": GBP,
}


def method(name: str) -> type[Relative]:
    """The class of the method ``name``; a ValueError lists the known names."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}; the known methods are {', '.join(METHODS)}")
    return METHODS[name]


def build(name: str, sizes=(784, 100, 100, 10), seed: int = 0, **hyper) -> Relative:
    """The model of method ``name`` on ``sizes``, initialised from ``seed``; ``hyper`` are the
    method's keyword arguments (e.g. ``p`` of MC dropout, ``prior_sigma`` of Bayes by Backprop).
    """
    cls = method(name)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    known = [k for k, v in inspect.signature(cls).parameters.items() if v.kind == v.KEYWORD_ONLY]
    unknown = sorted(set(hyper) - set(known))
    if unknown:
        raise ValueError(
            f"unknown hyperparameters {unknown} for method {name!r}; it takes {', '.join(known)}"
        )
    model = cls(sizes, **hyper)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model
