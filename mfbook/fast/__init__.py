"""The speed wing: every piece of the package that exists only to make it fast.

Nothing here changes what is computed; each piece is tested against the reference it stands in
for (the book's performance appendix measures what each one buys):

* :mod:`mfbook.fast.kernels` and ``_kernels.cpp``: fused C++ kernels for gBP's elementwise
  steps and for the parameter update, compiled once with the system's compiler;
* :mod:`mfbook.fast.layer`: one mean-field layer on those kernels, with the signatures of the
  reference :mod:`mfbook.gbp`; :mod:`mfbook.nn` picks it where the kernels apply;
* :mod:`mfbook.fast.noise` (and ``_noise_kernels``): the noise eps on the CPU from a
  counter-based generator, keyed from the seeded torch generator;
* :mod:`mfbook.fast.update`: Adam, the decoupled weight decay and the projection in one pass
  per tensor, behind :class:`mfbook.optim.MeanFieldAdam`;
* :mod:`mfbook.fast.memory`: the allocator setting that keeps freed memory for the next step;
* :mod:`mfbook.fast.graphs`: training epochs replayed as CUDA graphs on a GPU.
"""
