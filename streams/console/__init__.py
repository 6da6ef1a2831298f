"""`pushstream console`: the delivery console (store, outcome reader, web app and page)."""
