"""The CAM family: each method against its paper's formula, written here step by step on plain autograd.

The references take the target layer's output and its gradient with ``torch.autograd.grad`` (a forward hook
returns a copy, so an inplace ReLU after the layer cannot change the tensor), read tokens as a grid by hand,
and apply each paper's formula in float64 NumPy, one class at a time. The engine must give the same maps
(correlation >= 0.9999) on the tiny CNN (quick), and on random-init VGG19, ResNet-18, DenseNet-121, a ViT and
EfficientNet-Lite0's real weights (slow).

pytorch-grad-cam (1.5.7) is compared where it follows the papers; where it does not, the test reproduces its
deviation exactly, to show that it is the only difference:

* DenseNet: it keeps the target layer's output as it is, and torchvision's DenseNet applies ``ReLU(inplace=True)``
  to ``features.norm5`` after it: its "activations" are the post-ReLU tensor, its gradients the pre-ReLU ones.
* Grad-CAM++: it adds 1e-6 to the denominator of alpha (the paper sets alpha to 0 where it is 0); with the small
  gradients of a deep layer that changes the map.
* XGrad-CAM: it adds 1e-7 to each channel's activation sum.
* Eigen-CAM: it centres the activations before the SVD (the paper factorises them as they are), and leaves the
  singular vector's sign to LAPACK.
* Score-CAM: it weights the channels by a softmax, over the channels, of the masked inputs' logits; the paper and
  its authors' code weight them by the class probability itself, and skip constant channels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from gradcam import GradCAM, GradCAMError, load_backbone
from gradcam.errors import NotAvailableError, TimeLimitError
from gradcam.inference import logits_of
from gradcam.layout import Layout
from gradcam.methods import CHEAP, METHODS, UnknownMethodError, get_method

from .conftest import TinyNet, make_scene, to_tensor
from .helpers import ForwardCounter, hook_count

GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam")


# ----------------------------------------------------------------------------- the references


def layer_and_gradients(
    model: nn.Module, layer: str, x: torch.Tensor, classes: list[list[int]], prefix: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The layer's output ``A (N, C, h, w)`` and ``d y_c / d A`` for each class, ``(K, N, C, h, w)``, float64."""
    store: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        store["a"] = output
        return output.clone()  # what runs after the layer gets a copy: an inplace ReLU cannot touch ours

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = logits_of(model(x.clone().requires_grad_(True)))
            chosen = torch.tensor(classes)
            grads = [
                torch.autograd.grad(logits.gather(1, chosen[:, k : k + 1]).sum(), store["a"], retain_graph=True)[0]
                for k in range(chosen.shape[1])
            ]
    finally:
        handle.remove()
    a, g = store["a"].detach(), torch.stack(grads)
    if a.ndim == 3:  # tokens (N, T, C): drop the class tokens, read the rest as a square grid
        side = math.isqrt(a.shape[1] - prefix)
        a = a[:, prefix:].reshape(a.shape[0], side, side, -1).permute(0, 3, 1, 2)
        g = g[:, :, prefix:].reshape(*g.shape[:2], side, side, -1).permute(0, 1, 4, 2, 3)
    return a.double().numpy(), g.double().numpy()


def reference_raw(method: str, a: np.ndarray, g: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Each paper's map before the ReLU, ``(N, K, h, w)``, for one image and class at a time."""
    n_images, n_classes = a.shape[0], g.shape[0]
    out = np.zeros((n_images, n_classes, *a.shape[2:]))
    for n in range(n_images):
        A = a[n]  # (C, h, w)
        for k in range(n_classes):
            G = g[k, n]  # (C, h, w)
            if method == "gradcam":  # Selvaraju et al., Eq. 1-2
                alpha = G.mean(axis=(1, 2))
                out[n, k] = np.tensordot(alpha, A, axes=1)
            elif method == "gradcam++":  # Chattopadhyay et al., Eq. 19 with Y = exp(S)
                total = A.sum(axis=(1, 2), keepdims=True)
                denominator = 2 * G**2 + total * G**3 + eps
                alpha = np.divide(G**2, denominator, out=np.zeros_like(G), where=denominator != 0)
                if eps:  # pytorch-grad-cam also zeroes alpha where the gradient is 0
                    alpha = np.where(G != 0, alpha, 0)
                w = (alpha * np.maximum(G, 0)).sum(axis=(1, 2))
                out[n, k] = np.tensordot(w, A, axes=1)
            elif method == "xgradcam":  # Fu et al., Eq. 8
                total = A.sum(axis=(1, 2)) + eps
                share = np.divide(A, total[:, None, None], out=np.zeros_like(A), where=total[:, None, None] != 0)
                w = (share * G).sum(axis=(1, 2))
                out[n, k] = np.tensordot(w, A, axes=1)
            elif method == "hirescam":  # Draelos & Carin, Eq. 4
                out[n, k] = (G * A).sum(axis=0)
            elif method == "layercam":  # Jiang et al., Eq. 6-7
                out[n, k] = (np.maximum(G, 0) * A).sum(axis=0)
    return out


def reference_eigencam(a: np.ndarray, centred: bool = False) -> np.ndarray:
    """Eigen-CAM: the first right singular vector's projection, its sum made positive, ``(N, h, w)``."""
    out = []
    for A in a:
        M = A.reshape(A.shape[0], -1).T  # (h*w, C)
        if centred:
            M = M - M.mean(axis=0)
        _, _, vt = np.linalg.svd(M, full_matrices=False)
        projection = M @ vt[0]
        out.append((projection if projection.sum() >= 0 else -projection).reshape(A.shape[1:]))
    return np.stack(out)


def reference_scorecam(
    model: nn.Module, x: torch.Tensor, a: np.ndarray, classes: list[list[int]], pgc: bool = False
) -> np.ndarray:
    """Score-CAM: the class probability of the input masked by each channel weights it, ``(N, K, h, w)``.

    With ``pgc``: pytorch-grad-cam's variant (its masks, a softmax over the channels of the logits).
    """
    out = np.zeros((a.shape[0], len(classes[0]), *a.shape[2:]))
    size = x.shape[-2:]
    for n in range(a.shape[0]):
        scores = []
        for start in range(0, a.shape[1], 64):
            channels = torch.from_numpy(a[n, start : start + 64]).float()[:, None]
            if pgc:
                up = nn.UpsamplingBilinear2d(size=size)(channels)[:, 0]  # align_corners=True
            else:
                up = F.interpolate(channels, size=size, mode="bilinear", align_corners=False)[:, 0]
            low = up.flatten(1).min(1).values[:, None, None]
            high = up.flatten(1).max(1).values[:, None, None]
            masks = (up - low) / (high - low + 1e-8) if pgc else (up - low) / (high - low).clamp_min(1e-30)
            with torch.no_grad():
                logits = logits_of(model(x[n : n + 1] * masks[:, None]))
            scores.append(logits if pgc else logits.softmax(1) * (high > low)[:, 0, 0, None])
        score = torch.cat(scores).double().numpy()  # (C, num_classes)
        for k, c in enumerate(classes[n]):
            w = torch.softmax(torch.from_numpy(score[:, c]), 0).numpy() if pgc else score[:, c]
            out[n, k] = np.tensordot(w, a[n], axes=1)
    return out


def as_maps(raw: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The engine's last steps, as every method shares them: ReLU, bilinear upsampling, min-max to [0, 1]."""
    up = F.interpolate(torch.from_numpy(np.maximum(raw, 0)), size=size, mode="bilinear", align_corners=False)
    low = up.flatten(-2).min(-1).values[..., None, None]
    high = up.flatten(-2).max(-1).values[..., None, None]
    return ((up - low) / (high - low).clamp_min(1e-300)).float()


def correlation(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    x, y = (torch.as_tensor(np.asarray(v)).flatten().double() for v in (a, b))
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])


def check_methods(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    names: tuple[str, ...],
    prefix: int | None = None,
    classes: list[list[int]] | None = None,
) -> dict[str, float]:
    """Each method's maps against the reference; returns the correlations (asserted >= 0.9999)."""
    engine = GradCAM(model, layer, prefix_tokens=prefix)
    if classes is None:
        classes = engine.compute(x, top=2).classes.tolist()
    size = (x.shape[-2], x.shape[-1])
    a, g = layer_and_gradients(model, layer, x, classes, prefix)
    found = {}
    for name in names:
        ours = engine.with_method(name).compute(x, classes).maps
        if name == "eigencam":
            raw = np.repeat(reference_eigencam(a)[:, None], len(classes[0]), axis=1)
        elif name == "scorecam":
            raw = reference_scorecam(model, x, a, classes)
        else:
            raw = reference_raw(name, a, g)
        found[name] = correlation(ours, as_maps(raw, size))
    assert all(c >= 0.9999 for c in found.values()), found
    return found


# ----------------------------------------------------------------------------- names


def test_a_method_is_found_by_its_name_or_its_title():
    assert get_method("LayerCAM").name == "layercam"
    assert get_method("Grad-CAM++").name == "gradcam++"
    assert get_method(" score_cam ").name == "scorecam"
    assert GradCAM(TinyNet(), "features", method="Eigen-CAM").method.name == "eigencam"
    assert tuple(METHODS) == ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam")
    assert CHEAP == tuple(METHODS)[:-1]


def test_an_unknown_method_is_one_line_listing_the_real_ones():
    with pytest.raises(UnknownMethodError) as raised:
        GradCAM(TinyNet(), "features", method="gradcam+++")
    message = str(raised.value)
    assert "\n" not in message and "'gradcam+++'" in message
    assert message.endswith("gradcam, gradcam++, xgradcam, hirescam, layercam, eigencam, scorecam.")
    assert isinstance(raised.value, GradCAMError) and isinstance(raised.value, ValueError)


# ----------------------------------------------------------------------------- against the references


def test_every_method_equals_its_paper_on_the_tiny_cnn(trained_tiny):
    scenes = [make_scene(np.random.default_rng(seed), (0, 1)) for seed in (2, 3)]
    x = to_tensor([s.image for s in scenes])
    check_methods(trained_tiny, "features", x, tuple(METHODS), classes=[[0, 1], [1, 0]])


def test_the_methods_share_one_forward_pass_and_one_backward(trained_tiny):
    x = torch.randn(2, 3, 48, 40)
    engine = GradCAM(trained_tiny, "features")
    with ForwardCounter(trained_tiny) as runs:
        together = engine.compute_methods(x, [[0, 1], [1, 1]], CHEAP)
    assert runs.count == 1
    assert list(together) == list(CHEAP)
    for name, result in together.items():
        alone = engine.with_method(name).compute(x, [[0, 1], [1, 1]])
        assert result.method == alone.method == name
        assert (result.maps - alone.maps).abs().max() < 1e-6, name
    assert hook_count(trained_tiny) == 0


def test_the_counterfactual_of_a_gradient_method_is_its_formula_with_negated_gradients(trained_tiny):
    x = to_tensor([make_scene(np.random.default_rng(4), (0, 1)).image])
    a, g = layer_and_gradients(trained_tiny, "features", x, [[0]])
    for name in GRADIENT_METHODS:
        result = GradCAM(trained_tiny, "features", method=name).compute(x, 0, counterfactual=True)
        expected = as_maps(reference_raw(name, a, -g), (64, 64))
        assert correlation(result.counter_maps, expected) >= 0.9999, name


@pytest.mark.parametrize("name", ["eigencam", "scorecam"])
def test_a_method_without_gradients_has_no_counterfactual_in_words(trained_tiny, name):
    with pytest.raises(NotAvailableError, match="has no counterfactual map"):
        GradCAM(trained_tiny, "features", method=name).compute(torch.randn(1, 3, 32, 32), counterfactual=True)


def test_eigencam_is_the_same_for_every_class_and_its_sign_is_fixed(trained_tiny):
    x = torch.randn(2, 3, 40, 40)
    result = GradCAM(trained_tiny, "features", method="eigencam").compute(x, [[0, 1], [1, 0]])
    assert torch.equal(result.maps[:, 0], result.maps[:, 1])
    # -A has the same singular vectors with either sign: a sign left to the solver would turn the map inside out
    negated = GradCAM(_Negated(trained_tiny), "negate", method="eigencam").compute(x, [[0, 1], [1, 0]])
    assert (negated.maps - result.maps).abs().max() < 1e-5


class _Negate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


class _Negated(nn.Module):
    """TinyNet with a layer after its features that negates them (the head negates them back)."""

    def __init__(self, inner: TinyNet) -> None:
        super().__init__()
        self.inner, self.negate = inner, _Negate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = -self.negate(self.inner.features(x))
        return self.inner.fc(torch.flatten(self.inner.pool(features), 1))


def test_scorecam_runs_in_batches_reports_progress_and_stops_at_its_time_limit(trained_tiny):
    x = torch.randn(1, 3, 32, 32)
    seen: list[float] = []
    engine = GradCAM(trained_tiny, "features", method="scorecam", batch_size=8)
    with ForwardCounter(trained_tiny) as runs:
        engine.compute(x, progress=seen.append)
    assert runs.count == 1 + 32 // 8  # the pass itself, then 32 channels in batches of 8
    assert seen == [0.25, 0.5, 0.75, 1.0]
    ticks = iter(range(100))
    slow = GradCAM(trained_tiny, "features", method="scorecam", batch_size=8, clock=lambda: 10.0 * next(ticks))
    with pytest.raises(TimeLimitError, match=r"needs 32 masked passes through the model here, about 40 s, more "
                       r"than the 30 s allowed\. Choose a faster method"):
        slow.compute(x, time_limit=30)


def test_only_gradcam_takes_vgg19s_exact_path_and_the_others_equal_the_generic_hook(vgg19_random):
    hooked = vgg19_random.model
    x = torch.randn(1, 3, 64, 64)
    exact = GradCAM(hooked, "features_conv").compute(x, [[1, 2]])
    generic = GradCAM(hooked, "features_conv").compute_methods(x, [[1, 2]], ("gradcam", "layercam"))
    assert (exact.maps - generic["gradcam"].maps).abs().max() < 1e-5
    plain = torchvision.models.vgg19().eval()
    plain.features[:36].load_state_dict(hooked.features_conv.state_dict())
    plain.classifier.load_state_dict(hooked.classifier.state_dict())
    assert (GradCAM(plain, "features.35", method="layercam").compute(x, [[1, 2]]).maps
            - generic["layercam"].maps).abs().max() < 1e-5


# ----------------------------------------------------------------------------- real architectures (slow)


@pytest.mark.slow
def test_every_method_equals_its_paper_on_random_vgg19(vgg19_random):
    check_methods(vgg19_random.model, "features_conv", torch.randn(1, 3, 64, 80), tuple(METHODS))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("builder", "layer"),
    [(torchvision.models.resnet18, "layer4"), (torchvision.models.densenet121, "features.norm5")],
)
def test_every_method_equals_its_paper_on_resnet_and_densenet(builder, layer):
    torch.manual_seed(0)
    model = builder().eval().requires_grad_(False)
    check_methods(model, layer, torch.randn(1, 3, 64, 64), tuple(METHODS))


@pytest.mark.slow
def test_every_method_equals_its_paper_on_a_vit_tokens_read_as_a_grid():
    backbone = load_backbone("timm:vit_tiny_patch16_224", "random")
    assert backbone.layout is Layout.TOKENS and backbone.prefix_tokens == 1
    check_methods(
        backbone.model, backbone.target_layer, torch.randn(1, 3, 224, 224), tuple(METHODS), backbone.prefix_tokens
    )


@pytest.mark.slow
def test_every_method_equals_its_paper_on_efficientnet_lite0s_real_weights(lite0):
    import cv2

    from gradcam import Explainer, load_image

    from .test_real_photos import EXAMPLES

    explainer = Explainer(lite0, warm_up=False)
    photo = cv2.resize(load_image(EXAMPLES / "chelsea.png"), (160, 128), interpolation=cv2.INTER_AREA)
    x = explainer.to_tensor([photo])  # (1, 3, 128, 160): a 4 x 5 map; Score-CAM masks 1,280 channels
    check_methods(lite0.model, lite0.target_layer, x, tuple(METHODS))


# ----------------------------------------------------------------------------- against pytorch-grad-cam (slow)


def _pgc(name: str, model: nn.Module, layer: str, x: torch.Tensor, classes: list[int], prefix: int | None = None):
    """pytorch-grad-cam's maps (N, H, W) for one class per image."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kinds = {
        "gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM,
        "hirescam": pgc.HiResCAM, "layercam": pgc.LayerCAM, "eigencam": pgc.EigenCAM, "scorecam": pgc.ScoreCAM,
    }

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        side = math.isqrt(tokens.shape[1] - prefix)
        return tokens[:, prefix:].reshape(tokens.shape[0], side, side, -1).permute(0, 3, 1, 2)

    frozen = [p for p in model.parameters() if not p.requires_grad]
    model.requires_grad_(True)  # it differentiates through loss.backward(), which needs parameters that require grad
    try:
        with kinds[name](model, [model.get_submodule(layer)], reshape_transform=reshape if prefix else None) as cam:
            cam.batch_size = 64
            return cam(x, [ClassifierOutputTarget(c) for c in classes])
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)
        model.zero_grad(set_to_none=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("builder", "layer"), [(torchvision.models.resnet18, "layer4"), (torchvision.models.densenet121, "features.norm5")]
)
def test_pytorch_grad_cam_agrees_where_it_follows_the_papers_and_its_deviations_are_exactly_these(builder, layer):
    torch.manual_seed(0)
    model = builder().eval().requires_grad_(False)
    x = torch.randn(2, 3, 64, 64)
    engine = GradCAM(model, layer)
    classes = engine.compute(x).classes[:, 0].tolist()
    a, g = layer_and_gradients(model, layer, x, [[c] for c in classes])
    dense = builder is torchvision.models.densenet121
    theirs_a = np.maximum(a, 0) if dense else a  # DenseNet: the post-inplace-ReLU tensor
    for name in ("gradcam", "hirescam", "layercam"):
        ours = engine.with_method(name).compute(x, classes).maps[:, 0]
        theirs = torch.from_numpy(_pgc(name, model, layer, x, classes))
        if dense:
            assert correlation(theirs, as_maps(reference_raw(name, theirs_a, g), (64, 64))[:, 0]) >= 0.9999, name
        else:
            assert correlation(ours, theirs) >= 0.9999, name
    for name, eps in (("gradcam++", 1e-6), ("xgradcam", 1e-7)):
        theirs = torch.from_numpy(_pgc(name, model, layer, x, classes))
        assert correlation(theirs, as_maps(reference_raw(name, theirs_a, g, eps), (64, 64))[:, 0]) >= 0.9999, name
    theirs = torch.from_numpy(_pgc("eigencam", model, layer, x, classes))
    centred = as_maps(reference_eigencam(theirs_a, centred=True)[:, None], (64, 64))[:, 0]
    flipped = as_maps(-reference_eigencam(theirs_a, centred=True)[:, None], (64, 64))[:, 0]
    for n in range(2):  # centred, and either sign
        assert max(correlation(theirs[n], centred[n]), correlation(theirs[n], flipped[n])) >= 0.9999
    if not dense:
        theirs = torch.from_numpy(_pgc("scorecam", model, layer, x, classes))
        expected = as_maps(reference_scorecam(model, x, a, [[c] for c in classes], pgc=True), (64, 64))[:, 0]
        assert correlation(theirs, expected) >= 0.9999


@pytest.mark.slow
def test_pytorch_grad_cam_agrees_on_vit_tokens_for_the_gradient_methods():
    backbone = load_backbone("timm:vit_tiny_patch16_224", "random")
    model, layer, prefix = backbone.model, backbone.target_layer, backbone.prefix_tokens
    x = torch.randn(1, 3, 224, 224)
    engine = GradCAM(model, layer, prefix_tokens=prefix)
    classes = engine.compute(x).classes[:, 0].tolist()
    for name in ("gradcam", "hirescam", "layercam"):
        ours = engine.with_method(name).compute(x, classes).maps[:, 0]
        assert correlation(ours, torch.from_numpy(_pgc(name, model, layer, x, classes, prefix))) >= 0.9999, name
