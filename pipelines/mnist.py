"""MNIST sanity benchmark: the course's MLP, CNN, a ResNet-style net and the auto-encoders.

With the full data set (train + test files) it trains on the training half and tests on the 10,000
test images; with only the test set (``../shared/data/mnist``) it uses a seeded 8,000 / 2,000 split
of it, stratified by digit (every class 80 / 20), with no image in both, and says so. The linear AE is compared with PCA (principal angles between the subspaces and
explained variance), PCA(k) with the dense and convolutional AEs (explained variance on the test set).

Explained variance is ``1 - SSE / SST`` over the test images, with SST taken about the per-pixel
mean of the *training* images (the mean PCA and the linear AE subtract) for every auto-encoder row
and for ``pca_k`` alike, so the rows compare; results.md says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from oceandl.errors import InputError, MissingResourceError
from oceandl.models import count_parameters, get_model, model_task
from oceandl.training import TensorData, TrainConfig, evaluate_classifier, fit, split_indices
from oceandl.utils import data_root, seed_everything, seed_torch, torch_rng_scope

from .runner import PATH, Pipeline, RunContext, resolve_fast

__all__ = ["MNISTConfig", "PIPELINE", "run", "principal_angles", "pca_explained_variance", "load_mnist_splits"]


@dataclass(frozen=True)
class MNISTConfig:
    """MNIST benchmark settings (``--set key=value`` overrides any of them)."""

    data_root: str | None = field(default=None, metadata=PATH)
    seed: int = 0
    fast: bool = False
    models: tuple[str, ...] = ("mlp", "cnn", "resnet", "dense_ae", "linear_ae", "conv_ae")
    epochs: int = 15
    ae_epochs: int = 10
    linear_ae_epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    latent: int = 16
    val_fraction: float = 0.1
    augment: tuple[str, ...] = ("translate", "rotate", "scale")
    translate: float = 0.08
    degrees: float = 8.0
    scale: float = 0.08
    cnn_channels: tuple[int, ...] = (16, 32)
    resnet_width: int = 16
    resnet_blocks: tuple[int, ...] = (1, 1, 1)


# the smoke run: one epoch each and small networks (the data: 1200 / 400 images, see load_mnist_splits)
FAST = {"epochs": 1, "ae_epochs": 1, "linear_ae_epochs": 1, "cnn_channels": (8, 16), "resnet_width": 8,
        "resnet_blocks": (1, 1)}


def mnist_root(root: str | Path | None) -> Path | None:
    """The folder MNIST is read from: ``root``, else :func:`~oceandl.utils.data_root` (``$OCEANDL_DATA``
    or ``../shared/data``), resolved; None when there is none."""
    root = Path(root) if root else data_root()
    return root.expanduser().resolve() if root is not None else None


def load_mnist_splits(root: str | Path | None, seed: int = 0, fast: bool = False, log=print):
    """(train_x, train_y, test_x, test_y, note): images float32 (N, 1, 28, 28) in [0, 1]."""
    from oceandl.datasets.mnist import load_mnist

    root = mnist_root(root)
    if root is None:
        raise MissingResourceError("no MNIST data: pass --data-root DIR holding the IDX files "
                                   "(or set OCEANDL_DATA), or --download to fetch them through torchvision")
    test_x, test_y = load_mnist(root, "test")
    try:
        train_x, train_y = load_mnist(root, "train")
        note = f"MNIST from {root}: {len(train_x)} training and {len(test_x)} test images"
    except MissingResourceError:
        # stratified by digit: unstratified, the 2,000 test images of seed 0 held 175 fours (196 expected)
        # and 219 twos (206), so the accuracy was weighted by a draw that the per-class scores do not show
        tr, te = split_indices(len(test_x), (0.8, 0.2), seed=seed, stratify=test_y)
        train_x, train_y, test_x, test_y = test_x[tr], test_y[tr], test_x[te], test_y[te]
        note = (f"only the MNIST test set was found in {root}: using a seeded (seed {seed}), stratified "
                f"{len(tr)} / {len(te)} split of its {len(tr) + len(te)} images for training / testing")
    if fast:
        train_x, train_y, test_x, test_y = train_x[:1200], train_y[:1200], test_x[:400], test_y[:400]
        note += " (--fast: 1200 / 400 images)"
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return to_t(train_x), torch.from_numpy(train_y), to_t(test_x), torch.from_numpy(test_y), note


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees) between the column spaces of ``a`` (D, k) and ``b`` (D, k)."""
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    s = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1)
    return np.degrees(np.arccos(s))


def pca_explained_variance(train: np.ndarray, test: np.ndarray, ks) -> tuple[dict, np.ndarray]:
    """Explained variance on ``test`` (N, D) of PCA(k) fitted on ``train``, and the components."""
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    xc = test - mean
    total = np.sum(xc**2)
    return {k: float(1 - np.sum((xc - xc @ vt[:k].T @ vt[:k]) ** 2) / total) for k in ks}, vt


def _explained(model, x: torch.Tensor, mean: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        rec = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    mse = float(torch.mean((rec - x) ** 2))
    return mse, float(1 - torch.sum((rec - x) ** 2) / torch.sum((x - mean) ** 2))


def check_config(cfg: MNISTConfig) -> None:
    """Refuse settings that run nothing or fail deep in the run (:class:`InputError`)."""
    # `--set models=` wrote a run folder with an empty table (exit 0); a repeated name kept one row
    if not cfg.models:
        raise InputError("models: give at least one model name")
    if len(set(cfg.models)) < len(cfg.models):
        raise InputError(f"models={','.join(cfg.models)}: a name is repeated")
    if cfg.latent < 1:  # else a bare ValueError from the principal angles (exit 1)
        raise InputError(f"latent={cfg.latent}: the code size must be >= 1")


def run(cfg: MNISTConfig, ctx: RunContext) -> dict:
    """Run the MNIST benchmark; returns ``{model: metrics}`` (and ``pca_<latent>``, the PCA reference of
    the auto-encoders' explained variance)."""
    from oceandl.plotting import plot_confusion, plot_history, plot_image_grid

    cfg = resolve_fast(cfg, FAST)
    check_config(cfg)
    seed_everything(cfg.seed)
    xtr, ytr, xte, yte, note = load_mnist_splits(cfg.data_root, cfg.seed, cfg.fast, ctx.log)
    ctx.found_data(mnist_root(cfg.data_root))  # data_root null when found through $OCEANDL_DATA: say where
    ctx.note(note)
    tr, va = split_indices(len(xtr), (1 - cfg.val_fraction, cfg.val_fraction), seed=cfg.seed, stratify=ytr.numpy())
    train, val, test = TensorData(xtr[tr], ytr[tr]), TensorData(xtr[va], ytr[va]), TensorData(xte, yte)
    classes = [str(i) for i in range(10)]
    results: dict[str, dict] = {}
    best_cls, best_acc = None, -1.0
    mean = xtr[tr].mean(0, keepdim=True)
    for name in cfg.models:
        task = model_task(name)
        opts = {} if task == "classification" else {"latent": cfg.latent}
        if name == "conv_ae":
            # a dense bottleneck of `latent` units: compares with PCA(latent) at the same code size
            opts = {"latent": cfg.latent, "input_size": 28, "width": 16, "latent_channels": 8}
        if name == "linear_ae":
            opts = {"latent": cfg.latent}
        if name == "mlp":
            opts = {}
        if name == "cnn":
            opts = {"channels": cfg.cnn_channels, "hidden": 64}
        if name == "resnet":
            opts = {"width": cfg.resnet_width, "blocks": cfg.resnet_blocks}
        if cfg.fast:  # sizes with no config field of their own (the others are in FAST)
            opts.update({"mlp": {"hidden": (64,)}, "cnn": {"hidden": 32}}.get(name, {}))
        args = (1, 10) if task == "classification" else (1,)
        # each model's initial weights follow --seed alone (as train_classifier's do): drawn from the
        # shared generator, a row depended on the models before it (--fast CNN 0.16 alone, 0.1425
        # after the MLP), so `--set models=cnn` did not reproduce the table's cnn row
        with torch_rng_scope():
            seed_torch(cfg.seed)
            model = get_model(name, *args, **opts)
        epochs = cfg.epochs if task == "classification" else cfg.ae_epochs
        tcfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                           device=ctx.device, progress=ctx.progress, scheduler="onecycle",
                           augment=cfg.augment if task == "classification" else (),
                           translate=cfg.translate, degrees=cfg.degrees, scale=cfg.scale,
                           weight_decay=1e-4 if task == "classification" else 0.0)
        if name == "linear_ae":
            # cheap, and the last directions (close eigenvalues) converge slowly: train it longer
            tcfg = tcfg.update(scheduler="cosine", lr=5e-3, epochs=cfg.linear_ae_epochs)
        ctx.log(f"{name}: {count_parameters(model):,} parameters, {epochs} epochs")
        # the linear AE = PCA equivalence holds for centred data: the model centres itself (centre=True,
        # fit stores the training mean in it), so it takes and gives the images themselves
        res = fit(model, train, val, tcfg, task=task)
        plot_history(res.history, ctx.folder / f"curves_{name}.png")
        row = {"params": count_parameters(model), "epochs": len(res.history), "best_epoch": res.best_epoch,
               "train_seconds": round(res.seconds, 2), "train_samples_per_s": round(res.samples_per_s, 1)}
        if task == "classification":
            m = evaluate_classifier(res.model, test, classes, device=ctx.device)
            row.update({"test_accuracy": m["accuracy"], "test_macro_f1": m["macro_f1"],
                        "test_top2_accuracy": m["top2_accuracy"], "test_log_loss": m["log_loss"],
                        "test_ece": m["ece"]})
            if m["accuracy"] > best_acc:
                best_cls, best_acc = (name, m), m["accuracy"]
        else:
            model = res.model.cpu()
            mse, ev = _explained(model, xte, mean)
            row.update({"test_mse": mse, "test_explained_variance": ev, "latent": cfg.latent})
            if name == "linear_ae":
                flat = xtr[tr].reshape(len(tr), -1).numpy().astype(np.float64)
                _, vt = pca_explained_variance(flat, flat[:10], [cfg.latent])
                dec = model.decoder[0].weight.detach().numpy().astype(np.float64)  # (784, k)
                ang = principal_angles(dec, vt[: cfg.latent].T)
                row.update({"max_principal_angle_deg": float(ang.max()),
                            "mean_principal_angle_deg": float(ang.mean())})
            with torch.no_grad():
                rec = model(xte[:10]).numpy()[:, 0]
            plot_image_grid([xte[:10, 0].numpy(), rec], ["input", f"{name} (k={cfg.latent})"],
                            ctx.folder / f"reconstructions_{name}.png")
        results[name] = row
        ctx.log(f"{name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items()))
    if any(model_task(n) == "reconstruction" for n in cfg.models):
        ctx.note("test_explained_variance = 1 - SSE / SST over the test images, SST about the per-pixel mean of "
                 "the training images, for every auto-encoder and pca_k alike (test_mse: the mean squared "
                 "error per pixel, images in [0, 1])")
        ks = sorted({1, 2, 4, 8, 16, 32, 64, cfg.latent})
        flat_tr = xtr[tr].reshape(len(tr), -1).numpy().astype(np.float64)
        ev, _ = pca_explained_variance(flat_tr, xte.reshape(len(xte), -1).numpy().astype(np.float64), ks)
        results[f"pca_{cfg.latent}"] = {"test_explained_variance": ev[cfg.latent], "latent": cfg.latent}
        _plot_pca_vs_ae(ev, results, ctx.folder / "pca_vs_ae.png")
    if best_cls:
        name, m = best_cls
        plot_confusion(np.array(m["confusion_matrix"]), classes, ctx.folder / f"confusion_{name}.png",
                       title=f"{name}: test accuracy {m['accuracy']:.4f}")
    return results


def _plot_pca_vs_ae(ev: dict, results: dict, path: Path) -> None:
    from oceandl.plotting import _figure, _save

    fig = _figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ks = sorted(ev)
    ax.plot(ks, [ev[k] for k in ks], "k-o", label="PCA(k)")
    for name, r in results.items():
        if "test_explained_variance" in r and not name.startswith("pca"):
            ax.plot(r["latent"], r["test_explained_variance"], "*", ms=12, label=name)
    ax.set_xscale("log", base=2), ax.set_xlabel("code size k"), ax.set_ylabel("explained variance (test)")
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi=110)


PIPELINE = Pipeline(
    name="mnist", config_cls=MNISTConfig, run=run, fast=FAST, timings=("train_seconds", "train_samples_per_s"),
    columns=("test_accuracy", "test_macro_f1", "test_log_loss", "test_ece", "test_explained_variance",
             "max_principal_angle_deg", "params", "epochs", "train_seconds", "train_samples_per_s"),
    description="The course's MNIST sanity checks: classifiers on a held-out test set, auto-encoders vs PCA.",
    legend="test_*: on the test images (fractions in [0, 1]): accuracy, macro_f1 (F1 averaged over the digits), "
           "log_loss (mean negative log-likelihood, nats), ece (expected calibration error, 15 confidence bins); "
           "test_explained_variance (auto-encoders and pca_LATENT): see below; max_principal_angle_deg: the "
           "largest angle between the linear auto-encoder's and PCA's subspaces (degrees; 0: the same); params: "
           "trainable parameters; epochs: epochs run; train_seconds: training wall time (s); "
           "train_samples_per_s: training images per second.",
)
