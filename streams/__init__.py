"""streams: raw news articles in, clean, de-duplicated, tagged articles and alerts out."""

__version__ = "0.1.0"
