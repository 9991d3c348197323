"""jflows: normalizing flows in JAX as pure functions over explicit parameter pytrees.

    import jflows.bijectors as jb
    import jflows.distributions as jd

    bijector = jb.chain(jb.leaky_relu(), jb.affine_tril_lowrank(rank=2))
    flow = jd.transformed(jd.standard_normal((2,)), bijector)
    params, state = flow.init(jax.random.key(0))
    log_prob = flow.log_prob(params, state, x)       # evaluation: the array alone
    log_prob, state, info = flow.log_prob_and_state(params, state, x, train=True)  # training
"""

from jflows import bijectors, distributions

__version__ = "0.1.0"
__all__ = ["bijectors", "distributions"]
