"""Transfer learning from torchvision backbones with locally stored pretrained weights.

The backbone's first convolution is adapted to ``in_channels`` (for 1-channel SAR or plankton
images the RGB filters are summed, which keeps their response to a grey image), its classifier is
replaced by a ``num_classes`` head, and ``freeze`` chooses what is trained.
Weights are never downloaded: pass ``weights=PATH`` or put torchvision's file where
``torch.hub.get_dir()/checkpoints`` points, and the error says so when it is missing.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, InputError, MissingResourceError

__all__ = ["TransferClassifier", "BACKBONES", "pretrained_weights_path"]

# backbone -> (torchvision builder name, weights enum name, default min input size)
BACKBONES = {
    "resnet18": ("resnet18", "ResNet18_Weights", 1),  # adaptive pooling: any size runs
    "vgg16": ("vgg16", "VGG16_Weights", 32),
    "alexnet": ("alexnet", "AlexNet_Weights", 63),
    "inception_v3": ("inception_v3", "Inception_V3_Weights", 75),
}


def pretrained_weights_path(backbone: str) -> Path:
    """Where torchvision would cache the ImageNet weights of ``backbone`` (no download)."""
    import torchvision.models as tvm

    enum = getattr(tvm, BACKBONES[backbone][1]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)


def _missing_weights(backbone: str, path: Path, given: bool) -> str:
    """One line: where the ImageNet weights of ``backbone`` were looked for, where to get them.

    Compute nodes are often offline: the URL is what a user needs (``wget`` on a login node), not
    a torchvision call that downloads from where it runs.
    """
    import torchvision.models as tvm

    url = getattr(tvm, BACKBONES[backbone][1]).IMAGENET1K_V1.url
    if given:
        return (f"weights={path}: no such file (the ImageNet weights of {backbone} are {url}, a torchvision "
                ".pth file, or the same tensors as .safetensors)")
    return (f"pretrained weights for {backbone} not found at {path}: download {url} to that folder "
            "(torch.hub's cache: $TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints), "
            "or pass weights=PATH (--set weights=PATH)")


def _load_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            # a truncated or foreign file: SafetensorError is no ValueError, so it came out as an
            # unexpected error (exit 1, "set OCEANDL_DEBUG=1") instead of naming the file
            raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    import pickle

    from ..errors import one_line

    try:
        # torchvision ships .pth files; weights_only=True refuses arbitrary pickled objects
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message (several lines, terminal escapes) advises weights_only=False, i.e.
        # running the file's code; the safe way is to save the tensors alone
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle at all (a text or HTML page saved as .pth)
            raise CheckpointError(f"{path}: not a readable weights file (not a torch .pth file)") from None
        raise CheckpointError(f"{path}: holds pickled Python objects ({found.group(1)}; a whole model saved "
                              "with torch.save(model)?), which are not loaded: save its state_dict instead, "
                              "e.g. safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')") from None
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad weights file
        raise CheckpointError(f"{path}: not a readable weights file ({one_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        # a list or a training checkpoint failed as a bare AttributeError ('list' has no 'items')
        # or as weights that "do not fit" with the checkpoint's keys
        raise CheckpointError(f"{path}: not a state dict of tensors (a {type(state).__name__}"
                              + (f" with keys {list(state)[:4]}" if isinstance(state, dict) else "")
                              + "): save the backbone's model.state_dict()")
    return state


def _first_conv(model: nn.Module, backbone: str) -> tuple[nn.Module, str]:
    if backbone == "resnet18":
        return model, "conv1"
    if backbone in ("vgg16", "alexnet"):
        return model.features, "0"
    return model.Conv2d_1a_3x3, "conv"  # inception_v3


class TransferClassifier(nn.Module):
    """A torchvision backbone fine-tuned for ``num_classes`` on ``in_channels`` images.

    Parameters
    ----------
    in_channels, num_classes : int
    backbone : {"resnet18", "vgg16", "alexnet", "inception_v3"}
    pretrained : bool
        Load ImageNet weights from ``weights`` or torchvision's cache folder (never downloads).
    weights : str or Path, optional
        A local ``.pth`` (torchvision) or ``.safetensors`` file of the backbone's ImageNet weights.
    freeze : {"none", "backbone", "all_but_last"}
        ``backbone``: train only the new head; ``all_but_last``: also train the last block. Frozen
        layers stay as they are, batch-norm statistics included (see :meth:`train`).
    """

    task = "classification"
    example_shape = (1, 64, 64)
    #: options that only choose the initial weights: a checkpoint's own weights replace them, so
    #: loading one needs neither the ImageNet file nor these options (see load_checkpoint)
    init_options = ("pretrained", "weights")

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, backbone: str = "resnet18",
                 pretrained: bool = False, weights: str | os.PathLike | None = None, freeze: str = "none"):
        super().__init__()
        import torchvision.models as tvm

        if backbone not in BACKBONES:
            raise InputError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
        if freeze not in ("none", "backbone", "all_but_last"):
            raise InputError(f"freeze={freeze!r}: use none, backbone or all_but_last")
        self.backbone_name = backbone
        kwargs = {"aux_logits": False, "init_weights": False} if backbone == "inception_v3" else {}
        net = getattr(tvm, BACKBONES[backbone][0])(weights=None, **kwargs)
        if pretrained or weights:
            path = Path(weights) if weights else pretrained_weights_path(backbone)
            if not path.is_file():
                raise MissingResourceError(_missing_weights(backbone, path, given=bool(weights)))
            state = _load_state_dict(path)
            # the ImageNet head is replaced below: a file whose head has another number of classes
            # (weights fine-tuned before, Places365's) failed as torch's bare RuntimeError (exit 1)
            head = ("fc." if backbone in ("resnet18", "inception_v3") else f"classifier.{len(net.classifier) - 1}.")
            state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits", head))}
            own = net.state_dict()
            odd = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
            if odd:  # e.g. a first convolution already made grey: torch's several-line RuntimeError
                raise CheckpointError(f"{path}: weights do not fit torchvision {backbone}: {odd[0]} is "
                                      f"{tuple(state[odd[0]].shape)}, torchvision's {tuple(own[odd[0]].shape)}"
                                      + (f" (and {len(odd) - 1} more)" if len(odd) > 1 else "")
                                      + "; pass the backbone's ImageNet (3-band) weights")
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if "AuxLogits" not in k and not k.startswith(head)]
            if unexpected or missing:
                raise CheckpointError(f"{path}: weights do not fit torchvision {backbone} "
                                      f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
        # adapt the first conv: average RGB filters x3/in_channels keeps the activation scale
        parent, attr = _first_conv(net, backbone)
        old: nn.Conv2d = getattr(parent, attr)
        if in_channels != old.in_channels:
            new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                            bias=old.bias is not None)
            with torch.no_grad():
                w = old.weight.sum(dim=1, keepdim=True) / in_channels
                new.weight.copy_(w.repeat(1, in_channels, 1, 1))
                if old.bias is not None:
                    new.bias.copy_(old.bias)
            setattr(parent, attr, new)
        # new head
        if backbone in ("resnet18", "inception_v3"):
            net.fc = nn.Linear(net.fc.in_features, num_classes)
            head, last_block = [net.fc], [net.layer4 if backbone == "resnet18" else net.Mixed_7c]
        else:
            net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, num_classes)
            head, last_block = [net.classifier[-1]], [net.classifier]
        self.net = net
        if freeze != "none":
            for p in self.net.parameters():
                p.requires_grad_(False)
            for m in head + (last_block if freeze == "all_but_last" else []):
                for p in m.parameters():
                    p.requires_grad_(True)

    def train(self, mode: bool = True) -> "TransferClassifier":
        """As :meth:`nn.Module.train`, but frozen batch norms stay in eval mode.

        ``requires_grad=False`` stops the gradient, not batch norm's running statistics: in
        training mode the frozen backbone's means and variances followed the new data (momentum
        0.1 a step), so a "frozen" resnet18 or inception_v3 came out of training with other
        features. As Keras (trainable=False) and torchvision's FrozenBatchNorm2d do, a batch norm
        whose parameters are all frozen normalises with its stored statistics and keeps them.
        """
        super().train(mode)
        if mode:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and not any(
                        p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        need = BACKBONES[self.backbone_name][2]
        if x.ndim == 4 and min(x.shape[-2:]) < need:
            # else torch's bare RuntimeError deep in the backbone ("Output size is too small")
            raise InputError(f"{self.backbone_name} needs images of {need} px or more a side, got "
                             f"{tuple(x.shape[-2:])}")
        return self.net(x)
