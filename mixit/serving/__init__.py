"""Serving: SavedModel export (`export`), the streaming separator (`separator`), file
separation (`separate`), LiteRT (`litert`) and the model card (`model_card`)."""
