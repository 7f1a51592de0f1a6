"""Ensembles (section 4.4.3): averaging the predictions of several nets beats the average net.

Eight MLPs that differ only in their initial weights and shuffles are trained as one vmapped
program (``fit_ensemble``); the accuracy of the average of the first k members' probabilities
is measured for k = 1 .. 8, against the mean and the best single member.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import train as T
from jaxnet.chapter._common import CE, claim, mlp, new_result, optimizer, pyplot, save, small_digits
from jaxnet.nn import losses


def by_members(members: int = 8, epochs: int = 30) -> dict:
    """Ensemble accuracy on validation data for the first 1..``members`` members, and each member's accuracy."""
    data, val = small_digits(600)
    model = mlp((64, 10), "relu")
    res = T.fit_ensemble(
        model,
        CE,
        optimizer("sgd", learning_rate=0.05, momentum=0.9),
        data,
        members=members,
        epochs=epochs,
        batch_size=32,
        key=jax.random.PRNGKey(0),
        metrics={"accuracy": losses.accuracy},
        progress=False,
    )
    probs = T.member_probabilities((model, res.params, res.state), val[0])
    member = [float(jnp.mean(jnp.argmax(p, -1) == val[1])) for p in probs]
    curve = [float(jnp.mean(jnp.argmax(jnp.mean(probs[:k], 0), -1) == val[1])) for k in range(1, members + 1)]
    return {"members": member, "ensemble": curve}


def run(quick: bool = True, out: str | None = None) -> dict:
    """Ensemble accuracy against the number of members."""
    res = new_result("ensembles", "4.4.3", "Ensembles")
    r = by_members(8 if quick else 16, 30 if quick else 100)
    mean_member = float(np.mean(r["members"]))
    res["numbers"]["member validation accuracy"] = r["members"]
    res["numbers"]["ensemble of the first k members, k = 1.."] = r["ensemble"]
    res["claims"].append(
        claim(
            "an ensemble beats its mean member",
            r["ensemble"][-1] > mean_member,
            f"{len(r['members'])} members: ensemble {r['ensemble'][-1]:.3f}, mean member {mean_member:.3f}, "
            f"best member {max(r['members']):.3f}",
        )
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    k = np.arange(1, len(r["ensemble"]) + 1)
    ax.plot(k, r["ensemble"], "o-", label="ensemble of the first k members")
    ax.axhline(mean_member, color="C1", ls="--", label="mean member")
    ax.axhline(max(r["members"]), color="C2", ls=":", label="best member")
    ax.set_xlabel("members k")
    ax.set_ylabel("validation accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    save(res, fig, out, "ensembles.png", "Validation accuracy of an ensemble against its number of members.")
    return res
