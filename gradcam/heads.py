"""How a classifier's scores become probabilities: one rule for the explainer, the CLI, the app and ``evaluate``.

- :attr:`Head.SOFTMAX`: one class per image; the probabilities sum to one.
- :attr:`Head.SIGMOID`: multi-label; each class's probability is the sigmoid of
  its own logit, independent of the others ("78% likely to contain a dog, 64% a cat").
- :attr:`Head.BINARY`: a single logit ``z`` (pneumonia / normal, defect / no
  defect) is read as two classes with logits ``(-z/2, z/2)``: their softmax is
  exactly ``(1 - sigmoid(z), sigmoid(z))``, and the negative class's score is the
  negated logit (halved), as pytorch-grad-cam's ``BinaryClassifierOutputTarget``
  explains it (a scale does not change a normalised Grad-CAM map).
  :func:`two_classes` does this reading wherever scores are read
  (:func:`gradcam.cam.logits_of`), so the engine sees two classes.

``head="auto"`` is binary for one logit, sigmoid for a model that declares
itself multi-label (a Hugging Face config's ``problem_type``), else softmax.

This module is a leaf: it imports torch and the errors only.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch
from torch import Tensor

from gradcam.errors import SettingError

#: What ``head=`` may be asked for (the CLI's ``--head``, the app's setting).
HEAD_CHOICES = ("auto", "softmax", "sigmoid")
#: The class names of a binary model given none.
BINARY_DEFAULT = ("negative", "positive")
#: A Hugging Face config's ``problem_type`` for a multi-label model.
MULTI_LABEL = "multi_label_classification"


class Head(str, Enum):
    """How a model's logits become probabilities."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"
    BINARY = "binary"

    @property
    def multi_label(self) -> bool:
        """True when each class has a probability of its own (they need not sum to one)."""
        return self is Head.SIGMOID


def resolve_head(asked: str, outputs: int, declared: str | None = None) -> Head:
    """The head of a model with ``outputs`` logits, from what was asked.

    Args:
        asked: "auto", "softmax" or "sigmoid".
        outputs: the number of logits the model gives.
        declared: the model's own word for its task, when it has one (a Hugging Face
            config's ``problem_type``: ``"multi_label_classification"`` means sigmoid).

    Raises:
        SettingError: for another word, or softmax asked of a single logit (it would always say 100%).
    """
    if asked not in HEAD_CHOICES:
        raise SettingError(f"head must be one of {', '.join(HEAD_CHOICES)}, not {asked!r}.")
    if outputs == 1:
        if asked == "softmax":
            raise SettingError(
                "A softmax over a single logit is always 100%: this is a binary model; use head auto or sigmoid."
            )
        return Head.BINARY
    if asked == "auto":
        return Head.SIGMOID if declared == MULTI_LABEL else Head.SOFTMAX
    return Head(asked)


def two_classes(logits: Tensor) -> Tensor:
    """Scores ``(N, 1)`` of a binary model as two classes ``(N, 2)``: ``(-z/2, z/2)``; other scores as they are."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        half = logits / 2
        return torch.cat([-half, half], dim=1)
    return logits


def probabilities(logits: Tensor, head: Head) -> Tensor:
    """Class probabilities ``(N, classes)``, float64, by the head's rule.

    Args:
        logits: the scores as the engine reads them (a binary model's already as two classes).
        head: the rule.
    """
    scores = two_classes(logits).double()
    return scores.sigmoid() if head is Head.SIGMOID else scores.softmax(dim=1)


def binary_names(names: Sequence[str] | None) -> tuple[str, str]:
    """The two classes of a binary model: as given (negative first), ``("not X", "X")`` from one name, or defaults.

    Raises:
        SettingError: for more than two names.
    """
    if not names:
        return BINARY_DEFAULT
    if len(names) == 1:
        return f"not {names[0]}", names[0]
    if len(names) == 2:
        return names[0], names[1]
    raise SettingError(
        f"A binary model (one logit) has two classes, but {len(names)} names were given: "
        "give two, the negative first, or one (the positive class)."
    )
