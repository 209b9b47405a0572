"""signdistill: compressing a wearable-sensor sign-language recognizer, tracked end to end."""

__version__ = "0.1.0"
