"""Configurations of the PixelCNN++ MNIST experiment (unconditional and class-conditional).

``FULL``: the QuickDraw/paper-style network (num_resnet=5, num_hierarchies=3,
num_filters=128, num_logistic_mix=5, dropout 0.5) with the paper's optimizer settings.
``CPU``: the reduced model run on the shared 2-core CPU (see README). ``SMOKE``: the test's
tiny run.
"""

import dataclasses

from experiments.pixelcnn_quickdraw.pipeline import PixelCNNConfig

DATA_PATH = None  # jflows.data downloads and caches MNIST; --data for a local file
OUT_DIR = "runs/pixelcnn_mnist"

FULL = PixelCNNConfig(num_resnet=5, num_hierarchies=3, num_filters=128, num_logistic_mix=5,
                      dropout_p=0.5, batch_size=64, epochs=100, samples_per_class=8)
CPU = dataclasses.replace(FULL, num_resnet=2, num_filters=32, batch_size=16, epochs=1000,
                          max_steps=300, polyak_decay=0.99, max_test_examples=1000,
                          samples_per_class=4)
SMOKE = dataclasses.replace(FULL, num_resnet=0, num_hierarchies=2, num_filters=8,
                            num_logistic_mix=2, batch_size=8, epochs=1, max_steps=2,
                            max_train_examples=64, max_test_examples=16, samples_per_class=1)
CONFIGS = {"full": FULL, "cpu": CPU, "smoke": SMOKE}
