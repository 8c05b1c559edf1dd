"""Pillow adapters: photo validation and collage building."""
