"""Your own neuron model, end to end: write it, compile it, simulate it, train it.

The model below is not in the library: a leaky integrate-and-fire neuron with
separate excitatory and inhibitory synaptic currents (two weight channels per
synapse) and a 1 ms refractory period. It is compiled in memory by
``eventax_dsl.load`` (``eventax-compile my_lif.neuron -o my_lif.py`` writes the
same model as a readable module), and trained on Yin-Yang with a hand-written
optax loop -- no trainer, just JAX:

    python examples/custom_model.py          # about a minute on a laptop CPU

``examples/yinyang_ttfs.py`` does the same task with ``eventax_dsl.train.train``,
which adds calibration, schedules, metrics, checkpoints and plots.
"""

import pathlib
import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import eventax_dsl
from eventax_dsl import datasets
from eventax_dsl.sim import FeedForward, normal_init, trainable
from eventax_dsl.train import ttfs_loss, ttfs_predict

SOURCE = '''language 1
neuron TwoChannelLIF
"""LIF with separate excitatory and inhibitory synaptic currents."""

parameters:
    tau_mem = 10 ms   learnable
    tau_exc = 5 ms
    tau_inh = 10 ms
    v_th    = 1.0

state:
    v     = 0.0
    i_exc = 0.0
    i_inh = 0.0

equations:
    v' = (-v + i_exc - i_inh) / tau_mem
    i_exc' = -i_exc / tau_exc
    i_inh' = -i_inh / tau_inh

spike when v >= v_th and not refractory
refractory 1 ms clamp v keep input
reset:
    v -= v_th                 # subtractive: the gradient flows through the reset

on input(w_exc, w_inh):
    i_exc += w_exc
    i_inh += w_inh
'''

path = pathlib.Path(tempfile.mkdtemp()) / "two_channel_lif.neuron"
path.write_text(SOURCE)
Model = eventax_dsl.load(path)  # a typo in the file raises CompileError: file:line:col + caret
print(Model.NAME, "states:", Model.state_names(), "weight channels:", [c.name for c in Model.CHANNELS])

# A 5-30-3 network of it; every synapse has one weight per channel.
net = FeedForward(Model, layers=[30, 3], in_size=5, key=jr.key(0),
                  weight_init=normal_init(4.0, 2.0))
# Start excitation-dominated (the initialiser drew both channels alike): small
# inhibitory weights, so that most neurons spike at first and every output has a gradient.
net = eqx.tree_at(lambda n: [w["w_inh"] for w in n.weights], net,
                  [0.2 * jnp.abs(w["w_inh"]) for w in net.weights])
print("weight channels of the first projection:",
      {k: v.shape for k, v in net.weights[0].items()})

T_MAX = 60.0
(x_train, y_train), _, (x_test, y_test) = datasets.yinyang_splits()
enc = lambda x: jnp.asarray(datasets.encode_yinyang(x), jnp.float32)  # noqa: E731
x_train, x_test = enc(x_train[:2048]), enc(x_test)
y_train, y_test = jnp.asarray(y_train[:2048]), jnp.asarray(y_test)

params, static = eqx.partition(net, trainable(net))
EPOCHS, BATCH = 3, 32
steps = EPOCHS * (len(y_train) // BATCH)
optim = optax.chain(optax.clip_by_global_norm(1.0),
                    optax.adamw(optax.cosine_decay_schedule(3e-3, steps, alpha=0.01)))
opt_state = optim.init(params)


def loss_fn(params, x, y):
    net = eqx.combine(params, static)
    t_first = jax.vmap(lambda xi: net.ttfs(xi, T_MAX))(x)  # (batch, 3); inf: no spike
    return ttfs_loss(t_first, y, t_max=T_MAX)


@eqx.filter_jit
def step(params, opt_state, x, y):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = optim.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state, loss


@eqx.filter_jit
def accuracy(params, x, y):
    net = eqx.combine(params, static)
    t_first = jax.vmap(lambda xi: net.ttfs(xi, T_MAX))(x)
    return jnp.mean(ttfs_predict(t_first) == y)


print(f"test accuracy before training: {float(accuracy(params, x_test, y_test)):.3f}")
order = np.random.default_rng(0).permutation(len(y_train))
for epoch in range(EPOCHS):
    losses = []
    for b in range(0, len(order) - BATCH + 1, BATCH):
        idx = order[b:b + BATCH]
        params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx])
        losses.append(float(loss))
    acc = float(accuracy(params, x_test, y_test))
    print(f"epoch {epoch + 1}: mean loss {np.mean(losses):.3f}, test accuracy {acc:.3f}")

net = eqx.combine(params, static)
print("learned membrane time constants (ms), first 5 hidden neurons:",
      np.round(np.asarray(net.populations[0].params["tau_mem"])[:5], 2))
