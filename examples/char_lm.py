"""A character-level transformer language model trained on the Python standard library's own source.

Every machine that runs this has the text: the ``.py`` files below, read from the running Python's
standard library (``sysconfig.get_paths()["stdlib"]``). ``TRAIN_FILES`` are the training text,
``HELD_OUT_FILES`` the validation text; both lists are fixed, and each file exists as a plain
module in CPython 3.11 to 3.14 (a missing one stops the script with its path).

The vocabulary is the 256 byte values (the files are UTF-8 and almost all ASCII, so a byte is a
character nearly everywhere; the script prints how many held-out bytes are not ASCII). The model
is :func:`jaxnet.nn.transformer_lm` (causal, learned positions, tied embedding), trained with
:func:`jaxnet.train.fit` and Adam on random windows of ``context + 1`` bytes. The script prints
bits per character (``loss / ln 2``) on the training windows and on the held-out text, beside:

- the unigram baseline: the entropy of the training text's byte frequencies, applied to the
  held-out text (its cross-entropy), the best any model that ignores context can do;
- ``zlib`` (level 9) and ``lzma`` (preset 9): ``8 * len(compressed) / len(text)`` of the whole
  held-out text. They are whole-text compressors that learn as they go from an empty start (and
  pay for their headers); the model learned from the training files first and sees at most
  ``context`` bytes back. So this is a yardstick, not a contest on equal terms.

The held-out bits per character are the mean over non-overlapping windows of ``context`` bytes
(each predicted from the start of its window), so early positions of each window see little context.

Then it prints a sample generated from a prompt.

Usage::

    python examples/char_lm.py             # quick: under 3 minutes on 2 CPU cores
    python examples/char_lm.py --full      # a longer run of a larger model
    python examples/char_lm.py --steps 50  # override the number of training steps
"""

from __future__ import annotations

import argparse
import lzma
import math
import os
import resource
import sysconfig
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import nn, optim
from jaxnet import train as T

TRAIN_FILES = (
    "argparse.py",
    "difflib.py",
    "functools.py",
    "fractions.py",
    "statistics.py",
    "calendar.py",
    "csv.py",
    "contextlib.py",
    "dataclasses.py",
    "fnmatch.py",
    "pprint.py",
    "random.py",
    "sched.py",
    "shutil.py",
    "tempfile.py",
    "ipaddress.py",
    "enum.py",
    "configparser.py",
    "numbers.py",
    "weakref.py",
    "tokenize.py",
    "gettext.py",
    "operator.py",
    "heapq.py",
    "shlex.py",
    "bisect.py",
)
HELD_OUT_FILES = ("textwrap.py", "queue.py", "copy.py", "glob.py")

VOCAB = 256
TIED = False
LN2 = math.log(2.0)

# name -> model and training settings. Quick: ~90 s on 2 busy CPU cores; full: several minutes more.
SETTINGS = {
    "quick": {
        "context": 64,
        "d_model": 96,
        "num_layers": 2,
        "num_heads": 4,
        "batch": 32,
        "steps": 500,
        "lr": 6e-3,
        "held_out_chars": 24_000,
    },
    "full": {
        "context": 128,
        "d_model": 192,
        "num_layers": 4,
        "num_heads": 6,
        "batch": 64,
        "steps": 4000,
        "lr": 2e-3,
        "held_out_chars": None,
    },
}
EVAL_EVERY = 100  # steps per fit epoch: one held-out evaluation each


def read_stdlib(files, stdlib: str | None = None) -> bytes:
    """The named standard-library files, concatenated (UTF-8 bytes)."""
    stdlib = stdlib or sysconfig.get_paths()["stdlib"]
    missing = [f for f in files if not os.path.isfile(os.path.join(stdlib, f))]
    if missing:
        raise SystemExit(
            f"char_lm: the standard library at {stdlib} lacks {missing}; "
            "this example expects CPython 3.11+ with its source files installed"
        )
    parts = []
    for f in files:
        with open(os.path.join(stdlib, f), "rb") as fh:
            parts.append(fh.read())
    return b"\n".join(parts)


def as_ids(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype=np.uint8).astype(np.int32)


def random_windows(ids: np.ndarray, n: int, length: int, key) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows of ``length + 1`` bytes at random offsets: inputs ``[n, length]``, next-byte targets."""
    starts = np.asarray(jax.random.randint(key, (n,), 0, len(ids) - length - 1))
    w = ids[starts[:, None] + np.arange(length + 1)]
    return w[:, :-1], w[:, 1:]


def consecutive_windows(ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows covering ``ids``: inputs and next-byte targets, each ``[n, length]``."""
    n = (len(ids) - 1) // length
    x = ids[: n * length].reshape(n, length)
    y = ids[1 : n * length + 1].reshape(n, length)
    return x, y


def unigram_bpc(train_ids: np.ndarray, test_ids: np.ndarray) -> float:
    """Cross-entropy (bits per byte) of ``test_ids`` under the training text's byte frequencies (add-one)."""
    counts = np.bincount(train_ids, minlength=VOCAB).astype(np.float64) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[test_ids].mean())


def compressor_bpc(text: bytes) -> dict:
    """Bits per byte of zlib (level 9) and lzma (preset 9) on the whole of ``text``."""
    return {
        "zlib": 8 * len(zlib.compress(text, 9)) / len(text),
        "lzma": 8 * len(lzma.compress(text, preset=9)) / len(text),
    }


def sample(model, params, prompt: bytes, max_new_tokens: int, *, key, context: int, temperature=0.8, top_k=None):
    """Continue ``prompt`` by ``max_new_tokens`` bytes drawn from the model with :func:`jaxnet.generate`.

    ``generate`` keeps a key/value cache of ``context`` (the model's ``max_len``) positions, so a longer
    sample is drawn in chunks: each chunk continues the last ``context // 2`` bytes by ``context // 2``
    new ones (the prompt is left-padded with spaces to that length), one compiled program for all chunks.
    """
    half = context // 2
    seq = list(as_ids(prompt))
    seq = [32] * max(0, half - len(seq)) + seq
    start = len(seq) - len(as_ids(prompt))
    done, chunk = 0, 0
    while done < max_new_tokens:
        window = jnp.asarray(seq[-half:], jnp.int32)[None, :]
        out = nn.generate(
            model, params, window, half, key=jax.random.fold_in(key, chunk), temperature=temperature, top_k=top_k
        )
        new = [int(t) for t in np.asarray(out[0, half:])][: max_new_tokens - done]
        seq += new
        done, chunk = done + len(new), chunk + 1
    return bytes(seq[start:])


def main(argv=None) -> dict:
    """Train, evaluate and sample; return the figures printed (bits per character and baselines)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the longer run of a larger model")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the setting's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the init, the windows and the sample")
    p.add_argument("--sample", type=int, default=300, help="bytes to generate (0: none)")
    p.add_argument("--held-out-chars", type=int, default=None, help="evaluate on this many held-out bytes")
    p.add_argument("--tiny", action="store_true", help="a tiny model, for tests (seconds)")
    args = p.parse_args(argv)
    s = dict(SETTINGS["full" if args.full else "quick"])
    if args.tiny:
        s.update(context=32, d_model=32, num_layers=1, num_heads=2, batch=16, steps=150, lr=1e-2, held_out_chars=4000)
    if args.steps is not None:
        s["steps"] = args.steps
    if args.held_out_chars is not None:
        s["held_out_chars"] = args.held_out_chars
    t_start = time.perf_counter()

    train_text, held_text = read_stdlib(TRAIN_FILES), read_stdlib(HELD_OUT_FILES)
    if s["held_out_chars"]:
        held_text = held_text[: s["held_out_chars"]]
    train_ids, held_ids = as_ids(train_text), as_ids(held_text)
    print(
        f"text: {len(train_text):,} training bytes ({len(TRAIN_FILES)} files), {len(held_text):,} held-out bytes "
        f"({', '.join(HELD_OUT_FILES)}; {int(np.sum(held_ids > 127))} not ASCII)"
    )

    key = jax.random.PRNGKey(args.seed)
    k_windows, k_fit, k_sample = jax.random.split(key, 3)
    steps, batch, context = s["steps"], s["batch"], s["context"]
    # one epoch over steps * batch fresh random windows: every step sees new text
    x, y = random_windows(train_ids, steps * batch, context, k_windows)
    held = consecutive_windows(held_ids, context)
    train_probe = consecutive_windows(train_ids[: len(held_ids)], context)  # as much training text as held out

    model = nn.transformer_lm(VOCAB, s["d_model"], s["num_layers"], s["num_heads"], context, tie_embeddings=TIED)
    optimizer = optim.adam(optim.warmup_cosine_decay(s["lr"], max(steps // 20, 1), steps))
    loss = "softmax_cross_entropy_with_integer_labels"
    t0 = time.perf_counter()
    fitted = T.fit(model, loss, optimizer, (x, y), epochs=1, batch_size=batch, key=k_fit, progress=False)
    train_seconds = time.perf_counter() - t0

    def bpc(data) -> float:
        return T.evaluate(model, loss, fitted.params, fitted.state, data, batch_size=256)["loss"] / LN2

    figures = {
        "train_bpc": bpc(train_probe),
        "held_out_bpc": bpc(held),
        "unigram_bpc": unigram_bpc(train_ids, held_ids),
        **{f"{k}_bpc": v for k, v in compressor_bpc(held_text).items()},
    }
    print(
        f"model: transformer_lm(d_model={s['d_model']}, layers={s['num_layers']}, heads={s['num_heads']}, "
        f"context={context}), {sum(a.size for a in jax.tree.leaves(fitted.params)):,} params; "
        f"{steps} steps of {batch} windows in {train_seconds:.0f} s"
    )
    print("bits per character (byte):")
    print(f"  model, training text    {figures['train_bpc']:.3f}")
    print(f"  model, held-out text    {figures['held_out_bpc']:.3f}")
    print(f"  unigram (byte frequencies of the training text), held-out   {figures['unigram_bpc']:.3f}")
    print(f"  zlib -9, whole held-out text   {figures['zlib_bpc']:.3f}")
    print(f"  lzma -9, whole held-out text   {figures['lzma_bpc']:.3f}")

    if args.sample > 0:
        prompt = b"def "
        text = sample(model, fitted.params, prompt, args.sample, key=k_sample, context=context)
        print(f"sample (prompt {prompt!r}, temperature 0.8):")
        print(text.decode("utf-8", errors="replace"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"total {time.perf_counter() - t_start:.0f} s wall, {usage.ru_utime + usage.ru_stime:.0f} s CPU")
    return figures


if __name__ == "__main__":
    main()
