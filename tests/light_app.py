"""A light page for tests that drive the app: a tiny untrained network with the 1000 ImageNet names.

The page behaves as with a real model (the class picker offers the same names,
every view is drawn) but answers in a fraction of a second on 2 cores.
"""

from __future__ import annotations

import torch
from torchvision.models import VGG19_Weights

from demo.service import DemoService
from gradcam import Explainer
from gradcam.backbone import Backbone

from .app_server import gradio_workdir
from .conftest import MEAN, STD, TinyNet


def light_service() -> DemoService:
    """A service with one seeded, untrained TinyNet that answers with ImageNet class names."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TinyNet(1000).eval()
    backbone = Backbone(
        name="tiny", title="TinyNet", model=model, target_layer="features",
        categories=tuple(VGG19_Weights.IMAGENET1K_V1.meta["categories"]), mean=MEAN, std=STD,
        weights="seeded", untrained=False,
    )
    return DemoService({"TinyNet": Explainer(backbone)}, workdir=gradio_workdir())
