// Fused CPU kernels for the gBP layer (chapter 3) and the parameter update (chapter 4), compiled
// on first use by mfbook/fast/kernels.py.
//
// Each kernel is ONE pass over its tensors, in place of the three to ten elementwise passes of
// the reference torch expressions (mfbook/gbp.py; torch's Adam for the update); the formulas are
// the same, and the tests compare the two. The work is split with at::parallel_for, which runs on
// torch's own thread pool (the OpenMP runtime that torch loaded), so the kernels and torch's
// matrix products share the same threads. float32, contiguous, CPU tensors only: the Python side
// calls these only for such tensors and uses the torch expressions otherwise.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

using at::Tensor;

namespace {

constexpr int64_t GRAIN = 1 << 14;  // elements per task: below this, one thread does it all

void check(const Tensor& t, const char* name, const Tensor& like) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
  TORCH_CHECK(t.sizes() == like.sizes(), name, " has shape ", t.sizes(), ", expected ",
              like.sizes());
}

// mu = (1 - pi) m = m - pi m;  var = (1 - pi) s with s = xi + pi m^2
void moments(int64_t n, const float* __restrict__ pi, const float* __restrict__ m,
             const float* __restrict__ xi, float* __restrict__ mu, float* __restrict__ var) {
  for (int64_t i = 0; i < n; ++i) {
    const float pi_m = pi[i] * m[i];
    const float s = xi[i] + pi_m * m[i];
    mu[i] = m[i] - pi_m;
    var[i] = s - pi[i] * s;
  }
}

// The weight gradients of one connection from dC/dmu and dC/dVar, with s = xi + pi m^2:
// d_pi = (mu m - s) d_var - m d_mu;  d_m = (d_mu + 2 pi m d_var)(1 - pi);  d_xi = (1 - pi) d_var
struct Grad {
  float pi, m, xi;
};

inline Grad grad_one(float g_mu, float g_var, float pi, float m, float xi) {
  const float pi_m = pi * m;
  const float s = xi + pi_m * m;
  return {((m - pi_m) * m - s) * g_var - m * g_mu,
          (g_mu + 2.0f * pi_m * g_var) - pi * (g_mu + 2.0f * pi_m * g_var), g_var - pi * g_var};
}

// d_m is written over d_mu and d_xi over d_var.
void grads(int64_t n, float* __restrict__ d_mu, float* __restrict__ d_var,
           float* __restrict__ d_pi, const float* __restrict__ pi, const float* __restrict__ m,
           const float* __restrict__ xi) {
  for (int64_t i = 0; i < n; ++i) {
    const Grad g = grad_one(d_mu[i], d_var[i], pi[i], m[i], xi[i]);
    d_pi[i] = g.pi;
    d_mu[i] = g.m;
    d_var[i] = g.xi;
  }
}

// G <- a G;  Delta <- sqrt(b D) (written over D);  z = G + eps Delta, or ReLU(z) = max(z, 0)
// with `relu` (NaN stays NaN);  r = eps / Delta, 0 where that is not finite (Delta = 0: the
// variance path is switched off). r is skipped when null.
void preact(int64_t n, float* __restrict__ G, float* __restrict__ D,
            const float* __restrict__ eps, float* __restrict__ z, float* __restrict__ r, float a,
            float b, bool relu) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = G[i] * a, delta = std::sqrt(D[i] * b);
    const float zi = g + eps[i] * delta;
    G[i] = g;
    D[i] = delta;
    z[i] = relu ? std::max(zi, 0.0f) : zi;
  }
  if (r != nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      const float q = eps[i] / D[i];
      r[i] = std::fabs(q) <= FLT_MAX ? q : 0.0f;
    }
  }
}

// K_a = a K;  Q = c K r;  with `out` (the layer's ReLU output), K is first ReLU'd backward:
// K <- K where out > 0, else 0.
void signals(int64_t n, const float* __restrict__ K, const float* __restrict__ r,
             const float* __restrict__ out, float* __restrict__ Ka, float* __restrict__ Q,
             float a, float c) {
  for (int64_t i = 0; i < n; ++i) {
    const float k = out == nullptr || out[i] > 0.0f ? K[i] : 0.0f;
    Ka[i] = k * a;
    Q[i] = k * r[i] * c;
  }
}

// One Adam step (torch's arithmetic: exp_avg by lerp, bias corrections from the step count),
// then the decoupled weight decay p *= decay, then the projection p <- min(max(p, lo), hi); NaN
// stays NaN, so a diverged run is still detected. `Adam` holds one tensor's constants of a step.
struct Adam {
  float step_size, w1;
  bool small_w1;
  float beta2, w2, bc2_sqrt, eps, decay, lo, hi;
};

// From h = (step, lr, beta1, beta2, eps, decay, lo, hi), the numbers Python passes per tensor.
Adam adam_constants(const double* h) {
  const double step = h[0], lr = h[1], beta1 = h[2], beta2 = h[3];
  TORCH_CHECK(step >= 1, "step must be >= 1, got ", step);
  const double w1 = 1 - beta1, bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
  return {static_cast<float>(lr / bc1), static_cast<float>(w1), std::abs(w1) < 0.5,
          static_cast<float>(beta2),    static_cast<float>(1 - beta2),
          static_cast<float>(std::sqrt(bc2)), static_cast<float>(h[4]), static_cast<float>(h[5]),
          static_cast<float>(h[6]),     static_cast<float>(h[7])};
}

// torch's lerp(m1, g, w1), in the form it picks for the size of w1 (SMALL: |w1| < 0.5)
template <bool SMALL>
inline float lerp(float m1, float g, float w1) {
  return SMALL ? m1 + w1 * (g - m1) : g - (g - m1) * (1.0f - w1);
}

template <bool SMALL>
inline void adam_one(float& p, float g, float& m1, float& m2, const Adam a) {
  const float ea = lerp<SMALL>(m1, g, a.w1);
  const float es = m2 * a.beta2 + a.w2 * g * g;
  m1 = ea;
  m2 = es;
  const float v = (p - a.step_size * ea / (std::sqrt(es) / a.bc2_sqrt + a.eps)) * a.decay;
  p = std::min(std::max(v, a.lo), a.hi);
}

void adam(int64_t n, float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m1,
          float* __restrict__ m2, const Adam a) {
  if (a.small_w1) {
    for (int64_t i = 0; i < n; ++i) adam_one<true>(p[i], g[i], m1[i], m2[i], a);
  } else {
    for (int64_t i = 0; i < n; ++i) adam_one<false>(p[i], g[i], m1[i], m2[i], a);
  }
}

// Per tensor i, its numbers hyper[8 i .. 8 i + 7] = (step, lr, beta1, beta2, eps, decay, lo,
// hi): all the tensors of an update in one call, so a step costs one call from Python.
void adam_steps_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                 at::TensorList exp_avg_sqs, at::ArrayRef<double> hyper) {
  const size_t n = params.size();
  TORCH_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n,
              "params, grads, exp_avgs and exp_avg_sqs must have the same length");
  TORCH_CHECK(hyper.size() == 8 * n, "hyper must hold 8 numbers per tensor, got ", hyper.size(),
              " for ", n, " tensors");
  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = params[i];
    check(p, "param", p), check(grads[i], "grad", p);
    check(exp_avgs[i], "exp_avg", p), check(exp_avg_sqs[i], "exp_avg_sq", p);
    const Adam a = adam_constants(hyper.data() + 8 * i);
    float *pp = p.data_ptr<float>(), *m1 = exp_avgs[i].data_ptr<float>();
    float* m2 = exp_avg_sqs[i].data_ptr<float>();
    const float* g = grads[i].data_ptr<float>();
    at::parallel_for(0, p.numel(), GRAIN, [&](int64_t b, int64_t e) {
      adam(e - b, pp + b, g + b, m1 + b, m2 + b, a);
    });
  }
}

// The noise eps (mfbook/fast/noise.py): `fill` is the address of the numba-compiled C function
// mfbook.fast._noise_kernels.fill_range_c(out, half, key, lo, hi), which writes pairs lo..hi-1 of a
// draw; each pair depends on (key, its index) only, so the threads' shares give the same numbers
// as one serial call.
void normal_pairs_(Tensor out, int64_t fill, int64_t key) {
  check(out, "out", out);
  TORCH_CHECK(out.numel() % 2 == 0, "out must have an even number of elements");
  using Fill = void (*)(float*, int64_t, uint64_t, int64_t, int64_t);
  const auto fn = reinterpret_cast<Fill>(fill);
  const int64_t half = out.numel() / 2;
  float* p = out.data_ptr<float>();
  at::parallel_for(0, half, 8192, [&](int64_t b, int64_t e) {
    fn(p, half, static_cast<uint64_t>(key), b, e);
  });
}

// A noisy layer at inference (mfbook/fast/layer.py: noisy_layer): from the products G and D, in place,
// G <- out = a G + eps sqrt(b D) (ReLU'd with `relu`) and D <- out * out, the next layer's h^2.
// The eps are computed here, block by block, by the numba C function at `fill`
// (mfbook.fast._noise_kernels.fill_block_c) and never stored: element j takes the first number of pair
// j, or for j >= half the second of pair j - half, half = ceil(n / 2), exactly as normal_pairs_
// fills a draw of the same size.
void noisy_out(int64_t n, float* __restrict__ G, float* __restrict__ D,
               const float* __restrict__ eps, float a, float b, bool relu) {
  for (int64_t i = 0; i < n; ++i) {
    const float zi = G[i] * a + eps[i] * std::sqrt(D[i] * b);
    const float out = relu ? std::max(zi, 0.0f) : zi;
    G[i] = out;
    D[i] = out * out;
  }
}

void noisy_output_(Tensor G, Tensor D, double a, double b, bool relu, int64_t fill, int64_t key) {
  check(G, "G", G), check(D, "D", G);
  using Block = void (*)(float*, uint64_t, int64_t, int64_t);
  const auto fn = reinterpret_cast<Block>(fill);
  const int64_t n = G.numel(), half = (n + 1) / 2;
  float *g = G.data_ptr<float>(), *d = D.data_ptr<float>();
  const float fa = static_cast<float>(a), fb = static_cast<float>(b);
  constexpr int64_t BLOCK = 4096;  // pairs per block: 32 kB of numbers, in the core's cache
  at::parallel_for(0, half, BLOCK, [&](int64_t b0, int64_t e0) {
    std::vector<float> eps(2 * BLOCK);
    for (int64_t lo = b0; lo < e0; lo += BLOCK) {
      const int64_t hi = std::min(e0, lo + BLOCK), len = hi - lo;
      fn(eps.data(), static_cast<uint64_t>(key), lo, hi);
      noisy_out(len, g + lo, d + lo, eps.data(), fa, fb, relu);  // first numbers
      const int64_t second = std::min(len, n - half - lo);  // the last pair's may be unused
      if (second > 0) {
        noisy_out(second, g + half + lo, d + half + lo, eps.data() + len, fa, fb, relu);
      }
    }
  });
}

std::tuple<Tensor, Tensor> mean_and_variance(const Tensor& pi, const Tensor& m, const Tensor& xi) {
  check(m, "m", m), check(pi, "pi", m), check(xi, "xi", m);
  Tensor mu = at::empty_like(m), var = at::empty_like(m);
  const float *p = pi.data_ptr<float>(), *mm = m.data_ptr<float>(), *x = xi.data_ptr<float>();
  float *o_mu = mu.data_ptr<float>(), *o_var = var.data_ptr<float>();
  at::parallel_for(0, m.numel(), GRAIN, [&](int64_t b, int64_t e) {
    moments(e - b, p + b, mm + b, x + b, o_mu + b, o_var + b);
  });
  return {mu, var};
}

std::tuple<Tensor, Tensor, Tensor> weight_grads_(Tensor d_mu, Tensor d_var, const Tensor& pi,
                                                 const Tensor& m, const Tensor& xi) {
  check(m, "m", m), check(pi, "pi", m), check(xi, "xi", m);
  check(d_mu, "d_mu", m), check(d_var, "d_var", m);
  Tensor d_pi = at::empty_like(m);
  float *g_mu = d_mu.data_ptr<float>(), *g_var = d_var.data_ptr<float>();
  float* g_pi = d_pi.data_ptr<float>();
  const float *p = pi.data_ptr<float>(), *mm = m.data_ptr<float>(), *x = xi.data_ptr<float>();
  at::parallel_for(0, m.numel(), GRAIN, [&](int64_t b, int64_t e) {
    grads(e - b, g_mu + b, g_var + b, g_pi + b, p + b, mm + b, x + b);
  });
  return {d_pi, d_mu, d_var};
}

std::tuple<Tensor, Tensor> preactivation_(Tensor G, Tensor D, const Tensor& eps, double a,
                                          double b, bool ratio, bool relu) {
  check(G, "G", G), check(D, "D", G), check(eps, "eps", G);
  Tensor z = at::empty_like(G), r = ratio ? at::empty_like(G) : at::empty({0}, G.options());
  float *g = G.data_ptr<float>(), *d = D.data_ptr<float>(), *oz = z.data_ptr<float>();
  float* o_r = ratio ? r.data_ptr<float>() : nullptr;
  const float* e_ = eps.data_ptr<float>();
  at::parallel_for(0, G.numel(), GRAIN, [&](int64_t b0, int64_t e0) {
    preact(e0 - b0, g + b0, d + b0, e_ + b0, oz + b0, o_r ? o_r + b0 : nullptr,
           static_cast<float>(a), static_cast<float>(b), relu);
  });
  return {z, r};
}

std::tuple<Tensor, Tensor> backward_signals(const Tensor& K, const Tensor& r, double a,
                                            double c, const std::optional<Tensor>& out) {
  check(K, "K", K), check(r, "r", K);
  if (out) check(*out, "out", K);
  Tensor Ka = at::empty_like(K), Q = at::empty_like(K);
  const float *k = K.data_ptr<float>(), *rr = r.data_ptr<float>();
  const float* o = out ? out->data_ptr<float>() : nullptr;
  float *o_ka = Ka.data_ptr<float>(), *o_q = Q.data_ptr<float>();
  at::parallel_for(0, K.numel(), GRAIN, [&](int64_t b, int64_t e) {
    signals(e - b, k + b, rr + b, o ? o + b : nullptr, o_ka + b, o_q + b, static_cast<float>(a),
            static_cast<float>(c));
  });
  return {Ka, Q};
}

}  // namespace

TORCH_LIBRARY(mfbook, lib) {
  lib.def("mean_and_variance(Tensor pi, Tensor m, Tensor xi) -> (Tensor, Tensor)");
  lib.def(
      "weight_grads_(Tensor(a!) d_mu, Tensor(b!) d_var, Tensor pi, Tensor m, Tensor xi)"
      " -> (Tensor, Tensor(a!), Tensor(b!))");
  lib.def(
      "preactivation_(Tensor(a!) G, Tensor(b!) D, Tensor eps, float a, float b, bool ratio,"
      " bool relu) -> (Tensor, Tensor)");
  lib.def(
      "backward_signals(Tensor K, Tensor r, float a, float c, Tensor? out) -> (Tensor, Tensor)");
  lib.def("normal_pairs_(Tensor(a!) out, int fill, int key) -> ()");
  lib.def(
      "noisy_output_(Tensor(a!) G, Tensor(b!) D, float a, float b, bool relu, int fill, int key)"
      " -> ()");
  lib.def(
      "adam_steps_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs,"
      " Tensor(c!)[] exp_avg_sqs, float[] hyper) -> ()");
}

TORCH_LIBRARY_IMPL(mfbook, CPU, lib) {
  lib.impl("mean_and_variance", mean_and_variance);
  lib.impl("weight_grads_", weight_grads_);
  lib.impl("preactivation_", preactivation_);
  lib.impl("backward_signals", backward_signals);
  lib.impl("adam_steps_", adam_steps_);
  lib.impl("normal_pairs_", normal_pairs_);
  lib.impl("noisy_output_", noisy_output_);
}
