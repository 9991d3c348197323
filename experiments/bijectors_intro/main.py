"""Densities through bijectors, and a 2-D flow trained by maximum likelihood.

Part 1 (change of variables, no training):

* The standard normal log-density at 2.01, directly and as ``log p_U(Phi(x)) + log|Phi'(x)|``
  with ``U`` uniform on (0, 1) and ``Phi`` the normal CDF bijector (both -2.938989).
* ``Y = 2 X``, ``X ~ N(0, 1)``: log-densities of ``y = 2x`` at ``x = 0, 0.5, 1``
  (-1.6120857, -1.7370857, -2.1120858) and CDFs equal before and after the bijection
  (0.5, 0.6914625, 0.8413447).

Part 2: the flow ``chain(leaky_relu(learnable slope), affine_tril_lowrank(rank=2))`` on a
standard normal base, fit with Adam to 1,000 draws from ``N((1, 1), 2^2 I)``; reports the
learned mean and covariance (from flow samples) against the truth, the final NLL against
the true entropy, and a PNG of data vs samples.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jflows.bijectors as jb
import jflows.distributions as jd
from experiments.bijectors_intro.config import Config


def change_of_variables() -> dict:
    """Part 1: the numbers of the bijectors introduction."""
    key = jax.random.key(0)
    x = jnp.array(2.01)
    normal, uniform = jd.standard_normal(), jd.uniform()
    normal_params, normal_state = normal.init(key)
    direct = normal.log_prob(normal_params, normal_state, x)
    cdf = jb.normal_cdf()
    u, log_det, _ = cdf.forward((), (), x)
    via_uniform = uniform.log_prob(*uniform.init(key), u) + log_det

    xs = jnp.array([0.0, 0.5, 1.0])
    scaled = jd.transformed(normal, jb.scale(2.0))
    params, state = scaled.init(key)
    ys = jb.forward_value(scaled.bijector, params["bijector"], state["bijector"], xs)
    return {
        "normal_log_prob_direct": float(direct),
        "normal_log_prob_via_uniform_and_normal_cdf": float(via_uniform),
        "scale2_x": xs.tolist(),
        "scale2_log_prob_of_y": scaled.log_prob(params, state, ys).tolist(),
        "scale2_cdf_of_x_before": normal.cdf(normal_params, normal_state, xs).tolist(),
        "scale2_cdf_of_y_after": scaled.cdf(params, state, ys).tolist(),
    }


def make_flow(update_rank: int) -> jd.TransformedDistribution:
    """Leaky ReLU with learnable slope, then ``y = (L + V V^T) x + b``."""
    return jd.transformed(
        jd.standard_normal((2,)),
        jb.chain(jb.leaky_relu(), jb.affine_tril_lowrank(rank=update_rank)),
    )


def fit_flow(config: Config) -> tuple[dict, dict]:
    """Part 2: maximum-likelihood fit of the 2-D flow; returns (results, arrays to plot)."""
    key_data, key_init, key_sample = jax.random.split(jax.random.key(config.seed), 3)
    true_mean = jnp.asarray(config.true_mean)
    data = true_mean + config.true_scale * jax.random.normal(key_data, (config.num_samples, 2))

    flow = make_flow(config.update_rank)
    params, state = flow.init(key_init)
    optimizer = optax.adam(config.learning_rate)
    opt_state = optimizer.init(params)

    def nll(params):
        return -jnp.mean(flow.log_prob(params, state, data))

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(nll)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    initial_nll = float(nll(params))
    start = time.perf_counter()
    for _ in range(config.num_steps):
        params, opt_state, _ = step(params, opt_state)
    final_nll = float(jax.block_until_ready(nll(params)))
    seconds = time.perf_counter() - start

    samples = flow.sample(params, state, key_sample, (config.num_eval_samples,))
    true_cov = config.true_scale**2 * np.eye(2)
    true_entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * true_cov))
    true_dist = jd.diag_normal((2,), loc=true_mean, scale=config.true_scale)
    true_nll = -true_dist.log_prob(*true_dist.init(key_init), data).mean()
    results = {
        "initial_nll": initial_nll,
        "final_nll": final_nll,
        "true_entropy": true_entropy,
        "true_distribution_nll_on_the_same_data": float(true_nll),
        "learned_mean": np.asarray(samples.mean(0)).tolist(),
        "true_mean": list(config.true_mean),
        "learned_covariance": np.cov(np.asarray(samples).T).tolist(),
        "true_covariance": true_cov.tolist(),
        "data_mean": np.asarray(data.mean(0)).tolist(),
        "data_covariance": np.cov(np.asarray(data).T).tolist(),
        "learned_slope": float(jnp.exp(params["bijector"][0]["log_slope"])),
        "train_seconds": seconds,
        "num_steps": config.num_steps,
    }
    return results, {"data": np.asarray(data), "samples": np.asarray(samples[: len(data)])}


def plot_data_vs_samples(arrays: dict, path: str) -> None:
    """Scatter plots of the training data and of as many flow samples, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for ax, (title, points) in zip(axes, (("data", arrays["data"]),
                                          ("flow samples", arrays["samples"])), strict=True):
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.suptitle("N((1, 1), 4 I) fit by leaky ReLU -> affine (tril + rank-2)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _format(values) -> str:
    return np.array2string(np.asarray(values), precision=7, separator=", ")


def main(config: Config) -> dict:
    os.makedirs(config.out_dir, exist_ok=True)
    part1 = change_of_variables()
    print("Standard normal log-density at 2.01:")
    print(f"  directly                                  {part1['normal_log_prob_direct']:.6f}")
    print("  uniform log-density of NormalCDF(x) + its forward log-det "
          f"{part1['normal_log_prob_via_uniform_and_normal_cdf']:.6f}")
    print("Y = 2X, X ~ N(0, 1), at x = (0, 0.5, 1):")
    print(f"  log p_Y(2x)       {_format(part1['scale2_log_prob_of_y'])}")
    print(f"  CDF_X(x)          {_format(part1['scale2_cdf_of_x_before'])}")
    print(f"  CDF_Y(2x)         {_format(part1['scale2_cdf_of_y_after'])}")

    part2, arrays = fit_flow(config)
    png = os.path.join(config.out_dir, "data_vs_samples.png")
    plot_data_vs_samples(arrays, png)
    print(f"2-D flow fit to {config.num_samples} draws of N((1, 1), 2^2 I), "
          f"{config.num_steps} Adam steps ({part2['train_seconds']:.1f} s):")
    print(f"  mean:       learned {_format(part2['learned_mean'])}  "
          f"data (the MLE) {_format(part2['data_mean'])}  true {_format(part2['true_mean'])}")
    for name in ("learned", "data", "true"):
        cov = np.asarray(part2[f"{name}_covariance"]).ravel()
        print(f"  covariance {name:8s}[[{cov[0]:.4f}, {cov[1]:.4f}], [{cov[2]:.4f}, {cov[3]:.4f}]]")
    print(f"  learned leaky-ReLU slope {part2['learned_slope']:.4f}")
    print(f"  final NLL {part2['final_nll']:.4f} nats (initial {part2['initial_nll']:.4f}); "
          f"true entropy {part2['true_entropy']:.4f}; NLL of the true distribution on the "
          f"same data {part2['true_distribution_nll_on_the_same_data']:.4f}")
    results = {"config": dataclasses.asdict(config), **part1, **part2, "plot": png}
    with open(os.path.join(config.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"Wrote {png} and {os.path.join(config.out_dir, 'results.json')}")
    return results
