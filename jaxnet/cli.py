"""The ``jaxnet`` command: ``jaxnet train ...``, ``jaxnet evaluate CHECKPOINT`` and ``jaxnet tour``.

``jaxnet train`` loads a dataset, holds out a stratified test split (fixed by
``--split-seed``, so runs with different ``--seed`` share it), standardizes the inputs
with training statistics, trains an MLP (or an ensemble of them) with ``fit`` and writes
to ``--out``: ``history.json``, ``learning_curve.png`` and ``checkpoint.npz``. It prints
the test accuracy. ``jaxnet evaluate`` rebuilds the data and model from the settings
stored in a checkpoint and prints the test accuracy again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from jaxnet.types import Array, Layer, Optimizer

DATASETS = "digits, circle, xor, spirals or mnist-idx:PATH"
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
LOSS = "softmax_cross_entropy_with_integer_labels"


def _hidden(text: str):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden must be comma-separated ints such as 256,128, got {text!r}"
        ) from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def _positive(kind):
    def parse(text):
        v = kind(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    parse.__name__ = kind.__name__  # argparse's message: "argument --lr: invalid float value: 'x'"

    return parse


def _number(text: str, flag: str, kind=float):
    """``kind(text)`` for a value inside a flag's argument, or a ``ValueError`` naming the flag."""
    try:
        v = kind(text)
    except ValueError:
        raise ValueError(f"{flag}: expected a {kind.__name__} number, got {text!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{flag}: expected a finite number, got {text!r}")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


_non_negative_int.__name__ = "int"


def _seed(text: str) -> int:
    v = int(text)
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**32), got {text}")
    return v


_seed.__name__ = "int"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxnet`` command (every flag documented in ``--help``)."""
    p = argparse.ArgumentParser(prog="jaxnet", description="Train and evaluate jaxnet models from the command line.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train an MLP or a CNN and write history, learning curve and checkpoint",
        description="Train an MLP or CNN classifier; writes history.json, learning_curve.png and "
        "checkpoint.npz to --out and prints the test accuracy.",
    )
    t.add_argument("--data", default="digits", help=f"dataset: {DATASETS} (default: digits)")
    t.add_argument(
        "--model",
        choices=("mlp", "cnn"),
        default="mlp",
        help="mlp (--hidden widths) or cnn for image data: two Conv(3x3)-BatchNorm-activation-MaxPool(2x2) "
        "blocks of 32 and 64 channels, then Dense; --hidden and --batchnorm apply to mlp only (default: mlp)",
    )
    t.add_argument(
        "--hidden", type=_hidden, default=[256, 128], help="hidden layer widths, comma-separated (default: 256,128)"
    )
    t.add_argument(
        "--activation",
        default="relu",
        help="hidden activation: relu, tanh, sigmoid, elu, prelu, leaky_relu ... (default: relu)",
    )
    t.add_argument("--batchnorm", action="store_true", help="add BatchNorm after every hidden Dense layer")
    t.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="dropout rate (probability of dropping) after every hidden activation (default: 0)",
    )
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer (default: adam)")
    t.add_argument("--lr", type=_positive(float), default=1e-3, help="(peak) learning rate (default: 1e-3)")
    t.add_argument(
        "--schedule",
        default="constant",
        help="learning-rate schedule over the whole run: constant, cosine (decay to 0), "
        "exponential:RATE (lr * RATE^(epoch)), warmup-cosine:EPOCHS (linear warm-up, then cosine) "
        "(default: constant)",
    )
    t.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="weight decay: decoupled for adamw, otherwise added to the gradient as lambda*w (default: 0)",
    )
    t.add_argument("--epochs", type=_positive(int), default=40, help="training epochs (default: 40)")
    t.add_argument("--batch-size", type=_positive(int), default=32, help="mini-batch size (default: 32)")
    t.add_argument(
        "--augment",
        default="none",
        help="image augmentation for image data (digits, mnist): none, or comma-separated "
        "rotation:RADIANS, zoom:FACTOR, shear:S, stretch:FACTOR, noise:EPS (default: none)",
    )
    t.add_argument(
        "--ensemble",
        type=_positive(int),
        default=1,
        help="train K members as one vmapped program and average their probabilities (default: 1)",
    )
    t.add_argument(
        "--val",
        type=float,
        default=0.1,
        help="fraction of the training part held out for validation, 0 for none (default: 0.1)",
    )
    t.add_argument(
        "--patience",
        type=_non_negative_int,
        default=0,
        help=(
            "early stopping on val_loss after this many epochs without improvement, restoring the best epoch; "
            "0 disables (default: 0)"
        ),
    )
    t.add_argument("--test", type=float, default=0.2, help="fraction held out for testing, stratified (default: 0.2)")
    t.add_argument(
        "--normalize",
        choices=("standardize", "none"),
        default="standardize",
        help="input preprocessing: standardize each feature with training mean and std, or none "
        "(digits and mnist pixels are already in [0, 1]) (default: standardize)",
    )
    t.add_argument(
        "--samples", type=_positive(int), default=2000, help="points to generate for circle and spirals (default: 2000)"
    )
    t.add_argument("--seed", type=_seed, default=0, help="seed of the init, shuffles and dropout (default: 0)")
    t.add_argument(
        "--split-seed", type=_seed, default=0, help="seed of the test/validation split and generated data (default: 0)"
    )
    t.add_argument("--out", default="runs/latest", help="output directory (default: runs/latest)")
    t.add_argument("--no-plot", action="store_true", help="skip learning_curve.png (no matplotlib needed)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--precision",
        choices=("f32", "bf16", "f16"),
        default="f32",
        help="compute dtype of the model (params stay float32): f32, bf16 or f16 (default: f32)",
    )
    t.add_argument(
        "--devices",
        type=_positive(int),
        default=None,
        help="data-parallel over N devices per process (on the CPU, N host devices are created); the "
        "batch size must be a multiple of all processes' devices (default: one device)",
    )
    t.add_argument(
        "--num-processes", type=_positive(int), default=None, help="processes of a multi-host run (default: 1)"
    )
    t.add_argument("--process-id", type=int, default=None, help="this process's index in [0, --num-processes)")
    t.add_argument(
        "--coordinator", default=None, help="HOST:PORT of process 0's coordination service (multi-host runs)"
    )
    e = sub.add_parser(
        "evaluate",
        help="print the test accuracy of a checkpoint written by jaxnet train",
        description="Rebuild the data split and model recorded in CHECKPOINT and print its test accuracy.",
    )
    e.add_argument("checkpoint", help="path to checkpoint.npz (or the --out directory holding it)")
    o = sub.add_parser(
        "tour",
        help="run every chapter experiment quickly and write one HTML page of figures, numbers and claims",
        description="Run the experiments of jaxnet.chapter (quick settings) and write OUT/index.html, "
        "a self-contained page with every figure, the numbers and whether each chapter claim held.",
    )
    o.add_argument("--out", default=os.path.join("out", "tour"), help="output directory (default: out/tour)")
    o.add_argument("--only", default="", help="comma-separated experiments to run (default: all)")
    o.add_argument("--full", action="store_true", help="the full (slow) settings instead of the quick ones")
    o.add_argument("--open", action="store_true", help="open the page in the web browser afterwards")
    o.add_argument("--screenshot", default="", help="also write a PNG screenshot of the page (needs chromium)")
    return p


# ---------------------------------------------------------------- data and model
def load_data(cfg: dict) -> tuple[Any, Any, Any, dict]:
    """``(train, val, test, info)`` as the settings ``cfg`` describe; inputs standardized with training stats."""
    import jax
    import jax.numpy as jnp

    from jaxnet import data as D

    name, key = cfg["data"], jax.random.PRNGKey(cfg["split_seed"])
    image_shape, test = None, None
    val: tuple[Any, Any] | None
    if name == "digits":
        x, y = D.load_digits()
        image_shape = (8, 8)
    elif name == "circle":
        x, y = D.circle(jax.random.fold_in(key, 1), cfg["samples"])
    elif name == "spirals":
        x, y = D.spirals(jax.random.fold_in(key, 1), cfg["samples"])
    elif name == "xor":
        x, y = D.xor()
    elif name.startswith("mnist-idx:"):
        (x, y), test = D.load_mnist(name.split(":", 1)[1], flatten=True)
        image_shape = (28, 28)
    else:
        raise ValueError(f"jaxnet train: --data must be {DATASETS}, got {name!r}")
    if name == "xor":  # four points: train, validate and test on the same truth table
        train = test = (x, y)
        val = None
    elif test is None:
        (train, val, test) = D.train_val_test_split(key, x, y, val=cfg["val"], test=cfg["test"], stratify=True)
    else:
        (train, val, _) = D.train_val_test_split(key, x, y, val=cfg["val"], test=0.0, stratify=True)
    if val is not None and val[0].shape[0] == 0:
        val = None
    if cfg.get("normalize", "standardize") == "standardize":
        stats = D.standardize_fit(train[0])
    else:  # the identity, so that augmentation can always undo and redo the preprocessing
        stats = D.StandardizeStats(mean=jnp.zeros(x.shape[1:], x.dtype), scale=jnp.ones(x.shape[1:], x.dtype))
    prep = lambda d: (D.standardize(stats, d[0]), d[1]) if d is not None else None  # noqa: E731
    info = {"image_shape": image_shape, "stats": stats, "classes": int(jnp.max(y)) + 1, "features": x.shape[1:]}
    return prep(train), prep(val), prep(test), info


def build_model(cfg: dict, classes: int, image_shape: tuple[int, ...] | None = None) -> Layer:
    """The MLP (or, with ``model: cnn``, the CNN) the settings describe, with ``classes`` logits."""
    from jaxnet.nn import MLP

    if cfg.get("model", "mlp") == "cnn":
        return _build_cnn(cfg, classes, image_shape)
    kw: dict[str, Any] = {}
    if cfg["batchnorm"]:
        kw["batchnorm"] = True
    if cfg["dropout"]:
        kw["dropout"] = cfg["dropout"]
    return MLP([*cfg["hidden"], classes], cfg["activation"], **kw)


def _build_cnn(cfg: dict, classes: int, image_shape: tuple[int, ...] | None) -> Layer:
    """Flat images -> [N, H, W, 1] -> (Conv-BatchNorm-activation-MaxPool) x 2 -> [Dropout] -> Dense."""
    from jaxnet import nn

    if image_shape is None:
        raise ValueError(f"jaxnet train: --model cnn needs image data (digits or mnist), got --data {cfg['data']}")
    to_images = nn.Reshape((*image_shape, 1))
    act = nn.activation_layer(cfg["activation"])
    layers = [to_images]
    for features in (32, 64):
        layers += [nn.Conv(features, (3, 3), use_bias=False), nn.BatchNorm(), act, nn.MaxPool((2, 2))]
    layers.append(nn.Flatten())
    if cfg["dropout"]:
        layers.append(nn.Dropout(cfg["dropout"]))
    return nn.serial(*layers, nn.Dense(classes))


def build_optimizer(cfg: dict, steps_per_epoch: int) -> Optimizer:
    """The optimizer (with schedule and weight decay) the settings describe."""
    from jaxnet import optim as O

    total = cfg["epochs"] * steps_per_epoch
    lr, sched = cfg["lr"], cfg["schedule"]
    kind, _, arg = sched.partition(":")
    if kind == "constant":
        rate = lr
    elif kind == "cosine":
        rate = O.cosine_decay(lr, total)
    elif kind == "exponential":
        factor = _number(
            arg or "0.95", "--schedule exponential:RATE"
        )  # per epoch; the schedule counts steps: k = -ln(factor) / steps
        if not 0 < factor <= 1:
            raise ValueError(f"jaxnet train: --schedule exponential:RATE needs 0 < RATE <= 1, got {arg!r}")
        rate = O.exponential_decay(lr, -math.log(factor) / steps_per_epoch)
    elif kind == "warmup-cosine":
        warm = int(_number(arg or "1", "--schedule warmup-cosine:EPOCHS") * steps_per_epoch)
        rate = O.warmup_cosine_decay(lr, warm, total)
    else:
        raise ValueError(
            f"jaxnet train: unknown --schedule {sched!r}; use constant, cosine, exponential:RATE "
            "or warmup-cosine:EPOCHS"
        )
    name, wd = cfg["optimizer"], cfg["weight_decay"]
    if name == "adamw":
        return O.adamw(rate, weight_decay=wd)
    opt = {
        "sgd": lambda: O.sgd(rate),
        "momentum": lambda: O.sgd(rate, momentum=0.9),
        "nesterov": lambda: O.sgd(rate, momentum=0.9, nesterov=True),
        "adam": lambda: O.adam(rate),
        "rmsprop": lambda: O.rmsprop(rate),
        "adagrad": lambda: O.adagrad(rate),
    }[name]()
    return O.chain(O.add_decayed_weights(wd), opt) if wd else opt


def build_augment(cfg: dict, info: dict) -> Callable[[Array, Array], Array] | None:
    """``augment(key, x)`` on standardized flat inputs, or ``None``: un-standardize, warp the images, re-standardize."""
    spec = cfg["augment"]
    if spec in ("none", "", None):
        return None
    if info["image_shape"] is None:
        raise ValueError(f"jaxnet train: --augment needs image data (digits or mnist), got --data {cfg['data']}")
    from jaxnet import data as D

    kw: dict[str, Any] = {}
    for part in spec.split(","):
        k, _, v = part.partition(":")
        if k not in ("rotation", "zoom", "shear", "stretch", "noise") or not v:
            raise ValueError(
                f"jaxnet train: --augment items are rotation:R, zoom:F, shear:S, stretch:F, noise:EPS; got {part!r}"
            )
        kw[k] = _number(v, f"--augment {k}")
    warp, stats, shape = D.make_augment(**kw), info["stats"], info["image_shape"]

    def augment(key, x):
        images = D.standardize_inverse(stats, x).reshape((-1, *shape))
        return D.standardize(stats, warp(key, images).reshape(x.shape))

    return augment


# ---------------------------------------------------------------- commands
def _settings(args) -> dict:
    keys = (
        "data",
        "model",
        "hidden",
        "activation",
        "batchnorm",
        "dropout",
        "optimizer",
        "lr",
        "schedule",
        "weight_decay",
        "epochs",
        "batch_size",
        "augment",
        "ensemble",
        "val",
        "patience",
        "test",
        "normalize",
        "samples",
        "seed",
        "split_seed",
    )
    extra = {k: getattr(args, k) for k in ("precision", "devices", "num_processes") if getattr(args, k, None)}
    return {**{k: getattr(args, k) for k in keys}, **extra}


def _plot(path, histories, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "jaxnet train: the learning curve needs matplotlib: pip install 'jaxnet[examples]' (or pass --no-plot)"
        ) from e
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, h in enumerate(histories):
        tag = f" (member {i})" if len(histories) > 1 else ""
        for ax, col in zip(axes, ("loss", "accuracy"), strict=True):
            ax.plot(h["epoch"], h[col], label=f"train{tag}", alpha=0.8)
            if f"val_{col}" in h:
                ax.plot(h["epoch"], h[f"val_{col}"], "--", label=f"validation{tag}", alpha=0.8)
    for ax, col in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _start_devices(args):
    """Start the distributed runtime and CPU devices the flags ask for (before any other JAX call); the mesh."""
    from jaxnet.train import distributed

    procs, devices = getattr(args, "num_processes", None), getattr(args, "devices", None)
    if procs is None and devices is None:
        return None
    if procs is not None and procs > 1 and (args.coordinator is None or args.process_id is None):
        raise ValueError("jaxnet train: --num-processes > 1 needs --coordinator HOST:PORT and --process-id")
    distributed.initialize(
        args.coordinator, procs, args.process_id, cpu_devices=devices, cpu_collectives="gloo" if procs else None
    )
    import jax

    from jaxnet.train import data_mesh

    local = jax.local_devices()
    if devices is not None and len(local) < devices:
        raise ValueError(f"jaxnet train: --devices {devices} asked for, this process has {len(local)}")
    if jax.process_count() > 1:
        return data_mesh()  # every process's devices
    return data_mesh(local[: devices or len(local)])


def _local(result, mesh):
    """A fit result whose params and state are this process's arrays (global ones live on the mesh)."""
    if mesh is None:
        return result
    from jaxnet.train.distributed import to_host

    return result._replace(params=to_host(result.params), state=to_host(result.state))


def train(args: argparse.Namespace) -> dict:
    """Run ``jaxnet train`` for parsed ``args``; returns ``{"test_accuracy", "out", ...}``."""
    mesh = _start_devices(args)
    import jax

    from jaxnet import train as T
    from jaxnet.nn import losses
    from jaxnet.train import distributed

    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401  (fail before training, not after)
        except ImportError as e:
            raise ImportError(
                "jaxnet train: the learning curve needs matplotlib: pip install 'jaxnet[examples]' (or pass --no-plot)"
            ) from e
    cfg = _settings(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"jaxnet train: --out must be a directory, got the file {args.out!r}")
    for flag in ("val", "test"):
        if not 0.0 <= cfg[flag] < 1.0:
            raise ValueError(f"jaxnet train: --{flag} must be a fraction in [0, 1), got {cfg[flag]}")
    if cfg["val"] + cfg["test"] >= 1.0:
        raise ValueError(f"jaxnet train: --val {cfg['val']} and --test {cfg['test']} leave no training data")
    if cfg["patience"] > 0 and not cfg["val"] > 0:
        raise ValueError(
            f"jaxnet train: --patience {cfg['patience']} needs validation data to watch, but --val is "
            f"{cfg['val']}; give --val 0.1 (say) or --patience 0"
        )
    if not 0.0 <= cfg["dropout"] < 1.0:
        raise ValueError(f"jaxnet train: --dropout must lie in [0, 1), got {cfg['dropout']}")
    train_d, val_d, test_d, info = load_data(cfg)
    model = build_model(cfg, info["classes"], info["image_shape"])
    batch = min(cfg["batch_size"], train_d[0].shape[0])
    optimizer = build_optimizer(cfg, train_d[0].shape[0] // batch)
    augment = build_augment(cfg, info)
    metrics = {"accuracy": losses.accuracy}
    stop = T.EarlyStopping(patience=cfg["patience"]) if cfg["patience"] > 0 and val_d is not None else None
    key = jax.random.PRNGKey(cfg["seed"])
    common = dict(
        epochs=cfg["epochs"],
        batch_size=batch,
        key=key,
        validation=val_d,
        metrics=metrics,
        early_stopping=stop,
        progress=not args.quiet and distributed.is_main_process(),
        augment=augment,
        precision=None if getattr(args, "precision", "f32") == "f32" else args.precision,
        mesh=mesh,
    )
    t0 = time.perf_counter()
    r: T.FitResult | T.EnsembleResult  # both carry params, state, opt_state and epoch for the checkpoint
    if cfg["ensemble"] > 1:
        members = _local(T.fit_ensemble(model, LOSS, optimizer, train_d, members=cfg["ensemble"], **common), mesh)
        report = T.ensemble_report((model, members.params, members.state), *test_d)
        acc, histories, r = report["ensemble"], members.histories, members
    else:
        one = _local(T.fit(model, LOSS, optimizer, train_d, **common), mesh)
        acc = T.evaluate(model, LOSS, one.params, one.state, test_d, metrics=metrics)["accuracy"]
        report, histories, r = None, [one.history], one
    seconds = time.perf_counter() - t0
    main_process = distributed.is_main_process()  # only process 0 writes files and prints
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "history.json"), "w") if main_process else open(os.devnull, "w") as f:
        json.dump(
            {
                "settings": cfg,
                "test_accuracy": acc,
                "ensemble": report,
                "seconds": seconds,
                "histories": [h.to_dict() for h in histories],
            },
            f,
            indent=1,
        )
    ckpt = distributed.save_checkpoint_once(
        os.path.join(args.out, "checkpoint.npz"),
        params=r.params,
        state=r.state,
        opt_state=r.opt_state,
        step=r.epoch,
        key=key,
        history=histories[0],
        config={"cli": cfg, "test_accuracy": acc},
    )
    if not args.no_plot and main_process:
        _plot(
            os.path.join(args.out, "learning_curve.png"),
            histories,
            f"{cfg['data']}: MLP {cfg['hidden']} {cfg['optimizer']} lr {cfg['lr']}",
        )
    if report is not None:
        print(
            f"members' test accuracy: {', '.join(f'{a:.4f}' for a in report['member_accuracy'])} "
            f"(mean {report['mean_member']:.4f}); ensemble gain {report['gain']:+.4f}"
        )
    for h in histories:
        if h.stop_reason == "nonfinite":
            print(
                f"warning: training stopped at a non-finite value, epoch {h.nonfinite['epoch']}, "
                f"step {h.nonfinite['step']}",
                file=sys.stderr,
            )
    if main_process:
        print(f"test accuracy: {acc:.4f}  ({test_d[0].shape[0]} samples, {seconds:.1f} s)  -> {ckpt}")
    return {"test_accuracy": acc, "out": args.out, "checkpoint": ckpt, "report": report, "seconds": seconds}


def evaluate(path: str) -> dict:
    """Run ``jaxnet evaluate``: rebuild data and model from the checkpoint's settings, print test accuracy."""
    import jax

    from jaxnet import train as T
    from jaxnet.nn import losses

    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    meta, _ = T.read_checkpoint(path)
    cfg = (meta.get("config") or {}).get("cli")
    if not isinstance(cfg, dict):
        raise ValueError(f"jaxnet evaluate: {path!r} was not written by `jaxnet train` (no CLI settings in it)")
    _, _, test_d, info = load_data(cfg)
    model = build_model(cfg, info["classes"], info["image_shape"])
    inits = [model.init(jax.random.PRNGKey(k), (-1, *info["features"]))[1:] for k in range(cfg["ensemble"])]
    if cfg["ensemble"] > 1:
        like_p, like_s = T.stack([p for p, _ in inits]), T.stack([s for _, s in inits])
    else:
        like_p, like_s = inits[0]
    ck = T.load_checkpoint(path, params=like_p, state=like_s)
    if cfg["ensemble"] > 1:
        acc = T.ensemble_report((model, ck.params, ck.state), *test_d)["ensemble"]
    else:
        acc = T.evaluate(model, LOSS, ck.params, ck.state, test_d, metrics={"accuracy": losses.accuracy})["accuracy"]
    print(f"test accuracy: {acc:.4f}  ({test_d[0].shape[0]} samples, {cfg['data']}, epoch {ck.step})")
    return {"test_accuracy": acc}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxnet`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            train(args)
        elif args.command == "tour":
            from jaxnet.tour import tour

            only = [n.strip() for n in args.only.split(",") if n.strip()] or None
            page, results = tour(args.out, only, quick=not args.full, open_page=args.open)
            if args.screenshot:
                from jaxnet.tour import screenshot

                print(f"[tour] wrote {screenshot(page, args.screenshot)}")
            if any("error" in r for r in results):
                print("jaxnet tour: some experiments raised; their errors are on the page", file=sys.stderr)
                return 1
        else:
            evaluate(args.checkpoint)
    except (ValueError, TypeError, FileNotFoundError, ImportError, RuntimeError) as e:
        prefix = f"jaxnet {args.command}: "
        msg = str(e)
        msg = msg[len(prefix) :] if msg.startswith(prefix) else msg  # no "jaxnet train: error: jaxnet train:"
        print(f"{prefix}error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
