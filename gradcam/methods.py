"""The CAM family: each method's map from one layer's activations (and gradients), by its paper's formula.

Every formula reads the target layer's activations ``A`` as maps ``(N, C, h, w)`` and,
for the gradient methods, the gradients of the explained class scores ``y_c`` with
respect to them, ``G = d y_c / d A``, one map per class ``(K, N, C, h, w)``; each
returns the raw maps ``(N, K, h, w)`` before the ReLU that every method applies
(:class:`gradcam.GradCAM` then upsamples and normalises them):

* ``gradcam``: Grad-CAM (Selvaraju et al., ICCV 2017), ``alpha_k = mean_ij G_kij``,
  ``L = ReLU(sum_k alpha_k A_k)``. It needs only each channel's gradient *summed
  over space*, which a model can give exactly and faster (:class:`gradcam.cam.ExactPath`).
* ``gradcam++``: Grad-CAM++ (Chattopadhyay et al., WACV 2018, Eq. 19 with the
  exponential of the score): ``a_kij = G^2 / (2 G^2 + sum_ab A_kab G^3)`` (0 where the
  denominator is 0), ``w_k = sum_ij a_kij ReLU(G_kij)``, ``L = ReLU(sum_k w_k A_k)``.
* ``xgradcam``: XGrad-CAM (Fu et al., BMVC 2020), ``w_k = sum_ij (A_kij / sum_ab A_kab) G_kij``
  (0 for a channel whose activations sum to 0), ``L = ReLU(sum_k w_k A_k)``.
* ``hirescam``: HiResCAM (Draelos & Carin, 2020), ``L = ReLU(sum_k G_k * A_k)``, element-wise.
* ``layercam``: LayerCAM (Jiang et al., IEEE TIP 2021), ``L = ReLU(sum_k ReLU(G_k) * A_k)``.
* ``eigencam``: Eigen-CAM (Muhammad & Yeasin, IJCNN 2020), no gradients: the
  activations as a matrix ``M (h*w, C)`` projected on their first right singular
  vector, ``L = ReLU(M v_1)``; the same map for every class.
* ``scorecam``: Score-CAM (Wang et al., CVPR Workshops 2020), no gradients: each
  channel, upsampled and min-max scaled to ``H_k`` in [0, 1], masks the input; the
  class probability of the masked input is its weight, ``L = ReLU(sum_k p_c(X * H_k) A_k)``
  (a channel with constant activations has no mask and weight 0). One masked
  forward pass per channel, run by the engine in batches.

The counterfactual map of a gradient method (Selvaraju et al., Sec. 5) is the same
formula with the gradients negated; Eigen-CAM and Score-CAM have none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gradcam.errors import GradCAMError, TimeLimitError

#: Masked inputs per forward pass of Score-CAM.
SCORE_BATCH = 32

#: What a method reads of the pass: channel gradient sums, gradient maps, activations only, or masked passes.
Needs = Literal["sums", "gradients", "activations", "scores"]


class UnknownMethodError(GradCAMError, ValueError):
    """A method name that names no method of the CAM family."""


@dataclass(frozen=True)
class Method:
    """One method of the CAM family.

    Attributes:
        name: the name everywhere (``GradCAM(method=)``, ``--method``, the manifest): "layercam".
        title: the name for people: "LayerCAM".
        paper: where it is defined.
        needs: what it reads of the model's pass (see :data:`Needs`).
        counterfactual: whether it has a counterfactual map (negated gradients).
        cheap: whether it costs about one forward pass (Score-CAM costs one per channel).
    """

    name: str
    title: str
    paper: str
    needs: Needs
    counterfactual: bool
    cheap: bool = True

    @property
    def class_specific(self) -> bool:
        """Whether the map depends on the explained class (Eigen-CAM's does not)."""
        return self.needs != "activations"


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gradcam", "Grad-CAM", "Selvaraju et al., ICCV 2017", "sums", True),
        Method("gradcam++", "Grad-CAM++", "Chattopadhyay et al., WACV 2018", "gradients", True),
        Method("xgradcam", "XGrad-CAM", "Fu et al., BMVC 2020", "gradients", True),
        Method("hirescam", "HiResCAM", "Draelos & Carin, 2020", "gradients", True),
        Method("layercam", "LayerCAM", "Jiang et al., IEEE TIP 2021", "gradients", True),
        Method("eigencam", "Eigen-CAM", "Muhammad & Yeasin, IJCNN 2020", "activations", False),
        Method("scorecam", "Score-CAM", "Wang et al., CVPR Workshops 2020", "scores", False, cheap=False),
    )
}
#: The default method.
DEFAULT = "gradcam"
#: The methods that cost about one forward pass, in the order they are shown.
CHEAP = tuple(name for name, m in METHODS.items() if m.cheap)


def _key(text: str) -> str:
    return "".join(text.lower().split()).replace("-", "").replace("_", "")


_BY_KEY = {_key(k): m for m in METHODS.values() for k in (m.name, m.title)}


def get_method(name: str | Method) -> Method:
    """The method of a name ("layercam") or title ("LayerCAM"), case, spaces and hyphens ignored.

    Raises:
        UnknownMethodError: for any other name; the message lists the real ones.
    """
    if isinstance(name, Method):
        return name
    found = _BY_KEY.get(_key(name)) if isinstance(name, str) else None
    if found is None:
        shown = name if isinstance(name, str) and len(name) <= 40 else f"{str(name)[:40]}..."
        raise UnknownMethodError(f"Unknown method {shown!r}; the methods are: {', '.join(METHODS)}.")
    return found


def _weighted(weights: Tensor, activations: Tensor) -> Tensor:
    """``sum_k w_k A_k``: channel weights ``(K, N, C)`` and activations ``(N, C, h, w)`` -> ``(N, K, h, w)``."""
    return torch.einsum("knc,nchw->nkhw", weights, activations)


def gradcam(activations: Tensor, sums: Tensor) -> Tensor:
    """Grad-CAM from the channel gradient sums ``(K, N, C)``: the spatial mean of the gradient weights the maps."""
    return _weighted(sums / (activations.shape[-2] * activations.shape[-1]), activations)


def gradcam_plus_plus(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM++ from the gradient maps ``(K, N, C, h, w)`` (Eq. 19; alpha is 0 where its denominator is 0)."""
    squared = gradients.square()
    denominator = 2 * squared + activations.sum(dim=(-2, -1), keepdim=True) * squared * gradients
    alpha = torch.where(denominator != 0, squared / torch.where(denominator != 0, denominator, 1), 0)
    return _weighted((alpha * F.relu(gradients)).sum(dim=(-2, -1)), activations)


def xgradcam(activations: Tensor, gradients: Tensor) -> Tensor:
    """XGrad-CAM from the gradient maps: each gradient weighted by its activation's share of the channel's sum."""
    total = activations.sum(dim=(-2, -1))  # (N, C)
    weights = (gradients * activations).sum(dim=(-2, -1))  # (K, N, C)
    return _weighted(torch.where(total != 0, weights / torch.where(total != 0, total, 1), 0), activations)


def hirescam(activations: Tensor, gradients: Tensor) -> Tensor:
    """HiResCAM from the gradient maps: gradient times activation, element by element, summed over channels."""
    return (gradients * activations).sum(dim=2).transpose(0, 1)  # (K, N, h, w) -> (N, K, h, w)


def layercam(activations: Tensor, gradients: Tensor) -> Tensor:
    """LayerCAM from the gradient maps: the positive gradient times the activation, summed over channels."""
    return (F.relu(gradients) * activations).sum(dim=2).transpose(0, 1)


#: The gradient-map methods' formulas, by name.
GRADIENT_FORMULAS = {"gradcam++": gradcam_plus_plus, "xgradcam": xgradcam, "hirescam": hirescam, "layercam": layercam}


def eigencam(activations: Tensor) -> Tensor:
    """Eigen-CAM: the activations projected on their first principal direction, ``(N, h, w)``.

    Each image's activations form a matrix ``M`` of ``h * w`` rows and ``C`` columns
    (not centred: the paper factorises the activations themselves); the map is
    ``M v_1``, with ``v_1`` its first right singular vector, computed in float64.

    A singular vector's sign is arbitrary (``-v_1`` is one too, and which one a
    solver returns differs between libraries and devices), so it is fixed here:
    the map's sum is made positive, that is, the map points the way most of the
    activation mass does (for post-ReLU activations ``M v_1`` is then non-negative,
    the Perron vector); a map summing to exactly 0 is made positive at its
    largest-magnitude value (the first such, in row-major order).
    """
    batch, channels, height, width = activations.shape
    matrix = activations.double().flatten(2).transpose(1, 2)  # (N, h*w, C)
    _, _, right = torch.linalg.svd(matrix, full_matrices=False)  # right: (N, min(h*w, C), C)
    projection = (matrix @ right[:, 0, :, None])[..., 0]  # (N, h*w)
    total = projection.sum(dim=1)
    peak = projection.gather(1, projection.abs().argmax(dim=1, keepdim=True))[:, 0]
    sign = torch.where(total != 0, total.sign(), torch.where(peak != 0, peak.sign(), 1.0))
    return (projection * sign[:, None]).reshape(batch, height, width).to(activations.dtype)


def scorecam_masks(activations: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Score-CAM's masks of some channels: upsampled to ``size`` and min-max scaled to [0, 1].

    Args:
        activations: the channels to mask with, ``(M, h, w)``.
        size: ``(height, width)`` of the network input.

    Returns:
        The masks ``(M, height, width)``, and whether each channel has one (a
        constant channel cannot be scaled: its mask is 0 and it gets no weight).
    """
    up = F.interpolate(activations[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    low, high = torch.aminmax(up.flatten(1), dim=1)
    span = (high - low)[:, None, None]
    usable = high > low
    masks = torch.where(usable[:, None, None], (up - low[:, None, None]) / span.clamp_min(1e-30), 0.0)
    return masks, usable


def scorecam(activations: Tensor, weights: Tensor) -> Tensor:
    """Score-CAM from each channel's weight ``(K, N, C)``: the class probabilities of the masked inputs."""
    return _weighted(weights, activations)


def score_weights(
    probabilities: Callable[[Tensor], Tensor],
    x: Tensor,
    activations: Tensor,
    classes: Tensor,
    batch_size: int = SCORE_BATCH,
    progress: Callable[[float], None] | None = None,
    time_limit: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Tensor:
    """Score-CAM's weights: the class probabilities of the input masked by each channel, in batches.

    Args:
        probabilities: softmax probabilities ``(B, num_classes)`` of a batch of inputs (the model, run as the
            engine runs it: in inference, without autograd).
        x: the preprocessed images ``(N, 3, H, W)``.
        activations: the target layer's maps ``(N, C, h, w)``.
        classes: the explained classes ``(N, K)``: every class's weight comes from the same passes.
        batch_size: masked inputs per forward pass.
        progress: called with the share of the ``N * C`` masked passes done, after each batch.
        time_limit: seconds the passes may take: they stop (with :class:`TimeLimitError`) as soon as the
            time they have taken, extrapolated to all of them, is over the limit.
        clock: seconds (``time.monotonic`` by default).

    Returns:
        The weights ``(K, N, C)``.
    """
    clock = clock or time.monotonic
    images, channels = activations.shape[:2]
    size = (x.shape[-2], x.shape[-1])
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    weights = torch.zeros(classes.shape[1], images, channels, device=x.device)
    total, done, started = images * channels, 0, clock()
    with torch.no_grad():
        for n in range(images):
            for start in range(0, channels, batch_size):
                masks, usable = scorecam_masks(activations[n, start : start + batch_size], size)
                masked = (x[n : n + 1] * masks[:, None].to(x.dtype)).contiguous(memory_format=layout)  # (B, 3, H, W)
                chosen = probabilities(masked)[:, classes[n]] * usable[:, None]  # (B, K)
                weights[:, n, start : start + len(masks)] = chosen.T
                done += len(masks)
                if progress is not None:
                    progress(done / total)
                projected = (clock() - started) * total / done
                if time_limit is not None and done < total and projected > time_limit:
                    raise TimeLimitError(
                        f"Score-CAM needs {total:,} masked passes through the model here, about {projected:.0f} s, "
                        f"more than the {time_limit:g} s allowed. Choose a faster method: the others cost about "
                        "one pass."
                    )
    return weights
