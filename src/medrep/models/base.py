"""The one Encoder interface every analysis consumes.

An Encoder owns its preprocessing (size, mean/std, channels, interpolation), so callers always hand it
raw pixels in [0, 1] (B×C×H×W) and the normalisation sits inside the autograd graph: an ε means the
same thing for every model.  ``embed`` and ``logits`` keep gradients unless the caller disables them.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.geometry import INTERPOLATIONS, check_resize, fit_to_size
from medrep.io import digest_bytes, digest_json

POOLS = ("cls", "mean", "patches", "map")

# Normalisation statistics the adapters fall back on when a checkpoint does not state its own.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest | area
    resize: str = "stretch"  # stretch | crop (see medrep.geometry)
    crop_pct: float = 1.0  # crop mode: resize to size / crop_pct, then centre-crop size

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise MedrepError(f"mean/std must have {self.channels} entries", where="preprocessing")
        if self.interpolation not in INTERPOLATIONS:
            raise MedrepError(f"unknown interpolation {self.interpolation!r}", where="preprocessing")
        check_resize(self.resize, self.crop_pct)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw [0, 1] pixels (B×C×H×W) → the model's input.  Differentiable."""
        if pixels.ndim != 4:
            raise MedrepError(f"expected a batch B×C×H×W, got shape {tuple(pixels.shape)}", where="pixels")
        x = fit_to_size(match_channels(pixels, self.channels), **self.fit_kwargs())
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def fit_kwargs(self) -> dict[str, Any]:
        """How images reach the input size: the keyword arguments of ``geometry.fit_to_size`` and ``collate``."""
        return {"size": tuple(self.size), "interpolation": self.interpolation, "resize": self.resize,
                "crop_pct": self.crop_pct}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.resize == "stretch":  # the default geometry leaves the dict (and every cache key) as it was
            d.pop("resize")
            d.pop("crop_pct")
        return d


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise MedrepError(f"cannot convert {c}-channel images to the model's {channels} channels", where="pixels")


@dataclass(frozen=True)
class TokenGrid:
    """Layout of a ViT's token sequence: prefix tokens (CLS, registers) then an h×w grid of patches."""

    height: int
    width: int
    patch_size: tuple[int, int]
    num_prefix_tokens: int = 1
    num_register_tokens: int = 0
    has_cls: bool = True
    #: Where a token's receptive field is centred, relative to the centre of its patch, in input pixels (y, x).
    #: A plain patch embedding gives (0, 0); a padded conv stem shifts it (see ``stem_center_offset``).
    center_offset: tuple[float, float] = (0.0, 0.0)

    @property
    def num_patches(self) -> int:
        return self.height * self.width

    def patch_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) → (B, h·w, D), dropping CLS and register tokens."""
        return tokens[:, self.num_prefix_tokens : self.num_prefix_tokens + self.num_patches]

    def to_map(self, values: torch.Tensor) -> torch.Tensor:
        """(B, h·w[, D]) → (B, h, w[, D])."""
        return values.reshape(values.shape[0], self.height, self.width, *values.shape[2:])


def stem_center_offset(stem: nn.Module, patch_size: Sequence[int]) -> tuple[float, float]:
    """Receptive-field centre of token 0 minus the centre of patch 0, in input pixels (y, x), for a patch
    embedding made of convolutions and poolings applied in sequence; (0, 0) for anything else.

    Output index i of a layer (kernel k, stride s, padding p, dilation d) is centred at s·i − p + (k − 1)·d / 2
    of its input; composing the layers gives a·i + b with a the total stride.  Patch i is centred at
    P·i + (P − 1) / 2, which is where bilinear upsampling (align_corners=False) puts token i.
    """
    layers = [m for m in (stem.modules() if isinstance(stem, nn.Sequential) else [stem])
              if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    if not layers or (not isinstance(stem, nn.Sequential) and len(layers) != 1):
        return (0.0, 0.0)
    offsets = []
    for axis in (0, 1):
        a, b = 1.0, 0.0
        for m in layers:
            if isinstance(getattr(m, "padding", 0), str):
                return (0.0, 0.0)  # 'same' / 'valid' padding: not modelled
            k, s, p, d = (_axis(getattr(m, name, 1), axis) for name in ("kernel_size", "stride", "padding", "dilation"))
            a, b = a * s, b + a * (-p + (k - 1) * d / 2)
        if int(round(a)) != int(patch_size[axis]):
            return (0.0, 0.0)
        offsets.append(float(b - (a - 1) / 2))
    return (offsets[0], offsets[1])


def _axis(value: Any, axis: int) -> int:
    return int(value[axis]) if isinstance(value, (tuple, list)) else int(value)


def class_key(name: str) -> str:
    """A class name as compared between a head and a dataset: case, '_' / '-' and spacing do not matter."""
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _generic_labels(names: Sequence[str]) -> bool:
    """Hugging Face's placeholder labels (LABEL_0, LABEL_1, …) name no class."""
    return all(class_key(n) == f"label {i}" for i, n in enumerate(names))


@dataclass(frozen=True)
class HeadFit:
    """Whether a model's classification head can classify a dataset: its outputs are the dataset's classes,
    in the dataset's order.  ``reason`` says why not (or how it was matched)."""

    fits: bool
    reason: str
    head_classes: list[str] | None
    data_classes: list[str]
    outputs: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _names_text(names: Sequence[str] | None, limit: int = 8) -> str:
    if not names:
        return "unnamed"
    shown = ", ".join(map(str, names[:limit]))
    return f"[{shown}{f', … ({len(names)} in all)' if len(names) > limit else ''}]"


class _StopForward(Exception):
    """Raised by a capture hook to skip the rest of the network once the wanted layer has run."""


class Encoder(nn.Module):
    """Base class: subclasses provide ``_forward_default(x) -> (B, D)`` and optionally ``_logits``.

    ``layer=None`` means the encoder's own representation (e.g. a ViT's CLS token after the final
    norm); any other value names a submodule whose output is captured by a forward hook and pooled.
    """

    kind: str = "module"
    #: The crop_pct of the model's own evaluation transform, used by ``?resize=crop`` (adapters that know it set it).
    eval_crop_pct: float = 1.0
    #: Whether the model's own representation is exactly ``default_pool`` of ``default_layer``.  When it is not
    #: (a projection, attention pooling, a norm after pooling), an explicit ``pool=`` is computed from the layer.
    default_is_plain_pool: bool = True

    def __init__(
        self,
        module: nn.Module,
        preprocessing: Preprocessing,
        name: str,
        token_grid: TokenGrid | None = None,
        default_pool: str = "cls",
        class_names: Sequence[str] | None = None,
        source: dict[str, Any] | None = None,
        owns_module: bool = True,
    ):
        super().__init__()
        self.module = module
        self.preprocessing = preprocessing
        self.name = name
        self.token_grid = token_grid
        self.default_pool = default_pool
        self.class_names = list(class_names) if class_names is not None else None
        self.source = source or {}
        self._weights_digest: str | None = None
        # A module medrep built itself is put in eval mode and frozen for good (analyses differentiate
        # w.r.t. pixels, never parameters).  A user's own module is only borrowed: it gets that state for
        # the duration of each call (``analysis_state``) and keeps its training mode and requires_grad flags.
        self.owns_module = bool(owns_module)
        self._borrow_depth = 0
        if self.owns_module:
            self.module.eval()
            for p in self.module.parameters():
                p.requires_grad_(False)

    @contextmanager
    def analysis_state(self) -> Iterator[None]:
        """Eval mode and frozen parameters for one call on a borrowed module, restored exactly afterwards."""
        if self.owns_module or self._borrow_depth:
            yield
            return
        modes = [(m, m.training) for m in self.modules()]
        flags = [(p, p.requires_grad) for p in self.parameters()]
        self.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        self._borrow_depth += 1
        try:
            yield
        finally:
            self._borrow_depth -= 1
            for m, mode in modes:
                m.training = mode
            for p, flag in flags:
                p.requires_grad_(flag)

    # -- the interface -------------------------------------------------------------------------
    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.preprocessing(pixels.to(self.device, self.dtype))

    def embed(self, pixels: torch.Tensor, layer: str | None = None, pool: str | None = None) -> torch.Tensor:
        """Representation of raw [0, 1] pixels: (B, D), or (B, N, D) for ``pool='patches'``."""
        asked = pool
        pool = pool or self.default_pool
        if pool not in POOLS:
            raise MedrepError(f"unknown pooling {pool!r} (choose from {', '.join(POOLS)})", where=Param("pool"))
        with self.analysis_state():
            x = self.preprocess(pixels)
            if layer is None and (asked is None or (pool == self.default_pool and self.default_is_plain_pool)):
                return self._forward_default(x)
            out = self.forward_layer(x, layer or self.default_layer)
            return self.pool(out, pool, layer or self.default_layer)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        if not self.has_head:
            raise MedrepError(f"model {self.name} has no classification head", where=Param("model"))
        with self.analysis_state():
            return self._logits(self.preprocess(pixels))

    @property
    def has_head(self) -> bool:
        return False

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None

    #: Class names the user declared for the head's outputs, in output order (``--head-classes``).
    declared_head_classes: list[str] | None = None
    #: Whether the user sized the head for their data (timm ``?num_classes=``, a head passed from Python): an
    #: unnamed head of the data's size then counts as giving the data's classes in the data's order.
    head_size_declared: bool = False

    @property
    def head_classes(self) -> list[str] | None:
        """The head's class names in output order, when known (declared, the checkpoint's labels, demo classes)."""
        if self.declared_head_classes:
            return list(self.declared_head_classes)
        names = self.class_names
        return None if not names or _generic_labels(names) else list(names)

    def head_fit(self, data_classes: Sequence[str]) -> HeadFit:
        """Compare the head's outputs with ``data_classes`` (count, then names in order)."""
        data = [str(c) for c in data_classes]
        names, outputs = self.head_classes, self.num_classes
        if not self.has_head:
            return HeadFit(False, f"model {self.name} has no classification head", None, data, None)
        if names is not None and outputs is not None and len(names) != outputs:
            return HeadFit(False, f"{len(names)} declared head classes for {outputs} head outputs", names, data, outputs)
        if outputs is not None and outputs != len(data):
            return HeadFit(False, f"the head has {outputs} outputs {_names_text(names)}, the data {len(data)} classes "
                                  f"{_names_text(data)}", names, data, outputs)
        if names is not None:
            if [class_key(n) for n in names] == [class_key(c) for c in data]:
                return HeadFit(True, "the head's classes are the data's", names, data, outputs)
            return HeadFit(False, f"the head's classes {_names_text(names)} are not the data's {_names_text(data)} "
                                  "(in order)", names, data, outputs)
        if self.head_size_declared and outputs is not None:
            return HeadFit(True, f"an unnamed head sized for the data ({outputs} outputs, taken in the data's class "
                                 "order)", None, data, outputs)
        return HeadFit(False, f"the head's {outputs or 'unknown number of'} outputs have no class names to match with "
                              f"the data's {_names_text(data)}; declare them with --head-classes", None, data, outputs)

    def declare_head_classes(self, names: Sequence[str] | None) -> None:
        """Name the head's outputs (in output order); the names must be as many as the outputs."""
        if not names:
            return
        names = [str(n).strip() for n in names]
        if not self.has_head:
            raise MedrepError(f"model {self.name} has no classification head to name", where=Param("head_classes"))
        if self.num_classes is not None and len(names) != self.num_classes:
            raise MedrepError(f"{len(names)} names for the {self.num_classes} outputs of the head of {self.name}",
                              where=Param("head_classes"))
        self.declared_head_classes = names

    @property
    def default_layer(self) -> str:
        """Module name whose output ``embed(layer=None, pool!=default)`` pools."""
        raise MedrepError(f"model {self.name} does not name a default layer; pass --layer", where=Param("layer"))

    @property
    def layer_names(self) -> list[str]:
        return [n for n, _ in self.module.named_modules() if n]

    @property
    def embed_dim(self) -> int:
        with torch.inference_mode():
            h, w = self.preprocessing.size
            dummy = torch.zeros(1, self.preprocessing.channels, h, w)
            return int(self.embed(dummy).shape[-1])

    # -- plumbing --------------------------------------------------------------------------------
    def _forward_default(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _logits(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_for_capture(self, x: torch.Tensor) -> None:
        """Run the network far enough for hooks to fire (subclasses override for towers)."""
        self.module(x)

    def get_submodule_checked(self, layer: str) -> nn.Module:
        try:
            return self.module.get_submodule(layer)
        except AttributeError:
            near = [n for n in self.layer_names if layer.split(".")[-1] in n][:5]
            hint = f"; similar: {', '.join(near)}" if near else ""
            raise MedrepError(f"model {self.name} has no layer {layer!r}{hint}", where=Param("layer")) from None

    def forward_layer(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Output of submodule ``layer`` for preprocessed input ``x`` (network stops right after it)."""
        target = self.get_submodule_checked(layer)
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            captured.append(out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out))
            raise _StopForward

        handle = target.register_forward_hook(hook)
        try:
            with self.analysis_state():
                self._run_for_capture(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise MedrepError(f"layer {layer!r} of model {self.name} did not run in the forward pass", where=Param("layer"))
        return captured[0]

    def pool(self, out: torch.Tensor, pool: str, layer: str = "") -> torch.Tensor:
        if out.ndim == 4:  # CNN feature map B×C×H×W
            if pool in ("mean", "cls"):
                if pool == "cls" and self.token_grid is not None:
                    raise MedrepError(f"layer {layer!r} gives a feature map; use --pool mean", where=Param("pool"))
                return out.mean(dim=(2, 3))
            if pool == "patches":
                return out.flatten(2).transpose(1, 2)
            if pool == "map":
                return out
        if out.ndim == 3:  # tokens B×N×D
            grid = self.token_grid
            prefix = grid.num_prefix_tokens if grid else 0
            if pool == "cls":
                if grid is not None and not grid.has_cls:
                    raise MedrepError(f"model {self.name} has no CLS token; use --pool mean", where=Param("pool"))
                return out[:, 0]
            if pool == "mean":
                return out[:, prefix:].mean(1)
            if pool in ("patches", "map"):
                patches = grid.patch_tokens(out) if grid else out[:, prefix:]
                return patches if pool == "patches" else grid.to_map(patches).permute(0, 3, 1, 2)
        if out.ndim == 2 and pool in ("cls", "mean"):
            return out
        raise MedrepError(f"cannot pool an output of shape {tuple(out.shape)} with {pool!r}", where=Param("pool"))

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.module.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def weights_digest(self) -> str:
        """Digest of every parameter and buffer: two encoders share cache entries only if equal.  Memoised
        against the tensors' version counters, so weights changed in place (a fine-tuning step on a borrowed
        module, load_state_dict) give a new digest."""
        versions = tuple(t._version for t in list(self.module.parameters()) + list(self.module.buffers()))
        if versions != getattr(self, "_weights_versions", None):
            self._weights_digest = None
            self._weights_versions = versions
        if self._weights_digest is None:
            parts = []
            for k, v in sorted(self.module.state_dict().items()):
                parts.append(k.encode())
                parts.append(str(v.dtype).encode() + str(tuple(v.shape)).encode())
                parts.append(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            self._weights_digest = digest_bytes(*parts)
        return self._weights_digest

    @property
    def fingerprint(self) -> str:
        """Weights digest + preprocessing + adapter: what the embedding cache keys on."""
        return digest_json(
            {"weights": self.weights_digest(), "preprocessing": self.preprocessing.to_dict(), "adapter": type(self).__name__,
             **self._fingerprint_extra()}
        )

    def _fingerprint_extra(self) -> dict[str, Any]:
        """What else decides the representation (a user's embed function, …); subclasses add to it."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "adapter": type(self).__name__,
            "preprocessing": self.preprocessing.to_dict(),
            "token_grid": asdict(self.token_grid) if self.token_grid else None,
            "has_head": self.has_head,
            "class_names": self.class_names,
            **({"head_classes": self.declared_head_classes} if self.declared_head_classes else {}),
            "fingerprint": self.fingerprint,
            "source": self.source,
        }

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed(pixels)


class ModuleEncoder(Encoder):
    """Any ``torch.nn.Module`` from Python.

    ``embed_fn(module, x)`` gives the representation (default: the module's output); ``head`` (a module or
    callable on that representation) makes ``logits`` available; an ``embed_fn`` that pools patch tokens
    gives e.g. a MIL-style representation.  The module is borrowed unless ``owns_module``: medrep leaves its
    training mode and requires_grad flags as the user set them, outside each call.
    """

    kind = "module"

    def __init__(
        self,
        module: nn.Module,
        preprocessing: Preprocessing,
        name: str = "module",
        embed_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        head: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None,
        token_grid: TokenGrid | None = None,
        default_pool: str = "cls",
        default_layer: str | None = None,
        class_names: Sequence[str] | None = None,
        source: dict[str, Any] | None = None,
        owns_module: bool = False,
    ):
        super().__init__(module, preprocessing, name, token_grid, default_pool, class_names, source, owns_module)
        self._embed_fn = embed_fn
        self.head = head  # an nn.Module head becomes a submodule: frozen or borrowed along with the module
        self.head_size_declared = head is not None
        if isinstance(head, nn.Module) and self.owns_module:
            head.eval()
            for p in head.parameters():
                p.requires_grad_(False)
        self._default_layer = default_layer

    @property
    def has_head(self) -> bool:
        return self.head is not None

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {"embed_fn": callable_identity(self._embed_fn)} if self._embed_fn is not None else {}

    @property
    def default_layer(self) -> str:
        if self._default_layer is None:
            return super().default_layer
        return self._default_layer

    def _forward_default(self, x: torch.Tensor) -> torch.Tensor:
        out = self._embed_fn(self.module, x) if self._embed_fn else self.module(x)
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._forward_default(x))


def callable_identity(fn: Callable[..., Any]) -> str:
    """A stable name for a function: where it is defined and a digest of its code (and constants), so two
    different embed functions never share cache entries while the same one does across processes."""
    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    name = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(target).__qualname__)}"
    if code is None:  # a callable object: its class, and its state if it is a module
        extra = digest_json(repr(sorted(vars(target).items(), key=lambda kv: kv[0]))) if hasattr(target, "__dict__") else ""
        return f"{name}:{extra}"
    return f"{name}:{digest_bytes(code.co_code, repr(code.co_consts).encode(), repr(code.co_names).encode())}"


@contextmanager
def evaluation(encoder: Encoder) -> Iterator[Encoder]:
    """Eval mode for the block; afterwards every submodule gets its own previous mode back (a user's frozen
    BatchNorm inside a training model stays frozen)."""
    modes = [(m, m.training) for m in encoder.modules()]
    encoder.eval()
    try:
        yield encoder
    finally:
        for m, mode in modes:
            m.training = mode
