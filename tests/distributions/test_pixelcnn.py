"""The PixelCNN++ distribution: normalisation over every image, sampling, init, training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jflows.distributions as jd
from jflows.distributions.base import DensityModel
from jflows.distributions.pixelcnn import evaluation_fn, row_bands, training_loss_fn

# Shallow (one gated block pair, two resolutions): these tests are about the distribution,
# and each network shape costs a compilation; tests/nets covers deeper networks.
SMALL = {"num_resnet": 0, "num_hierarchies": 2, "num_filters": 8, "num_logistic_mix": 3}


def perturbed(params, key, scale=0.3):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    )


@pytest.fixture(scope="module")
def two_pixel_model():
    """A 2x1 grayscale model with random params: small enough to enumerate all 256^2 images."""
    model = jd.pixel_cnn((2, 1, 1), cond_shape=(2,), **SMALL)
    params, state = model.init(jax.random.key(0))
    params = perturbed(params, jax.random.key(1))
    grid = jnp.stack(jnp.meshgrid(jnp.arange(256), jnp.arange(256), indexing="ij"), -1)
    images = grid.reshape(-1, 2, 1, 1)
    cond = jnp.array([0.5, -1.0])  # one cond for every image: broadcast over the batch
    log_p = jax.jit(lambda p, s, x: model.log_prob(p, s, x, cond=cond))(params, state, images)
    return model, params, state, cond, np.exp(np.asarray(log_p, np.float64)).reshape(256, 256)


def test_is_a_density_model_and_refuses_to_be_a_jit_argument(two_pixel_model):
    model = two_pixel_model[0]
    assert isinstance(model, DensityModel)
    assert model.event_shape == (2, 1, 1) and model.cond_shape == (2,)
    with pytest.raises(TypeError, match="close over it"):
        jax.jit(lambda m: 0)(model)


def test_probabilities_of_all_images_sum_to_one(two_pixel_model):
    probs = two_pixel_model[-1]
    assert abs(probs.sum() - 1.0) < 1e-4
    # The second pixel's law depends on the first (the model is not a product of marginals).
    conditional = probs / probs.sum(axis=1, keepdims=True)
    assert np.abs(conditional[10] - conditional[240]).sum() > 1e-3


def test_samples_follow_the_enumerated_distribution(two_pixel_model):
    model, params, state, cond, probs = two_pixel_model
    n = 20_000
    samples, log_p = model.sample_and_log_prob(params, state, jax.random.key(2), n, cond=cond)
    assert samples.shape == (n, 2, 1, 1) and log_p.shape == (n,)
    samples = np.asarray(samples).reshape(n, 2)
    # The returned log-probabilities are those of the enumerated table.
    np.testing.assert_allclose(np.exp(log_p), probs[samples[:, 0], samples[:, 1]], rtol=1e-4)
    freq = np.zeros((16, 16))
    np.add.at(freq, (samples[:, 0] // 16, samples[:, 1] // 16), 1.0 / n)
    coarse = probs.reshape(16, 16, 16, 16).sum(axis=(1, 3))
    total_variation = 0.5 * np.abs(freq - coarse).sum()
    noise = 0.5 * np.sqrt(2 * coarse * (1 - coarse) / (np.pi * n)).sum()
    assert total_variation < 2 * noise + 2e-3, (total_variation, noise)


def test_float64_params_give_the_float32_log_prob(two_pixel_model):
    model, params, state, cond, probs = two_pixel_model
    images = jnp.array([[0, 0], [17, 200], [255, 3], [128, 255]])
    with jax.enable_x64(True):
        abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.float64))
        assert {leaf.dtype for leaf in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float64)}
        params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
        log_p = jax.jit(lambda p, x: model.log_prob(p, state, x, cond=cond))(
            params64, images.reshape(-1, 2, 1, 1))
        assert log_p.dtype == jnp.float64
    np.testing.assert_allclose(np.exp(log_p), probs[images[:, 0], images[:, 1]], rtol=1e-4)


@pytest.fixture(scope="module")
def rgb_model():
    model = jd.pixel_cnn((5, 4, 3), cond_shape=(3,), **SMALL)
    params, state = model.init(jax.random.key(5))
    return model, perturbed(params, jax.random.key(6)), state


def test_log_prob_batch_shapes_bits_per_dim_and_training_loss(rgb_model):
    model, params, state = rgb_model
    images = jax.random.randint(jax.random.key(4), (2, 3, 5, 4, 3), 0, 256)
    labels = jnp.array([[0, 1, 2], [2, 2, 0]])
    key = jax.random.key(3)

    @jax.jit
    def run(x, c):
        batch = {"x": x, "label": c}
        return (model.log_prob(params, state, x, cond=c),
                model.bits_per_dim(params, state, x, cond=c),
                model.log_prob_and_state(params, state, x, cond=c, key=key),
                model.bits_per_dim(params, state, x, cond=c, train=True, key=key),
                training_loss_fn(model)(params, state, batch, key),
                evaluation_fn(model)(params, state, batch, None))

    log_p, bpd, (train_log_p, new_state, info), train_bpd, (loss, (loss_state, metrics)), \
        evaluation = run(images, labels)
    assert log_p.shape == (2, 3) and new_state == state == loss_state and info == ()
    np.testing.assert_allclose(bpd, -log_p / (5 * 4 * 3 * math.log(2)), rtol=1e-6)
    # Training applies dropout (from the key): other values, the same in every training call.
    assert np.all(np.abs(train_log_p - log_p) > 1e-3)
    np.testing.assert_allclose(train_bpd, -train_log_p / (5 * 4 * 3 * math.log(2)), rtol=1e-6)
    np.testing.assert_allclose(loss, train_bpd.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["bits_per_dim"], loss)
    np.testing.assert_allclose(evaluation["bits_per_dim"], bpd.mean(), rtol=1e-6)
    # Each image's value is its own: reordering the batch reorders the values.
    flipped = run(images[::-1, ::-1], labels[::-1, ::-1])[0]
    np.testing.assert_allclose(flipped[::-1, ::-1], log_p, rtol=1e-5)
    # Under jit pixel values cannot be checked, and they are not clipped: 300 is not 255.
    top = images.at[0, 0, 0, 0, 0].set(255)
    clipped, over = run(top, labels)[0], run(top.at[0, 0, 0, 0, 0].set(300), labels)[0]
    assert np.isfinite(over[0, 0]) and abs(float(over[0, 0] - clipped[0, 0])) > 1e-3
    np.testing.assert_array_equal(over[1:], clipped[1:])


def test_sampling_is_deterministic_integer_and_band_independent(rgb_model):
    model, params, state = rgb_model
    labels = jnp.array([0, 2, 1])
    a = model.sample(params, state, jax.random.key(7), 3, cond=labels)
    b = model.sample(params, state, jax.random.key(7), 3, cond=labels)
    assert a.shape == (3, 5, 4, 3) and a.dtype == jnp.int32
    assert int(a.min()) >= 0 and int(a.max()) <= 255
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.sample(params, state, jax.random.key(8), 3, cond=labels))
    # The sample shape defaults to the labels' batch shape: one image per label.
    np.testing.assert_array_equal(model.sample(params, state, jax.random.key(7), cond=labels), a)
    # The cached default, row bands (cropped network passes) and one full network pass per
    # pixel draw the same images, up to float rounding of differently shaped operations.
    for method in ("naive", "banded"):
        assert_same_samples(a, model.sample(params, state, jax.random.key(7), 3, cond=labels,
                                            method=method))
    # One label for all, as a scalar, equals the label repeated.
    np.testing.assert_array_equal(
        model.sample(params, state, jax.random.key(9), (3,), cond=1),
        model.sample(params, state, jax.random.key(9), (3,), cond=jnp.array([1, 1, 1])),
    )


def assert_same_samples(a, b):
    """At most 1 % of the pixels differ, by at most one value (float rounding)."""
    diff = np.abs(np.asarray(a) - np.asarray(b))
    assert diff.max() <= 1 and np.mean(diff != 0) <= 0.01, (diff.max(), np.mean(diff != 0))


def test_cached_sampling_under_jit_and_vmap_and_for_label_batches(rgb_model):
    model, params, state = rgb_model
    keys = jax.random.split(jax.random.key(11), 2)
    labels = jnp.array([[0, 2], [1, 1]])
    batched = jax.jit(jax.vmap(lambda k, c: model.sample(params, state, k, cond=c)))(keys, labels)
    assert batched.shape == (2, 2, 5, 4, 3)
    for i in range(2):
        assert_same_samples(batched[i], model.sample(params, state, keys[i], cond=labels[i]))
    # A (2, 2) batch of labels draws the images of the flattened batch.
    grid = model.sample(params, state, keys[0], cond=labels)
    assert grid.shape == (2, 2, 5, 4, 3)
    np.testing.assert_array_equal(grid.reshape(4, 5, 4, 3),
                                  model.sample(params, state, keys[0], cond=labels.reshape(4)))


def test_row_bands():
    assert row_bands(28, 4) == [(0, 7), (7, 14), (14, 21), (21, 28)]
    assert row_bands(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert row_bands(2, 4) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="num_row_buckets must be >= 1"):
        row_bands(4, 0)


@pytest.mark.slow  # ~40 s of compilation; the experiments' smoke tests also train
def test_data_dependent_init_and_dropout_training_loss_goes_down():
    model = jd.pixel_cnn((4, 4, 1), cond_shape=(2,), dropout_p=0.5, **SMALL)
    images = jax.random.randint(jax.random.key(10), (16, 4, 4, 1), 0, 256) // 64 * 64
    labels = jnp.arange(16) % 2
    params, state = model.init(jax.random.key(11), images=images, cond=labels)
    raw = jax.jit(model.network.apply)({"params": params}, images, labels)
    np.testing.assert_allclose(raw.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)  # data-init worked

    optimizer = jd.paper_optimizer(learning_rate=3e-3)
    loss_fn = training_loss_fn(model)
    batch = {"x": images, "label": labels}

    @jax.jit
    def step(params, opt_state, key):
        value, grads = jax.value_and_grad(lambda p: loss_fn(p, state, batch, key)[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        return optax.apply_updates(params, updates), opt_state, value, finite

    opt_state = optimizer.init(params)
    eval_bpd = jax.jit(lambda p: evaluation_fn(model)(p, state, batch, None)["bits_per_dim"])
    before = float(eval_bpd(params))
    for t in range(20):
        params, opt_state, _, finite = step(params, opt_state, jax.random.key(t))
        assert finite
    assert float(eval_bpd(params)) < before - 1.0


def test_clear_errors(rgb_model):
    model, params, state = rgb_model
    image = jnp.zeros((1, 5, 4, 3), jnp.uint8)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.log_prob_and_state(params, state, image, cond=jnp.array([0]), train=True)
    with pytest.raises(ValueError, match="image shape"):
        model.log_prob(params, state, jnp.zeros((1, 4, 5, 3), jnp.uint8), cond=jnp.array([0]))
    with pytest.raises(ValueError, match="integer pixel values"):
        model.log_prob(params, state, jnp.zeros((1, 5, 4, 3)), cond=jnp.array([0]))
    for bad in (256, -1):  # checked eagerly, for JAX and NumPy images
        with pytest.raises(ValueError, match=f"pixel values in 0..255, got values from .*{bad}"):
            model.log_prob(params, state, image.astype(jnp.int32).at[0, 1, 2, 0].set(bad),
                           cond=jnp.array([0]))
        with pytest.raises(ValueError, match="pixel values in 0..255"):
            model.log_prob(params, state, np.full((1, 5, 4, 3), bad), cond=np.array([0]))
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\)"):
        model.log_prob(params, state, image, cond=jnp.array([5]))
    with pytest.raises(ValueError, match=r"this model is conditional \(cond_shape=\(3,\)\)"):
        model.log_prob(params, state, image)
    with pytest.raises(ValueError, match=r"expected cond with trailing shape \(3,\)"):
        model.log_prob(params, state, image, cond=jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"batch shape \(3,\).*data's batch shape \(2,\)"):
        model.log_prob(params, state, jnp.zeros((2, 5, 4, 3), jnp.uint8), cond=jnp.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"sample_shape \(4,\) does not broadcast with cond's "
                                         r"batch shape \(3,\)"):
        model.sample(params, state, jax.random.key(0), 4, cond=jnp.array([0, 1, 2]))
    # (params, state) swapped, or params of another structure.
    with pytest.raises(ValueError, match="params do not match what init made"):
        model.log_prob(state, params, image, cond=jnp.array([0]))
    with pytest.raises(ValueError, match="params do not match what init made"):
        model.sample(dict(list(params.items())[1:]), state, jax.random.key(0), cond=0)
    with pytest.raises(ValueError, match="method must be one of"):
        model.sample(params, state, jax.random.key(0), cond=0, method="fast")
    with pytest.raises(ValueError, match="num_row_buckets goes with method='banded'"):
        model.sample(params, state, jax.random.key(0), cond=0, num_row_buckets=2)
    with pytest.raises(ValueError, match="num_row_buckets must be >= 1"):
        model.sample(params, state, jax.random.key(0), cond=0, method="banded", num_row_buckets=0)
    with pytest.raises(TypeError, match="expected a PRNG key"):
        model.sample(params, state, 0, cond=0)
    with pytest.raises(ValueError, match="got cond but no images"):
        model.init(jax.random.key(0), cond=jnp.array([0]))
    with pytest.raises(ValueError, match="use_data_init=False"):
        jd.pixel_cnn((5, 4, 3), use_data_init=False, **SMALL).init(jax.random.key(0),
                                                                   images=image)
    with pytest.raises(ValueError, match="num_logistic_mix"):
        jd.pixel_cnn((4, 4, 1), num_logistic_mix=0)
    with pytest.raises(ValueError, match="image_shape must be"):
        jd.pixel_cnn((4, 4))
    with pytest.raises(ValueError, match="use_data_init needs use_weight_norm"):
        jd.pixel_cnn((4, 4, 1), use_weight_norm=False)


def test_paper_optimizer_is_adam_095_09995_with_per_step_decay():
    opt = jd.paper_optimizer()
    params = {"w": jnp.zeros(())}
    step = 100_000
    state = optax.tree_utils.tree_set(opt.init(params), count=jnp.asarray(step, jnp.int32))
    updates, _ = opt.update({"w": jnp.ones(())}, state, params)
    # One Adam step from zero moments at a late step (bias corrections ~1):
    # m = 1 - b1, v = 1 - b2, update = -lr_t m / sqrt(v), lr_t = 1e-3 * 0.999995^t.
    expected = 1e-3 * 0.999995**step * (1 - 0.95) / math.sqrt(1 - 0.9995)
    np.testing.assert_allclose(-updates["w"], expected, rtol=2e-3)  # float32 0.999995^t
