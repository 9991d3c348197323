"""Configurations of the PixelCNN++ QuickDraw experiment.

``FULL`` is the seed's setup (28x28x1, class-conditional, num_resnet=5, num_hierarchies=3,
num_filters=128, num_logistic_mix=5, dropout 0.5, Adam 1e-3 decayed 0.999995 per step,
Polyak 0.9995). ``CPU`` is the reduced model run on the shared 2-core CPU (see README);
``SMOKE`` is the test's tiny run.
"""

import dataclasses

from experiments.pixelcnn_quickdraw.pipeline import PixelCNNConfig

DATA_PATH = None  # jflows.data downloads and caches the SEED_CLASSES; --data for a local file
OUT_DIR = "runs/pixelcnn_quickdraw"

FULL = PixelCNNConfig(num_resnet=5, num_hierarchies=3, num_filters=128, num_logistic_mix=5,
                      dropout_p=0.5, conditional=True, batch_size=64, epochs=100)
CPU = dataclasses.replace(FULL, num_resnet=2, num_filters=32, batch_size=16, epochs=1000,
                          max_steps=600, polyak_decay=0.995, max_test_examples=600)
SMOKE = dataclasses.replace(FULL, num_resnet=0, num_hierarchies=2, num_filters=8,
                            num_logistic_mix=2, batch_size=8, epochs=1, max_steps=2,
                            max_train_examples=64, max_test_examples=16, samples_per_class=2)
CONFIGS = {"full": FULL, "cpu": CPU, "smoke": SMOKE}
