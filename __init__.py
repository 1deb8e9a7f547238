"""fer-mine: mine facial-emotion patterns from image archives."""

__version__ = "0.1.0"
