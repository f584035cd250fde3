"""Render slips for print and screen: PDF pages and barcode images."""
