"""``clearset explain-*``: what separates sets of images (diff.py). CRAFT concepts and SMDL attribution
(issue 27) are not built yet."""
