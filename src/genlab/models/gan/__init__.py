"""Generative adversarial networks: one model, four losses, composable regularisers (see docs/gan.md)."""
