"""One process of test_multihost.py: two processes x two CPU devices train together.

``python -m tests.train.multihost_child PORT PROCESS_ID WORKDIR OUT.npz``: joins a
2-process run on 127.0.0.1:PORT, trains the batch-norm flow with ``fit`` on a
``BatchIterator`` that gives this process its half of every global batch (checkpoints and
a ragged validation set included), under every mode of ``jt.MODES``, and process 0
also trains the plain-jit reference on the whole global batches. Saves both results to OUT.npz.
"""

import sys

import jax

import jflows.train as jt


def main(port, process_id, workdir, out):
    jt.initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    import numpy as np

    from jflows.data import BatchIterator
    from tests.train import models

    assert jax.device_count() == 4 and jax.local_device_count() == 2
    data = models.data(320)
    train = BatchIterator(data, 64, seed=1, process_index=process_id, process_count=2)
    flow = models.make_flow()
    valid = models.data(90, seed=4)
    valid_batches = [{"x": valid["x"][i:i + 32][process_id::2]} for i in range(0, 90, 32)]
    arrays = {}
    for mode in jt.MODES:
        result = jt.fit(models.initial_state(flow),
                        jt.make_train_step(models.make_loss_fn(flow), models.optimizer()),
                        train, epochs=2,
                        validation=jt.Validation(jt.make_eval_step(models.make_eval_fn(flow)),
                                                 valid_batches),
                        workdir=f"{workdir}/{mode}", checkpointing=jt.Checkpointing(every=4),
                        logging=jt.Logging(progress=False), parallel=jt.Parallel(mode=mode))
        arrays.update({f"{mode}{jax.tree_util.keystr(p)}": np.asarray(leaf) for p, leaf in
                       jax.tree_util.tree_leaves_with_path((result.last_state.params,
                                                            result.last_state.model_state))})
        arrays[f"{mode}/validation_loss"] = np.array(result.history[-1]["validation"]["loss"])
    if process_id == 0:
        reference_flow = models.make_flow(axis_name=None)
        step = jax.jit(jt.make_train_step(models.make_loss_fn(reference_flow),
                                          models.optimizer(), axis_name=None))
        state = models.initial_state(reference_flow)
        whole = BatchIterator(data, 64, seed=1, process_index=0, process_count=1)
        for batch in whole.epoch(0):
            state, _ = step(state, batch)
        for batch in whole.epoch(1):
            state, _ = step(state, batch)
        arrays.update({f"reference{jax.tree_util.keystr(p)}": np.asarray(leaf) for p, leaf in
                       jax.tree_util.tree_leaves_with_path((state.params, state.model_state))})
        log_prob = reference_flow.log_prob(result.last_state.params,
                                           result.last_state.model_state, valid["x"])
        arrays["direct_validation_loss"] = np.asarray(-log_prob.mean())
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
