"""The app's own mistakes-to-words: a request it cannot serve, with a message for the person."""

from gradcam import GradCAMError


class UserError(GradCAMError):
    """A request the app cannot serve, with a message for the person who made it."""
