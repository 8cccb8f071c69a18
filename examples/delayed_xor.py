"""Delayed-memory XOR with a recurrent network of event-based GRUs.

Two binary values arrive 5-25 ms apart; a cue comes 10-30 ms later and the
network must answer value_1 XOR value_2 *after* the cue. 32 recurrent EGRU
units (models/egru.neuron, no self-connections) feed two leaky-integrator
outputs; each output's voltage is integrated over [cue, 90 ms] with an
exponential weight (the window starts at each trial's own cue time).

    python examples/delayed_xor.py
"""

from eventax_dsl.train import train

result = train(
    "xor",
    model="egru",
    loss="exp-integral",
    hidden=(32,),         # one recurrent population
    epochs=2,
    train_size=1000,      # a subset to keep the example short (5000 available)
    batch_size=32,
    lr=1e-3,
    out="runs/example-xor",
    overwrite=True,       # a second run of this script replaces the first
)
print("best epoch:", result.best)
