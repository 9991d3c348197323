"""Vector fields for the FFJORD tests."""

import flax.linen as nn
import jax


class LinearField(nn.Module):
    """``f(t, z) = z @ K`` (time-independent), so on ``[t0, t1]`` with ``T = t1 - t0``:
    the flow is ``z0 @ expm(K T)``, its log-det ``tr(K) T``, its Jacobian ``K^T``."""

    @nn.compact
    def __call__(self, t, z):
        del t
        return nn.Dense(z.shape[-1], use_bias=False)(z)


class CountingField(nn.Module):
    """A small MLP field that reports every evaluation to ``counter`` (a host callback)."""

    counter: object

    @nn.compact
    def __call__(self, t, z):
        jax.debug.callback(self.counter, t)
        h = nn.tanh(nn.Dense(8)(z))
        return nn.Dense(z.shape[-1])(h) * (1.0 + t)
