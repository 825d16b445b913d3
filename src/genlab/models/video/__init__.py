"""Video models: frame prediction from context frames (and, next, space-time generation); see docs/video.md."""
