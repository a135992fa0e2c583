"""Helpers for tests of the declaration service: files the evidence check accepts."""

from __future__ import annotations

from declare_app._demo_data import one_pixel_png

__all__ = ["one_pixel_png"]
