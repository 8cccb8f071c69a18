"""MNIST with latency coding and a voltage read-out.

Each pixel is one input spike, brighter = earlier (0..20 ms, black pixels
silent). A hidden layer of LIF neurons (models/lif.neuron) feeds 10
non-spiking leaky integrators (models/li.neuron); the logits are the
exponentially weighted time integrals of their voltages,
int_0^T V(t) exp(-t/T) dt / T, computed by the ODE solver (loss shaping,
Nowotny et al. 2025).

    python examples/mnist_latency.py [MNIST_DIR]      # default data/mnist

Downloads into MNIST_DIR whichever of the four MNIST files are missing or damaged
(needs network then; a complete folder is only checked).
"""

import sys
from pathlib import Path

from eventax_dsl import datasets
from eventax_dsl.train import train

data_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "data/mnist")
datasets.download_mnist(data_dir)  # fetches only files that are missing or damaged

result = train(
    "mnist",
    data_dir=str(data_dir),
    model="lif",
    loss="exp-integral",  # the read-out model defaults to li for voltage losses
    hidden=(100,),
    epochs=1,
    train_size=2000,      # a subset to keep the example short (50000 available)
    val_size=1000,
    test_size=1000,
    batch_size=64,
    lr=1e-3,
    out="runs/example-mnist",
    overwrite=True,       # a second run of this script replaces the first
)
print("best epoch:", result.best)
