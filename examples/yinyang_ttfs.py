"""Yin-Yang with time-to-first-spike coding: the class is the output neuron that fires first.

A 5-50-3 network of quadratic integrate-and-fire neurons (models/qif.neuron),
trained with exact spike-time gradients and the loss of Wunderlich & Pehle (2021).
Each of the 4 features (and a bias) is one input spike in [0, 30] ms.

    python examples/yinyang_ttfs.py          # a few minutes on a laptop CPU

Writes metrics, checkpoints and plots to runs/example-yinyang (resume with
`eventax-train yinyang --resume runs/example-yinyang --epochs 10`).
"""

import numpy as np

from eventax_dsl import datasets
from eventax_dsl.train import train

result = train(
    "yinyang",
    model="qif",          # hidden layer: a library name or the path of any .neuron file
    loss="ttfs",          # output layer: QIF too (a spiking read-out)
    hidden=(50,),
    epochs=3,
    train_size=1000,      # a subset, to keep the example short (the full set has 5000)
    batch_size=32,
    lr=5e-3,              # AdamW, gradients clipped to global norm 1
    out="runs/example-yinyang",
    overwrite=True,       # a second run of this script replaces the first
)
print("best epoch:", result.best)

# The trained network is an ordinary PyTree: use it directly.
(_, _), _, (x_test, y_test) = datasets.yinyang_splits()
times = np.asarray(datasets.encode_yinyang(x_test[:5]), np.float32)
for x, label in zip(times, y_test[:5]):
    t_first = result.net.ttfs(x, 50.0)           # first spike time of each output neuron
    print(f"label {label}: output spike times {np.round(np.asarray(t_first), 2)}")
