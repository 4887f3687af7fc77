"""The errors a caller can act on: one base class, the built-in kinds they also are, and messages for people."""

from __future__ import annotations

import pytest

import gradcam
from gradcam import errors


def test_every_error_the_package_raises_on_purpose_is_a_gradcam_error():
    kinds = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert len(kinds) >= 9
    assert all(issubclass(kind, errors.GradCAMError) for kind in kinds)
    exported = {name for name in gradcam.__all__ if name.endswith("Error")}
    assert exported <= {kind.__name__ for kind in kinds}


@pytest.mark.parametrize(
    ("kind", "also"),
    [
        (errors.InvalidImageError, ValueError),
        (errors.ImageTooLargeError, errors.InvalidImageError),
        (errors.ImageTooSmallError, errors.InvalidImageError),
        (errors.UnknownClassError, ValueError),
        (errors.UnknownLayerError, ValueError),
        (errors.UnknownModelError, KeyError),
        (errors.WeightsError, RuntimeError),
    ],
)
def test_each_error_is_also_the_built_in_kind_callers_catch(kind, also):
    with pytest.raises(also):
        raise kind("what to do")


def test_an_unknown_model_reads_as_a_sentence_not_a_quoted_key():
    message = "Unknown model 'x'; choose one of: vgg19."
    assert str(errors.UnknownModelError(message)) == message
    assert str(errors.UnknownModelError()) == ""
    assert str(KeyError("x")) == "'x'"  # what a plain KeyError would have said
