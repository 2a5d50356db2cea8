"""
Small helpers under everything else: they import Django and the standard library, never faq,
widget, owner or shopbot (tests/test_layers.py checks). The layers above, from the top:
shopbot (the project's wiring) -> owner (the owner's pages) -> widget (the chat) -> faq (the
knowledge) -> lib.
"""
