// Fused CPU kernels for the gBP layer (chapter 3) and the parameter update (chapter 4), compiled
// on first use by mfbook/kernels.py.
//
// Each kernel is ONE pass over its tensors, in place of the three to ten elementwise passes that
// the torch expressions in mfbook/gbp.py and mfbook/update.py take; the formulas are theirs, term
// by term, and the tests compare the two. The work is split with at::parallel_for, which runs on
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

// d_pi = (mu m - s) d_var - m d_mu;  d_m = (d_mu + 2 pi m d_var)(1 - pi);  d_xi = (1 - pi) d_var
// d_m is written over d_mu and d_xi over d_var.
void grads(int64_t n, float* __restrict__ d_mu, float* __restrict__ d_var,
           float* __restrict__ d_pi, const float* __restrict__ pi, const float* __restrict__ m,
           const float* __restrict__ xi) {
  for (int64_t i = 0; i < n; ++i) {
    const float pi_m = pi[i] * m[i];
    const float s = xi[i] + pi_m * m[i];
    const float g_mu = d_mu[i], g_var = d_var[i];
    d_pi[i] = ((m[i] - pi_m) * m[i] - s) * g_var - m[i] * g_mu;
    d_mu[i] = (g_mu + 2.0f * pi_m * g_var) - pi[i] * (g_mu + 2.0f * pi_m * g_var);
    d_var[i] = g_var - pi[i] * g_var;
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
// stays NaN, so a diverged run is still detected.
void adam(int64_t n, float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m1,
          float* __restrict__ m2, float step_size, float w1, bool small_w1, float beta2, float w2,
          float bc2_sqrt, float eps, float decay, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float ea = small_w1 ? m1[i] + w1 * (gi - m1[i]) : gi - (gi - m1[i]) * (1.0f - w1);
    const float es = m2[i] * beta2 + w2 * gi * gi;
    m1[i] = ea;
    m2[i] = es;
    const float v = (p[i] - step_size * ea / (std::sqrt(es) / bc2_sqrt + eps)) * decay;
    p[i] = std::min(std::max(v, lo), hi);
  }
}

void adam_step_(Tensor p, const Tensor& grad, Tensor exp_avg, Tensor exp_avg_sq, double step,
                double lr, double beta1, double beta2, double eps, double decay, double lo,
                double hi) {
  check(p, "param", p), check(grad, "grad", p);
  check(exp_avg, "exp_avg", p), check(exp_avg_sq, "exp_avg_sq", p);
  TORCH_CHECK(step >= 1, "step must be >= 1, got ", step);
  const double w1 = 1 - beta1, bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
  float *pp = p.data_ptr<float>(), *m1 = exp_avg.data_ptr<float>();
  float* m2 = exp_avg_sq.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  at::parallel_for(0, p.numel(), GRAIN, [&](int64_t b, int64_t e) {
    adam(e - b, pp + b, g + b, m1 + b, m2 + b, static_cast<float>(lr / bc1),
         static_cast<float>(w1), std::abs(w1) < 0.5, static_cast<float>(beta2),
         static_cast<float>(1 - beta2), static_cast<float>(std::sqrt(bc2)),
         static_cast<float>(eps), static_cast<float>(decay), static_cast<float>(lo),
         static_cast<float>(hi));
  });
}

// The noise eps (mfbook/noise.py): `fill` is the address of the numba-compiled C function
// mfbook._noise_kernels.fill_range_c(out, half, key, lo, hi), which writes pairs lo..hi-1 of a
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
      "adam_step_(Tensor(a!) p, Tensor grad, Tensor(b!) exp_avg, Tensor(c!) exp_avg_sq,"
      " float step, float lr, float beta1, float beta2, float eps, float decay, float lo,"
      " float hi) -> ()");
}

TORCH_LIBRARY_IMPL(mfbook, CPU, lib) {
  lib.impl("mean_and_variance", mean_and_variance);
  lib.impl("weight_grads_", weight_grads_);
  lib.impl("preactivation_", preactivation_);
  lib.impl("backward_signals", backward_signals);
  lib.impl("adam_step_", adam_step_);
  lib.impl("normal_pairs_", normal_pairs_);
}
