"""Serving: SavedModel export (`export`), the streaming separator (`separator`), file separation (`separate`)."""
